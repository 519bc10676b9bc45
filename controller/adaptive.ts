// Adaptive cycles in the cluster (ADR 0031): the run state machine asks, each pass, which Pending runs
// may start, which wait for their cycle block, and which are not needed. The answer is
// aggregator/adaptive.ts over the run table (Succeeded / Failed) and the Aggregator's results of the
// Succeeded runs, so a restarted controller (run table + checkpoint) decides exactly as before.
import type { RunMatrix } from '../api/matrix.ts';
import { cyclePlan, type EnergyExperimentSpec } from '../api/spec.ts';
import type { RunSummary } from '../api/status.ts';
import {
  adaptiveCharge,
  adaptiveMetricValue,
  decideAdaptive,
  type AdaptiveDecisions,
  type AdaptiveRunRecord,
  type RunResult,
} from '../aggregator/index.ts';
import type { RunInputs } from './runs.ts';

/** Finished runs' records, per run matrix (one per experiment generation): they never change. */
const finishedRecords = new WeakMap<RunMatrix, Map<string, AdaptiveRunRecord>>();

const OPEN: AdaptiveRunRecord = { status: 'open', value: null, gpuSeconds: 0 };

export function adaptiveDecisions(
  spec: EnergyExperimentSpec,
  matrix: RunMatrix,
  runs: readonly RunSummary[],
  runResult: (runId: string) => RunResult | null,
): AdaptiveDecisions | null {
  const { adaptive } = cyclePlan(spec.measurement.cycles);
  if (adaptive === null) return null;
  let known = finishedRecords.get(matrix);
  if (known === undefined) finishedRecords.set(matrix, (known = new Map()));
  const cache = known;
  const phases = new Map(runs.map((r) => [r.id, r.phase]));
  const m = spec.measurement;
  const cost = { baselineSeconds: m.baselineSeconds, cooldownSeconds: m.cooldownSeconds };
  const record = (runId: string): AdaptiveRunRecord => {
    const hit = cache.get(runId);
    if (hit !== undefined) return hit;
    const phase = phases.get(runId);
    if (phase !== 'Succeeded' && phase !== 'Failed') return OPEN;
    const result = runResult(runId);
    // A Succeeded run whose result the Aggregator cannot give (it failed): wait rather than decide wrongly.
    if (phase === 'Succeeded' && result === null) return OPEN;
    const rec: AdaptiveRunRecord = {
      status: phase === 'Succeeded' ? 'complete' : 'failed',
      value: phase === 'Succeeded' && result !== null ? adaptiveMetricValue(result, adaptive.target.metric) : null,
      gpuSeconds: adaptiveCharge(result, {
        ...cost,
        gpusPerRun: spec.placement.gpusPerRun,
        replicas: spec.placement.replicas,
      }),
    };
    cache.set(runId, rec);
    return rec;
  };
  return decideAdaptive({ runs: matrix.runs, order: m.order, rule: adaptive, record });
}

/** stepRuns' admission for an adaptive experiment; undefined for a fixed cycle count. */
export function adaptiveAdmission(
  spec: EnergyExperimentSpec,
  matrix: RunMatrix,
  runResult: (runId: string) => RunResult | null,
): RunInputs['admission'] {
  if (cyclePlan(spec.measurement.cycles).adaptive === null) return undefined;
  return (runs) => adaptiveDecisions(spec, matrix, runs, runResult)?.runs ?? new Map();
}
