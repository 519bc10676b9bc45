// Per-configuration (across cycles) and per-experiment results. Under `strict` only complete
// runs are merged; under `bestEffort` finished runs that lost messages (every replica sent its
// summary, something is missing) are merged too and named. Aborted runs and runs still in flight
// are never merged: their windows are cut short, so their figures describe a different workload.
// Runs with rejected or implausible input and runs in which every request failed are never merged
// either: their figures are not measurements.
import { LogHistogram } from '../lib/sketch/index.ts';
import {
  latencySummary,
  QUANTILES,
  RUN_METRICS,
  type LatencySummary,
  type QuantileName,
  type RunMetric,
  type RunResult,
} from './run-results.ts';
import type { RunState } from './run-state.ts';
import { cycleStats, type CycleStats } from './stats.ts';
import { LATENCY_METRICS, type FailurePolicy, type LatencyMetric } from './state.ts';

export interface ConfigResult {
  configId: string;
  configHash: string;
  failurePolicy: FailurePolicy;
  runsPlanned: number;
  runsIncluded: string[];
  /** Runs left out, each with why. */
  runsExcluded: { runId: string; status: string; reasons: string[] }[];
  /** Incomplete runs merged anyway (bestEffort only). */
  partialRuns: string[];
  simulated: boolean;
  /** Across cycles: mean, std and 95% CI (Student t) of each run metric. */
  metrics: Record<RunMetric, CycleStats>;
  /** Across cycles, of each run's percentile. */
  latency: Record<LatencyMetric, Record<QuantileName, CycleStats>>;
  /** Percentiles of all included runs' samples pooled into one sketch. */
  latencyPooled: Record<LatencyMetric, LatencySummary>;
}

export interface ExperimentResult {
  experimentUid: string;
  simulated: boolean;
  runs: { planned: number; pending: number; complete: number; incomplete: number; failed: number; aborted: number };
  configurations: number;
  totals: {
    energyJoules: number | null;
    baselineSubtractedJoules: number | null;
    outputTokens: number;
    inputTokens: number;
    requestsOk: number;
    requestsFailed: number;
    joulesPerToken: number | null;
    tokensPerJoule: number | null;
    joulesPerRequest: number | null;
    missing: Record<string, string>;
  };
  /**
   * Lowest mean gross J/token (GPU energy over the window, idle floor included) among configurations
   * with a value. `metric` names what it was chosen on; the baseline-subtracted figure (idle floor
   * removed) is shown beside it, since the two can rank configurations differently.
   */
  bestConfiguration: BestConfiguration | null;
  latencyPooled: Record<LatencyMetric, LatencySummary>;
}

export interface BestConfiguration {
  configId: string;
  metric: 'joulesPerToken';
  joulesPerTokenMean: number;
  joulesPerToken: CycleStats;
  baselineSubtractedJoulesPerTokenMean: number | null;
  baselineSubtractedJoulesPerToken: CycleStats;
  /** Cycles behind the figure; fewer than MIN_CYCLES_FOR_CI also shows in the stats' flags. */
  cycles: number;
}

export interface RollupInput {
  result: RunResult;
  state: RunState | undefined;
  failurePolicy: FailurePolicy;
}

/** Every planned replica has sent its summary: the run ended, whatever it lost on the way. */
function finished(state: RunState | undefined): boolean {
  if (state === undefined) return false;
  for (let r = 0; r < state.plan.replicas; r++) if (state.publisher(r)?.summary == null) return false;
  return true;
}

function included(r: RollupInput): boolean {
  if (r.result.inputRejected) return false;
  if (r.result.status === 'complete') return true;
  return r.failurePolicy === 'bestEffort' && r.result.status === 'incomplete' && finished(r.state);
}

/** One metric's sketches of the given runs merged into a new sketch, in the given order. */
export function pooledSketch(states: readonly (RunState | undefined)[], metric: LatencyMetric): LogHistogram | null {
  let merged: LogHistogram | null = null;
  for (const s of states) {
    const d = s?.sketches[metric];
    if (d === null || d === undefined) continue;
    merged ??= new LogHistogram();
    merged.merge(d);
  }
  return merged;
}

function pooled(states: (RunState | undefined)[]): Record<LatencyMetric, LatencySummary> {
  const out = {} as Record<LatencyMetric, LatencySummary>;
  for (const k of LATENCY_METRICS) out[k] = latencySummary(pooledSketch(states, k), k);
  return out;
}

function statsOf(
  runs: RunResult[],
  pick: (r: RunResult) => number | null,
  why: (r: RunResult) => string,
  metric?: RunMetric,
): CycleStats {
  const values: number[] = [];
  const skipped: string[] = [];
  for (const r of runs) {
    const v = pick(r);
    if (v === null) skipped.push(`${r.runId}: ${why(r)}`);
    else values.push(v);
  }
  // Latency percentiles (no metric named) and every run metric but the baseline-subtracted ones
  // cannot be negative; a baseline-subtracted figure can, when idle power is over-estimated.
  const nonNegative = metric === undefined || !metric.startsWith('baselineSubtracted');
  return cycleStats(values, skipped, { nonNegative });
}

export function configResult(configId: string, inputs: RollupInput[]): ConfigResult {
  const use = inputs.filter(included);
  const runs = use.map((i) => i.result);
  const metrics = {} as Record<RunMetric, CycleStats>;
  for (const k of RUN_METRICS)
    metrics[k] = statsOf(
      runs,
      (r) => r.metrics[k],
      (r) => r.missing[k] ?? 'missing',
      k,
    );
  const latency = {} as Record<LatencyMetric, Record<QuantileName, CycleStats>>;
  for (const k of LATENCY_METRICS) {
    const per = {} as Record<QuantileName, CycleStats>;
    for (const [q] of QUANTILES)
      per[q] = statsOf(
        runs,
        (r) => r.latency[k][q],
        (r) => r.latency[k].reason ?? 'missing',
      );
    latency[k] = per;
  }
  const first = inputs[0];
  return {
    configId,
    configHash: first?.result.configHash ?? '',
    failurePolicy: first?.failurePolicy ?? 'strict',
    runsPlanned: inputs.length,
    runsIncluded: runs.map((r) => r.runId),
    runsExcluded: inputs
      .filter((i) => !included(i))
      .map((i) => ({ runId: i.result.runId, status: i.result.status, reasons: i.result.reasons })),
    partialRuns: runs.filter((r) => r.status !== 'complete').map((r) => r.runId),
    simulated: runs.some((r) => r.simulated),
    metrics,
    latency,
    latencyPooled: pooled(use.map((i) => i.state)),
  };
}

function sumOrNull(runs: RunResult[], key: RunMetric, missing: Record<string, string>): number | null {
  let total = 0;
  for (const r of runs) {
    const v = r.metrics[key];
    if (v === null) {
      missing[key] ??= `run ${r.runId}: ${r.missing[key] ?? 'missing'}`;
      return null;
    }
    total += v;
  }
  return runs.length === 0 ? ((missing[key] = 'no run is included'), null) : total;
}

function divide(a: number | null, b: number | null): number | null {
  return a !== null && b !== null && b > 0 ? a / b : null;
}

export function experimentResult(
  experimentUid: string,
  inputs: RollupInput[],
  configs: ConfigResult[],
): ExperimentResult {
  const use = inputs.filter(included);
  const runs = use.map((i) => i.result);
  const missing: Record<string, string> = {};
  const energy = sumOrNull(runs, 'energyJoules', missing);
  const baselineSubtracted = sumOrNull(runs, 'baselineSubtractedJoules', missing);
  const count = (k: 'outputTokens' | 'inputTokens' | 'requestsOk' | 'requestsFailed'): number =>
    runs.reduce((a, r) => a + r.counts[k], 0);
  const tokens = count('outputTokens');
  const requests = count('requestsOk');
  const totals = {
    energyJoules: energy,
    baselineSubtractedJoules: baselineSubtracted,
    outputTokens: tokens,
    inputTokens: count('inputTokens'),
    requestsOk: requests,
    requestsFailed: count('requestsFailed'),
    joulesPerToken: divide(energy, tokens),
    tokensPerJoule: energy === null ? null : divide(tokens, energy),
    joulesPerRequest: divide(energy, requests),
    missing,
  };
  for (const k of ['joulesPerToken', 'tokensPerJoule', 'joulesPerRequest'] as const) {
    if (totals[k] === null) missing[k] ??= energy === null ? 'total energy is missing' : 'no tokens or requests';
  }
  let best: ExperimentResult['bestConfiguration'] = null;
  for (const c of configs) {
    const gross = c.metrics.joulesPerToken;
    const net = c.metrics.baselineSubtractedJoulesPerToken;
    if (gross.mean === null || (best !== null && gross.mean >= best.joulesPerTokenMean)) continue;
    best = {
      configId: c.configId,
      metric: 'joulesPerToken',
      joulesPerTokenMean: gross.mean,
      joulesPerToken: gross,
      baselineSubtractedJoulesPerTokenMean: net.mean,
      baselineSubtractedJoulesPerToken: net,
      cycles: gross.n,
    };
  }
  const status = (s: string): number => inputs.filter((i) => i.result.status === s).length;
  return {
    experimentUid,
    simulated: inputs.some((i) => i.result.simulated),
    runs: {
      planned: inputs.length,
      pending: status('pending'),
      complete: status('complete'),
      incomplete: status('incomplete'),
      failed: status('failed'),
      aborted: status('aborted'),
    },
    configurations: configs.length,
    totals,
    bestConfiguration: best,
    latencyPooled: pooled(use.map((i) => i.state)),
  };
}
