// The load-ladder gate in cluster mode (ADR 0030): each pass asks, from the run table's phases and the
// Aggregator's results (both persisted: the table in the KV bucket, the Aggregator checkpointed), which
// ladder runs start, wait or are skipped. A restarted controller reloads both and decides the same, and
// no step's decision depends on anything held only in memory.
import type { RunMatrix } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import type { RunSummary } from '../api/status.ts';
import {
  analyseExperiment,
  ladderActions,
  type AggregateResults,
  type ExperimentAnalysis,
  type LadderAction,
} from '../aggregator/index.ts';
import type { ExperimentFeed } from './results.ts';
import { ended } from './runs.ts';

export function ladderGateOf(
  spec: EnergyExperimentSpec,
  matrix: RunMatrix,
  feed: Pick<ExperimentFeed, 'aggregate' | 'cdfSource'>,
  runs: readonly RunSummary[],
): ReadonlyMap<string, LadderAction> {
  const results = feed.aggregate(true);
  const source = feed.cdfSource();
  if (results === null || source === null) {
    // Without the Aggregator nothing can be judged: only the first step may run.
    const hold = { action: 'hold', reason: 'the aggregator is unavailable' } as const;
    return new Map(matrix.runs.filter((r) => (r.ladder?.step ?? 0) > 0).map((r) => [r.id, hold]));
  }
  return ladderActions(analysisInput(spec, matrix, source, runs, results));
}

/** SLO goodput and ladder curves for the artifact (results.json, report.html); undefined: the spec asks for neither. */
export function artifactAnalysis(
  spec: EnergyExperimentSpec,
  matrix: RunMatrix,
  feed: Pick<ExperimentFeed, 'cdfSource'>,
  runs: readonly RunSummary[],
  results: AggregateResults | null,
): ExperimentAnalysis | undefined {
  const source = feed.cdfSource();
  if (results === null || source === null) return undefined;
  const analysis = analyseExperiment(analysisInput(spec, matrix, source, runs, results));
  return analysis.slo === null && analysis.ladders.length === 0 ? undefined : analysis;
}

/** What the ladder gate and the artifact's analysis both judge from: the plan, the SLOs and the recorded runs. */
function analysisInput(
  spec: EnergyExperimentSpec,
  matrix: RunMatrix,
  source: NonNullable<ReturnType<ExperimentFeed['cdfSource']>>,
  runs: readonly RunSummary[],
  results: AggregateResults,
): Parameters<typeof analyseExperiment>[0] & Parameters<typeof ladderActions>[0] {
  const byId = new Map(runs.map((r) => [r.id, r]));
  return {
    configurations: matrix.configurations,
    runs: matrix.runs,
    slo: spec.slo,
    aggregator: source,
    results,
    ended: (id) => {
      const r = byId.get(id);
      return r !== undefined && ended(r);
    },
  };
}
