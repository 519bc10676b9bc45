// The streaming aggregator: wire messages in, per-run / per-configuration / per-experiment results out.
export { Aggregator, type AggregateResults, type RunVerdict } from './aggregator.ts';
export type { ApplyOutcome } from './run-state.ts';
export type { RunStatus } from './completeness.ts';
export {
  RUN_METRICS,
  QUANTILES,
  type RunResult,
  type RunMetric,
  type GpuEnergyResult,
  type LatencySummary,
  type QuantileName,
} from './run-results.ts';
export type { ConfigResult, ExperimentResult, BestConfiguration } from './rollup.ts';
export {
  cycleStats,
  studentTQuantile,
  MIN_CYCLES_FOR_CI,
  CYCLE_STAT_FLAGS,
  type CycleStats,
  type CycleStatFlag,
  type CycleStatsOptions,
} from './stats.ts';
export { POWER_LIMIT_FACTOR, ABSOLUTE_POWER_CEILING_WATTS } from './plausibility.ts';
export {
  FAILURE_POLICIES,
  LATENCY_METRICS,
  CHECKPOINT_VERSION,
  type FailurePolicy,
  type PlannedRun,
  type AggregatorPlan,
  type LatencyMetric,
} from './state.ts';
export { newAggregator } from './plan.ts';
export {
  analyseExperiment,
  ladderActions,
  hasLadder,
  type ExperimentAnalysis,
  type AnalysisInputs,
} from './analysis.ts';
export {
  ladderVerdict,
  ladderGate,
  kneeOf,
  KNEE_DEFINITION,
  type LadderAction,
  type LadderCurve,
  type LadderPoint,
  type LadderStepInput,
  type LadderVerdict,
} from './ladder.ts';
export { runSlo, configSlo, sloChoice, sloResults, type SloResults, type ConfigSlo, type RunSlo } from './slo.ts';
export {
  decideAdaptive,
  adaptiveMetricValue,
  adaptiveCharge,
  ciHalfWidthPct,
  ADAPTIVE_STOP_REASONS,
  type AdaptiveRunRecord,
  type AdaptiveRunDecision,
  type AdaptiveDecisions,
  type AdaptiveOutcome,
  type AdaptiveConfigOutcome,
  type AdaptiveStopReason,
} from './adaptive.ts';
