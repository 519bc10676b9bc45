// Desired status from the run state: progress, per-configuration statistics over cycles (mean, std,
// Student-t 95% interval), the best configuration by J/token, conditions. Pure; the caller passes
// `now`, and `statusChanged` decides whether a patch is needed at all.
import type { Configuration } from '../api/matrix.ts';
import { initialConditions, setCondition, REASONS, type Condition, type ConditionUpdate } from '../api/conditions.ts';
import {
  progressSummary,
  MAX_STATUS_RUNS,
  MAX_STATUS_CONFIGURATIONS,
  type Best,
  type ConfigurationResult,
  type ExperimentPhase,
  type RunSummary,
  type Stat,
} from '../api/status.ts';
import { canonicalJson } from '../api/paths.ts';
import { cycleStats, type CycleStats } from '../aggregator/index.ts';

const sig = (x: number): number => Number(x.toPrecision(6));

/**
 * Cycle statistics in status form (6 significant digits); undefined without a value. One value has
 * no spread: std and the interval are left out, never shown as zero-width.
 */
export function statusStat(c: CycleStats | undefined): Stat | undefined {
  if (c === undefined || c.mean === null || c.n === 0) return undefined;
  const flags = c.flags.length > 0 ? { flags: [...c.flags] } : {};
  if (c.std === null || c.ci95Low === null || c.ci95High === null) return { n: c.n, mean: sig(c.mean), ...flags };
  return { n: c.n, mean: sig(c.mean), std: sig(c.std), ci95Low: sig(c.ci95Low), ci95High: sig(c.ci95High), ...flags };
}

export function stat(values: number[]): Stat {
  return statusStat(cycleStats(values, [], { nonNegative: true })) ?? { n: 0, mean: 0 };
}

/**
 * Per-configuration results: succeeded cycles from the run table, metrics only from the Aggregator.
 * Without Aggregator results the metrics are empty (and Degraded says why): never rough totals.
 */
export function configurationResults(
  configurations: Configuration[],
  runs: RunSummary[],
  metrics: Map<string, Record<string, Stat>> | null,
): ConfigurationResult[] {
  const succeeded = new Map<string, number>();
  for (const r of runs)
    if (r.phase === 'Succeeded') succeeded.set(r.configurationId, (succeeded.get(r.configurationId) ?? 0) + 1);
  return configurations.map((c) => {
    const point = displayPoint(c);
    return {
      id: c.id,
      backend: c.backend.name,
      configHash: c.configHash,
      point,
      cyclesSucceeded: succeeded.get(c.id) ?? 0,
      metrics: metrics?.get(c.id) ?? {},
    };
  });
}

const points = new WeakMap<Configuration, Record<string, string>>();

/** The sweep point as display strings, computed once per configuration (not per reconcile). */
function displayPoint(c: Configuration): Record<string, string> {
  let p = points.get(c);
  if (p === undefined) {
    p = Object.fromEntries(Object.entries(c.point).map(([k, v]) => [k, canonicalJson(v)]));
    points.set(c, p);
  }
  return p;
}

/** Status keeps at most this many bytes of configuration results; the artifact has every one. */
export const STATUS_CONFIGURATION_BYTES = 128 * 1024;

/** The first configurations, within MAX_STATUS_CONFIGURATIONS and STATUS_CONFIGURATION_BYTES. */
export function boundConfigurations(configs: ConfigurationResult[]): ConfigurationResult[] {
  return withinBytes(configs.slice(0, MAX_STATUS_CONFIGURATIONS), STATUS_CONFIGURATION_BYTES);
}

export function bestConfiguration(configs: ConfigurationResult[]): Best | undefined {
  let best: Best | undefined;
  for (const c of configs) {
    const j = c.metrics['joulesPerToken'];
    if (j === undefined || j.n === 0) continue;
    if (best === undefined || j.mean < best.joulesPerToken) {
      const net = c.metrics['baselineSubtractedJoulesPerToken'];
      best = {
        configurationId: c.id,
        backend: c.backend,
        configHash: c.configHash,
        metric: 'joulesPerToken',
        joulesPerToken: j.mean,
        ...(j.ci95Low !== undefined && j.ci95High !== undefined ? { ci95Low: j.ci95Low, ci95High: j.ci95High } : {}),
        ...(net !== undefined && net.n > 0 ? { baselineSubtractedJoulesPerToken: net.mean } : {}),
        cycles: j.n,
        ...(j.flags !== undefined && j.flags.length > 0 ? { flags: j.flags } : {}),
      };
    }
  }
  return best;
}

const STATUS_OPEN_RUNS = MAX_STATUS_RUNS / 2;
/** Status keeps at most this many bytes of runs (failure messages are up to 1 KiB each). */
export const STATUS_RUN_BYTES = 96 * 1024;

function withinBytes<T>(items: T[], budget: number): T[] {
  let bytes = 0;
  const out: T[] = [];
  for (const item of items) {
    bytes += JSON.stringify(item).length + 1;
    if (bytes > budget) break;
    out.push(item);
  }
  return out;
}

/**
 * The runs status shows, at most MAX_STATUS_RUNS: running and retrying runs first (up to half),
 * then failed runs, then the most recently finished; Pending runs not yet tried are only counted.
 * The whole table lives outside status (ADR 0014).
 */
export function boundRuns(runs: RunSummary[]): RunSummary[] {
  if (runs.length <= MAX_STATUS_RUNS && JSON.stringify(runs).length <= STATUS_RUN_BYTES) return runs;
  const open = runs
    .filter((r) => r.phase === 'Running' || (r.phase === 'Pending' && r.attempt > 0))
    .slice(0, STATUS_OPEN_RUNS);
  const failed = runs.filter((r) => r.phase === 'Failed');
  const succeeded = runs
    .filter((r) => r.phase === 'Succeeded')
    .sort((a, b) =>
      (b.completionTime ?? '') < (a.completionTime ?? '')
        ? -1
        : (b.completionTime ?? '') > (a.completionTime ?? '')
          ? 1
          : 0,
    );
  const shown = withinBytes([...open, ...failed, ...succeeded].slice(0, MAX_STATUS_RUNS), STATUS_RUN_BYTES);
  const order = new Map(runs.map((r, i) => [r.id, i]));
  return shown.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
}

export function progressOf(runs: RunSummary[]): ReturnType<typeof progressSummary> {
  const n = { Pending: 0, Running: 0, Succeeded: 0, Failed: 0, Skipped: 0 };
  for (const r of runs) n[r.phase] += 1;
  return progressSummary({
    total: runs.length,
    pending: n.Pending,
    running: n.Running,
    succeeded: n.Succeeded,
    failed: n.Failed,
    ...(n.Skipped > 0 ? { skipped: n.Skipped } : {}),
  });
}

export interface PhaseDecision {
  phase: ExperimentPhase;
  updates: ConditionUpdate[];
  finished: boolean;
}

export interface DegradedInputs {
  simulated: boolean;
  retrying: number;
  /** Runs merged with messages missing (bestEffort). */
  partialRuns?: number;
  /** Runs whose measurement window was under 5 s (coarse energy). */
  shortWindows?: number;
  /** Runs whose load generator added more than its saturation threshold (clientSaturated). */
  clientSaturated?: number;
  /** The Aggregator failed: its figures are incomplete or missing. */
  aggregatorFailure?: string;
  /** The scheduler cannot place a running attempt's pod: why (the Running condition says it). */
  waiting?: string;
}

/** The one Degraded condition: the most serious weakness of the numbers so far. */
function degradedCondition(o: DegradedInputs): ConditionUpdate {
  const partial = o.partialRuns ?? 0;
  const short = o.shortWindows ?? 0;
  if (o.aggregatorFailure !== undefined) {
    const message = `The aggregator failed (${o.aggregatorFailure}); the runs it failed on are retried and results may be missing; see the artifact's aggregatorFailure.`;
    return { type: 'Degraded', status: 'True', reason: REASONS.AggregatorFailed, message: message.slice(0, 2000) };
  }
  if (o.retrying > 0)
    return {
      type: 'Degraded',
      status: 'True',
      reason: REASONS.Retrying,
      message: `${o.retrying} run(s) failed an attempt and are being retried.`,
    };
  if (partial > 0)
    return {
      type: 'Degraded',
      status: 'True',
      reason: REASONS.MessagesLost,
      message: `${partial} run(s) are included with messages missing (failurePolicy bestEffort); see the artifact's partialRuns.`,
    };
  if (short > 0)
    return {
      type: 'Degraded',
      status: 'True',
      reason: REASONS.ShortWindow,
      message: `${short} run(s) measured for under 5 s: NVML energy (updated ~every 100 ms) is coarse; raise workload.requests or set measurement.extendToMinWindow.`,
    };
  if ((o.clientSaturated ?? 0) > 0) {
    return {
      type: 'Degraded',
      status: 'True',
      reason: REASONS.ClientSaturated,
      message: `${o.clientSaturated} run(s) had a saturated load generator (clientSaturated): their latencies include client queueing; see each run's client block.`,
    };
  }
  if (o.simulated)
    return {
      type: 'Degraded',
      status: 'True',
      reason: REASONS.Simulated,
      message: 'Numbers come from the simulated GPU and mock server, not real hardware.',
    };
  return { type: 'Degraded', status: 'False', reason: REASONS.AsExpected, message: 'No problems seen.' };
}

/** The Running condition of an experiment with runs still to finish. */
function runningCondition(
  p: ReturnType<typeof progressOf>,
  opts: { suspended: boolean; waiting?: string | undefined },
): ConditionUpdate {
  if (opts.suspended)
    return {
      type: 'Running',
      status: 'False',
      reason: REASONS.Suspended,
      message: 'Suspended: no new pods are started.',
    };
  return {
    type: 'Running',
    status: 'True',
    reason: opts.waiting === undefined ? REASONS.RunsInProgress : REASONS.Unschedulable,
    message:
      `${p.running} run(s) running, ${p.pending} pending, ${p.succeeded}/${p.total} succeeded.` +
      (opts.waiting === undefined ? '' : ` Waiting for a node: ${opts.waiting}`),
  };
}

export function decidePhase(
  runs: RunSummary[],
  opts: { suspended: boolean; strict: boolean } & DegradedInputs,
): PhaseDecision {
  const p = progressOf(runs);
  const finished = p.pending === 0 && p.running === 0;
  const degraded = degradedCondition(opts);
  if (!finished) {
    const running = runningCondition(p, opts);
    const inProgress: ConditionUpdate[] = [
      { type: 'Succeeded', status: 'Unknown', reason: REASONS.InProgress, message: 'Runs are not finished yet.' },
      { type: 'Failed', status: 'False', reason: REASONS.InProgress, message: 'Runs are not finished yet.' },
    ];
    return {
      phase: opts.suspended ? 'Suspended' : p.running > 0 || p.succeeded + p.failed > 0 ? 'Running' : 'Pending',
      updates: [running, ...inProgress, degraded],
      finished,
    };
  }
  const finishedRunning: ConditionUpdate = {
    type: 'Running',
    status: 'False',
    reason: REASONS.Finished,
    message: 'Every run has finished.',
  };
  if (p.failed === 0) {
    return {
      phase: 'Succeeded',
      finished,
      updates: [
        finishedRunning,
        {
          type: 'Succeeded',
          status: 'True',
          reason: REASONS.AllRunsSucceeded,
          message: `All ${p.total - (p.skipped ?? 0)} run(s) succeeded${p.skipped === undefined ? '' : `; ${p.skipped} not needed (adaptive cycles)`}.`,
        },
        { type: 'Failed', status: 'False', reason: REASONS.AllRunsSucceeded, message: 'No run failed.' },
        degraded,
      ],
    };
  }
  // The first failed run's own message (e.g. the image that could not be pulled) says why.
  const why = runs.find((r) => r.phase === 'Failed' && r.message !== undefined)?.message;
  const msg = `${p.failed} of ${p.total} run(s) failed after exhausting policy.retries.${why === undefined ? '' : ` First: ${why.slice(0, 600)}`}`;
  if (!opts.strict && p.succeeded > 0) {
    return {
      phase: 'Succeeded',
      finished,
      updates: [
        finishedRunning,
        { type: 'Succeeded', status: 'True', reason: REASONS.CompletedWithFailures, message: msg },
        { type: 'Failed', status: 'False', reason: REASONS.CompletedWithFailures, message: msg },
        degraded,
      ],
    };
  }
  return {
    phase: 'Failed',
    finished,
    updates: [
      finishedRunning,
      { type: 'Succeeded', status: 'False', reason: REASONS.RetriesExhausted, message: msg },
      { type: 'Failed', status: 'True', reason: REASONS.RetriesExhausted, message: msg },
      degraded,
    ],
  };
}

export function applyConditions(
  previous: Condition[],
  updates: ConditionUpdate[],
  now: string,
  generation: number,
): Condition[] {
  let out = initialConditions(previous, { now, observedGeneration: generation });
  for (const u of updates) out = setCondition(out, u, { now, observedGeneration: generation });
  return out;
}

/** Deep comparison on canonical JSON: unchanged status -> no patch. */
export function statusChanged(previous: unknown, next: unknown): boolean {
  return canonicalJson(previous ?? {}) !== canonicalJson(next);
}
