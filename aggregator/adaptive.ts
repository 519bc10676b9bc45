// Adaptive cycles (ADR 0031): which planned runs still run, as a pure function of recorded results.
//
// The run matrix plans `max` cycles of every configuration in the chosen order; this decides, run by run
// in that order, whether a run is done, may run now, is not needed, or must wait. A run's decision reads
// only runs that must be finished before it ("its gate"), so it never depends on timing:
//   interleave / shuffle: every run of the earlier cycle blocks (the runs of one block may run in parallel);
//   sequential:           every earlier run (one run at a time).
// A configuration stops (its later runs are skipped) when, at a run whose gate is open,
//   targetMet: it has at least `min` values and the 95% CI half-width is <= ciHalfWidthPct of the mean, or
//   budget:    the GPU time recorded over the gate has reached budget.gpuHours;
// and it ends with `maxCycles` when all `max` cycles ran without meeting the target. A resumed `llem run`
// or a restarted controller computes the same decisions from the same recorded runs.
import type { AdaptiveCycles, AdaptiveMetric } from '../api/spec-adaptive.ts';
import type { MeasurementOrder } from '../api/spec.ts';
import type { RunResult } from './run-results.ts';
import { cycleStats } from './stats.ts';

/** What the runtime has recorded about one planned run. */
export interface AdaptiveRunRecord {
  /** complete / failed: finished for good (no further attempt); open: not run yet, or running. */
  status: 'complete' | 'failed' | 'open';
  /** The target metric's value (complete runs; null when the run has none). */
  value: number | null;
  /** GPU-seconds the run is charged (adaptiveCharge); 0 while open. */
  gpuSeconds: number;
}

export interface AdaptivePlannedRun {
  id: string;
  configurationId: string;
  cycle: number;
}

export type AdaptiveRunDecision = 'done' | 'run' | 'skip' | 'wait';
export const ADAPTIVE_STOP_REASONS = ['targetMet', 'maxCycles', 'budget'] as const;
export type AdaptiveStopReason = (typeof ADAPTIVE_STOP_REASONS)[number];

export interface AdaptiveConfigOutcome {
  configurationId: string;
  state: 'measuring' | 'stopped';
  /** Why it stopped; null while measuring. */
  reason: AdaptiveStopReason | null;
  /** Cycles that gave a value. */
  cycles: number;
  /** Runs not needed (skipped) because it stopped. */
  cyclesSkipped: number;
  mean: number | null;
  /** 95% CI half-width as a percentage of the mean; null below 2 values or with a zero mean. */
  ciHalfWidthPct: number | null;
  /** The half-width after each value, in cycle order (for the half-width vs cycle plot). */
  history: Array<{ cycle: number; n: number; ciHalfWidthPct: number | null }>;
}

export interface AdaptiveOutcome {
  metric: AdaptiveMetric;
  targetCiHalfWidthPct: number;
  minCycles: number;
  maxCycles: number;
  budgetGpuHours: number | null;
  /** GPU time recorded over every finished run. */
  spentGpuHours: number;
  configurations: AdaptiveConfigOutcome[];
}

export interface AdaptiveDecisions {
  /** Per planned run id. */
  runs: Map<string, AdaptiveRunDecision>;
  outcome: AdaptiveOutcome;
}

/** Half-width of the 95% Student-t CI as a percentage of |mean|; null when there is none. */
export function ciHalfWidthPct(values: readonly number[]): number | null {
  const s = cycleStats(values);
  if (s.mean === null || s.ci95High === null || s.mean === 0) return null;
  const pct = ((s.ci95High - s.mean) / Math.abs(s.mean)) * 100;
  return Number.isFinite(pct) ? pct : null;
}

interface ConfigTrack {
  values: Array<{ cycle: number; value: number }>;
  reason: AdaptiveStopReason | null;
  open: number;
  skipped: number;
}

function targetMet(t: ConfigTrack, rule: AdaptiveCycles): boolean {
  if (t.values.length < rule.min) return false;
  const pct = ciHalfWidthPct(t.values.map((v) => v.value));
  return pct !== null && pct <= rule.target.ciHalfWidthPct;
}

/** Runs of one cycle block (interleave / shuffle) or one run (sequential) share a gate. */
class Gate {
  private openBefore = 0;
  private openHere = 0;
  private spentBefore = 0;
  private spentHere = 0;
  private block: number | null = null;

  constructor(private readonly sequential: boolean) {}

  enter(cycle: number): void {
    if (this.sequential || this.block !== cycle) {
      this.openBefore += this.openHere;
      this.spentBefore += this.spentHere;
      this.openHere = 0;
      this.spentHere = 0;
      this.block = cycle;
    }
  }

  get isOpen(): boolean {
    return this.openBefore === 0;
  }

  get spentSeconds(): number {
    return this.spentBefore;
  }

  add(open: boolean, gpuSeconds: number): void {
    if (open) this.openHere += 1;
    this.spentHere += gpuSeconds;
  }
}

/** A run not finished yet: wait for its gate, skip it (its configuration stopped) or run it. */
function openRunDecision(t: ConfigTrack, gate: Gate, rule: AdaptiveCycles, budgetSeconds: number): AdaptiveRunDecision {
  if (!gate.isOpen) return 'wait';
  if (t.reason === null && targetMet(t, rule)) t.reason = 'targetMet';
  if (t.reason === null && gate.spentSeconds >= budgetSeconds) t.reason = 'budget';
  return t.reason === null ? 'run' : 'skip';
}

/** Decisions for every planned run (in execution order) from what has been recorded so far. */
export function decideAdaptive(input: {
  runs: readonly AdaptivePlannedRun[];
  order: MeasurementOrder;
  rule: AdaptiveCycles;
  record: (runId: string) => AdaptiveRunRecord;
}): AdaptiveDecisions {
  const { rule } = input;
  const tracks = new Map<string, ConfigTrack>();
  const decisions = new Map<string, AdaptiveRunDecision>();
  const gate = new Gate(input.order === 'sequential');
  const budgetSeconds = rule.budget === undefined ? Infinity : rule.budget.gpuHours * 3600;
  let spentTotal = 0;
  for (const run of input.runs) {
    let t = tracks.get(run.configurationId);
    if (t === undefined) tracks.set(run.configurationId, (t = { values: [], reason: null, open: 0, skipped: 0 }));
    gate.enter(run.cycle);
    const rec = input.record(run.id);
    if (rec.status !== 'open') {
      decisions.set(run.id, 'done');
      if (rec.status === 'complete' && rec.value !== null && Number.isFinite(rec.value))
        t.values.push({ cycle: run.cycle, value: rec.value });
      gate.add(false, rec.gpuSeconds);
      spentTotal += rec.gpuSeconds;
      continue;
    }
    const decision = openRunDecision(t, gate, rule, budgetSeconds);
    decisions.set(run.id, decision);
    if (decision === 'skip') t.skipped += 1;
    else {
      t.open += 1;
      gate.add(true, 0);
    }
  }
  const configurations = [...tracks.entries()].map(([id, t]) => configOutcome(id, t, rule));
  return {
    runs: decisions,
    outcome: {
      metric: rule.target.metric,
      targetCiHalfWidthPct: rule.target.ciHalfWidthPct,
      minCycles: rule.min,
      maxCycles: rule.max,
      budgetGpuHours: rule.budget?.gpuHours ?? null,
      spentGpuHours: spentTotal / 3600,
      configurations,
    },
  };
}

function configOutcome(configurationId: string, t: ConfigTrack, rule: AdaptiveCycles): AdaptiveConfigOutcome {
  const sorted = [...t.values].sort((a, b) => a.cycle - b.cycle);
  const values = sorted.map((v) => v.value);
  // Every planned cycle finished without an earlier stop: the target decides between the two reasons.
  if (t.reason === null && t.open === 0) t.reason = targetMet(t, rule) ? 'targetMet' : 'maxCycles';
  const stats = cycleStats(values);
  return {
    configurationId,
    state: t.reason === null ? 'measuring' : 'stopped',
    reason: t.reason,
    cycles: values.length,
    cyclesSkipped: t.skipped,
    mean: stats.mean,
    ciHalfWidthPct: ciHalfWidthPct(values),
    history: sorted.map((v, i) => ({
      cycle: v.cycle,
      n: i + 1,
      ciHalfWidthPct: ciHalfWidthPct(values.slice(0, i + 1)),
    })),
  };
}

/** The target metric's value in one run's result; null when the run has none. */
export function adaptiveMetricValue(result: RunResult, metric: AdaptiveMetric): number | null {
  const m = /^(ttftMs|itlMs|e2eMs|tpotMs)P(50|90|99)$/.exec(metric);
  if (m === null) return result.metrics[metric as 'joulesPerToken'] ?? null;
  const latency = result.latency[m[1] as 'ttftMs'];
  return latency[`p${m[2]}` as 'p50'] ?? null;
}

/**
 * GPU-seconds one finished run is charged: (idle baseline + recorded window + cool-down) x GPUs per
 * replica x replicas. Server start-up, model load and warm-up are not counted (they are shared by
 * the runs of a configuration in local mode, and not recorded in the results).
 */
export function adaptiveCharge(
  result: RunResult | null,
  run: { baselineSeconds: number; cooldownSeconds: number; gpusPerRun: number; replicas: number },
): number {
  const window = result?.metrics.windowSeconds ?? 0;
  return (run.baselineSeconds + window + run.cooldownSeconds) * run.gpusPerRun * run.replicas;
}
