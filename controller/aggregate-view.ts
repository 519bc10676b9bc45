// Adapter from the streaming Aggregator (controller/aggregator/) to the small status shapes: the
// Aggregator owns the statistics (energy, latency sketches, Student-t intervals); status keeps a
// few named metrics per configuration (api/status.ts METRIC_NAMES).
import { Aggregator, type AggregateResults, type CycleStats } from './aggregator/index.ts';
import type { FailurePolicy } from './aggregator/index.ts';
import type { RunMatrix } from '../api/matrix.ts';
import type { RunSummary, Stat } from '../api/status.ts';

export function newAggregator(experimentUid: string, matrix: RunMatrix, replicas: number, failurePolicy: FailurePolicy): Aggregator {
  return new Aggregator({
    experimentUid,
    runs: matrix.runs.map((r) => ({ runId: r.id, configId: r.configurationId, configHash: r.configHash, cycle: r.cycle, replicas, failurePolicy })),
  });
}

const RUN_METRIC_NAMES: Record<string, string> = {
  joulesPerToken: 'joulesPerToken',
  tokensPerJoule: 'tokensPerJoule',
  energyJoules: 'energyJoules',
  meanPowerWatts: 'averagePowerWatts',
  baselinePowerWatts: 'baselinePowerWatts',
  tokensPerSecond: 'outputTokensPerSecond',
  requestsPerSecond: 'requestsPerSecond',
};

const LATENCY_NAMES: [string, 'p50' | 'p99', string][] = [
  ['ttftMs', 'p50', 'ttftMsP50'], ['ttftMs', 'p99', 'ttftMsP99'], ['itlMs', 'p50', 'itlMsP50'], ['itlMs', 'p99', 'itlMsP99'],
  ['e2eMs', 'p50', 'e2eMsP50'], ['e2eMs', 'p99', 'e2eMsP99'], ['tpotMs', 'p50', 'tpotMsP50'],
];

const sig = (x: number): number => Number(x.toPrecision(6));

/** NVML's energy counter moves every ~100 ms: under this a window's energy is coarse (DESIGN.md). */
const SHORT_WINDOW_SECONDS = 5;

function toStat(c: CycleStats | undefined): Stat | undefined {
  if (c === undefined || c.mean === null || c.n === 0) return undefined;
  // One value has no spread: std and the interval are left out, never shown as zero-width.
  if (c.std === null || c.ci95Low === null || c.ci95High === null) return { n: c.n, mean: sig(c.mean) };
  return { n: c.n, mean: sig(c.mean), std: sig(c.std), ci95Low: sig(c.ci95Low), ci95High: sig(c.ci95High) };
}

/**
 * Each succeeded run's J/token from the Aggregator's run result (absent when it has none, e.g. after
 * a counter reset it could not bridge); the controller's ledger never supplies it (ADR 0007).
 */
export function withAggregatorRunMetrics(runs: RunSummary[], results: AggregateResults | null): RunSummary[] {
  const byId = new Map((results?.runs ?? []).map((r) => [r.runId, r]));
  return runs.map((r) => {
    const { joulesPerToken: _ledger, ...rest } = r;
    const jpt = r.phase === 'Succeeded' ? byId.get(r.id)?.metrics.joulesPerToken ?? null : null;
    return jpt === null ? rest : { ...rest, joulesPerToken: sig(jpt) };
  });
}

/** What weakens the numbers, for the Degraded condition: partial runs merged, windows under 5 s. */
export function measurementWeaknesses(results: AggregateResults | null): { partialRuns: number; shortWindows: number } {
  if (results === null) return { partialRuns: 0, shortWindows: 0 };
  const partialRuns = results.configurations.reduce((n, c) => n + c.partialRuns.length, 0);
  // Only runs whose figures are reported (included in a configuration) weaken the numbers.
  const included = new Set(results.configurations.flatMap((c) => c.runsIncluded));
  const shortWindows = results.runs.filter((r) => included.has(r.runId) && r.gpus.some((g) => g.windowSeconds !== null && g.windowSeconds < SHORT_WINDOW_SECONDS)).length;
  return { partialRuns, shortWindows };
}

/** Status metrics per configuration id, from the Aggregator's results. */
export function statusMetrics(results: AggregateResults): Map<string, Record<string, Stat>> {
  const out = new Map<string, Record<string, Stat>>();
  for (const c of results.configurations) {
    const metrics: Record<string, Stat> = {};
    for (const [from, to] of Object.entries(RUN_METRIC_NAMES)) {
      const s = toStat((c.metrics as Record<string, CycleStats>)[from]);
      if (s !== undefined) metrics[to] = s;
    }
    for (const [metric, q, to] of LATENCY_NAMES) {
      const s = toStat((c.latency as Record<string, Record<string, CycleStats>>)[metric]?.[q]);
      if (s !== undefined) metrics[to] = s;
    }
    out.set(c.configId, metrics);
  }
  return out;
}
