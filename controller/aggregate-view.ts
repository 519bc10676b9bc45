// Adapter from the streaming Aggregator (aggregator/) to the small status shapes: the
// Aggregator owns the statistics (energy, latency sketches, Student-t intervals); status keeps a
// few named metrics per configuration (api/status.ts METRIC_NAMES).
import type { AggregateResults, CycleStats } from '../aggregator/index.ts';
import { SHORT_WINDOW_SECONDS } from '../api/protocol.ts';
import { statusStat } from './status.ts';
import type { RunSummary, Stat } from '../api/status.ts';

const RUN_METRIC_NAMES: Record<string, string> = {
  joulesPerToken: 'joulesPerToken',
  baselineSubtractedJoulesPerToken: 'baselineSubtractedJoulesPerToken',
  tokensPerJoule: 'tokensPerJoule',
  energyJoules: 'energyJoules',
  meanPowerWatts: 'averagePowerWatts',
  baselinePowerWatts: 'baselinePowerWatts',
  tokensPerSecond: 'outputTokensPerSecond',
  requestsPerSecond: 'requestsPerSecond',
};

const LATENCY_NAMES: [string, 'p50' | 'p99', string][] = [
  ['ttftMs', 'p50', 'ttftMsP50'],
  ['ttftMs', 'p99', 'ttftMsP99'],
  ['itlMs', 'p50', 'itlMsP50'],
  ['itlMs', 'p99', 'itlMsP99'],
  ['e2eMs', 'p50', 'e2eMsP50'],
  ['e2eMs', 'p99', 'e2eMsP99'],
  ['tpotMs', 'p50', 'tpotMsP50'],
];

const sig = (x: number): number => Number(x.toPrecision(6));

/**
 * Each succeeded run's J/token from the Aggregator's run result (absent when it has none, e.g. after
 * a counter reset it could not bridge); the controller's ledger never supplies it (ADR 0007).
 */
const runIndexes = new WeakMap<AggregateResults, Map<string, AggregateResults['runs'][number]>>();

/** Run results by id, built once per results object (status shows 200 runs of maybe 20,000). */
function runIndex(results: AggregateResults | null): Map<string, AggregateResults['runs'][number]> {
  if (results === null) return new Map();
  let index = runIndexes.get(results);
  if (index === undefined) {
    index = new Map(results.runs.map((r) => [r.runId, r]));
    runIndexes.set(results, index);
  }
  return index;
}

export function withAggregatorRunMetrics(runs: RunSummary[], results: AggregateResults | null): RunSummary[] {
  const byId = runIndex(results);
  return runs.map((r) => {
    const { joulesPerToken: _ledger, ...rest } = r;
    const jpt = r.phase === 'Succeeded' ? (byId.get(r.id)?.metrics.joulesPerToken ?? null) : null;
    return jpt === null ? rest : { ...rest, joulesPerToken: sig(jpt) };
  });
}

/**
 * What weakens the numbers, for the Degraded condition: partial runs merged, windows under 5 s, runs
 * whose load generator was itself saturated (its latencies include client queueing).
 */
type Weaknesses = { partialRuns: number; shortWindows: number; clientSaturated: number };
/** Per results object (a new one at most once a second): a status build does not rescan 20,000 runs. */
const weaknessesOf = new WeakMap<AggregateResults, Weaknesses>();
const metricsOf = new WeakMap<AggregateResults, Map<string, Record<string, Stat>>>();

export function measurementWeaknesses(results: AggregateResults | null): Weaknesses {
  if (results === null) return { partialRuns: 0, shortWindows: 0, clientSaturated: 0 };
  let w = weaknessesOf.get(results);
  if (w === undefined) {
    w = scanWeaknesses(results);
    weaknessesOf.set(results, w);
  }
  return w;
}

function scanWeaknesses(results: AggregateResults): Weaknesses {
  const partialRuns = results.configurations.reduce((n, c) => n + c.partialRuns.length, 0);
  // Only runs whose figures are reported (included in a configuration) weaken the numbers.
  const included = new Set(results.configurations.flatMap((c) => c.runsIncluded));
  const shortWindows = results.runs.filter(
    (r) =>
      included.has(r.runId) && r.gpus.some((g) => g.windowSeconds !== null && g.windowSeconds < SHORT_WINDOW_SECONDS),
  ).length;
  const clientSaturated = results.runs.filter((r) => included.has(r.runId) && r.client.some((c) => c.saturated)).length;
  return { partialRuns, shortWindows, clientSaturated };
}

/**
 * One configuration's status metrics, per ConfigResult object: results() returns the same object for a
 * configuration none of whose runs changed (ADR 0034), so a status build converts only the changed ones.
 */
const configMetricsOf = new WeakMap<AggregateResults['configurations'][number], Record<string, Stat>>();

function configMetrics(c: AggregateResults['configurations'][number]): Record<string, Stat> {
  const known = configMetricsOf.get(c);
  if (known !== undefined) return known;
  const metrics: Record<string, Stat> = {};
  for (const [from, to] of Object.entries(RUN_METRIC_NAMES)) {
    const s = statusStat((c.metrics as Record<string, CycleStats>)[from]);
    if (s !== undefined) metrics[to] = s;
  }
  for (const [metric, q, to] of LATENCY_NAMES) {
    const s = statusStat((c.latency as Record<string, Record<string, CycleStats>>)[metric]?.[q]);
    if (s !== undefined) metrics[to] = s;
  }
  configMetricsOf.set(c, metrics);
  return metrics;
}

/** Status metrics per configuration id, from the Aggregator's results. Shared objects: not to be mutated. */
export function statusMetrics(results: AggregateResults): Map<string, Record<string, Stat>> {
  const known = metricsOf.get(results);
  if (known !== undefined) return known;
  const out = new Map<string, Record<string, Stat>>();
  metricsOf.set(results, out);
  for (const c of results.configurations) out.set(c.configId, configMetrics(c));
  return out;
}
