// SLO, goodput and load-ladder analysis over the aggregator's results (ADR 0030): one function both
// runtimes call, for their results files and for the ladder gate before each run.
import type { Configuration, PlannedRun } from '../api/matrix.ts';
import type { SloSpec } from '../api/spec.ts';
import type { Aggregator, AggregateResults } from './aggregator.ts';
import { ladderCurves, ladderGate, ladderVerdicts, type LadderAction, type LadderCurve } from './ladder.ts';
import { sloResults, type SloResults } from './slo.ts';

export interface ExperimentAnalysis {
  /** Null when the spec sets no SLO. */
  slo: SloResults | null;
  /** One curve per load ladder; empty without ladders. */
  ladders: LadderCurve[];
}

export interface AnalysisInputs {
  configurations: readonly Configuration[];
  runs: readonly PlannedRun[];
  slo: SloSpec | undefined;
  aggregator: Pick<Aggregator, 'runQuantile'>;
  results: Pick<AggregateResults, 'runs' | 'configurations'>;
  /** The run has ended for good (complete, failed with its retries spent, or skipped). */
  ended: (runId: string) => boolean;
}

function gateInputs(i: AnalysisInputs, slo: SloResults | null): Parameters<typeof ladderGate>[0] {
  const tps = new Map(i.results.configurations.map((c) => [c.configId, c.metrics.tokensPerSecond.mean]));
  const broken = new Map(
    (slo?.configurations ?? []).map((c) => [c.configId, c.meets === false ? c.summary : null] as const),
  );
  return {
    configurations: i.configurations,
    runs: i.runs,
    ended: i.ended,
    step: (id) => ({ tokensPerSecond: tps.get(id) ?? null, sloBroken: broken.get(id) ?? null }),
  };
}

export function hasLadder(runs: readonly PlannedRun[]): boolean {
  return runs.some((r) => r.ladder !== undefined);
}

export function analyseExperiment(i: AnalysisInputs): ExperimentAnalysis {
  const slo =
    i.slo === undefined ? null : sloResults(i.slo, i.results, (id, m, q) => i.aggregator.runQuantile(id, m, q));
  if (!hasLadder(i.runs)) return { slo, ladders: [] };
  const verdicts = ladderVerdicts(gateInputs(i, slo));
  const ladders = ladderCurves(i.configurations, i.results.configurations, slo?.configurations ?? [], (g) => {
    return verdicts.get(g) ?? { saturatedAt: null, reason: 'unknown ladder', decidedThrough: -1 };
  });
  return { slo, ladders };
}

/** What each ladder run should do now (absent: not a ladder run, it runs). */
export function ladderActions(i: AnalysisInputs): Map<string, LadderAction> {
  if (!hasLadder(i.runs)) return new Map();
  const slo =
    i.slo === undefined ? null : sloResults(i.slo, i.results, (id, m, q) => i.aggregator.runQuantile(id, m, q));
  return ladderGate(gateInputs(i, slo));
}
