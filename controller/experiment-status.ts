// The status a pass wants, from its run table, the Aggregator's results and failure, and the status it
// started from: pure, so what a pass writes depends only on its inputs. Also the statuses of a spec
// that is invalid or cannot be rendered.
import type { RunMatrix } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import type { SpecIssue } from '../api/validation.ts';
import { REASONS } from '../api/conditions.ts';
import type { Best, ConfigurationResult, EnergyExperimentStatus, RunSummary } from '../api/status.ts';
import type { AggregateResults } from '../aggregator/index.ts';
import { measurementWeaknesses, statusMetrics, withAggregatorRunMetrics } from './aggregate-view.ts';
import type { AggregatorFailure } from './results.ts';
import {
  applyConditions,
  bestConfiguration,
  boundConfigurations,
  boundRuns,
  configurationResults,
  decidePhase,
  progressOf,
  type PhaseDecision,
} from './status.ts';

/** The phase and conditions this pass implies (runs, the Aggregator's weaknesses and failure). */
export function decideFrom(
  spec: EnergyExperimentSpec,
  runs: RunSummary[],
  simulated: boolean,
  aggregate: AggregateResults | null,
  found: { failure: AggregatorFailure | null; waiting: string | undefined },
): PhaseDecision {
  const { failure, waiting } = found;
  return decidePhase(runs, {
    suspended: spec.policy.suspend,
    strict: spec.policy.failurePolicy === 'strict',
    simulated,
    retrying: retryingRuns(runs),
    ...measurementWeaknesses(aggregate),
    ...(failure !== null ? { aggregatorFailure: failure.message } : {}),
    ...(waiting !== undefined ? { waiting } : {}),
  });
}

/** Runs between attempts after a failure (the Degraded Retrying condition counts them). */
function retryingRuns(runs: RunSummary[]): number {
  let n = 0;
  for (const r of runs)
    if (r.attempt > 0 && (r.phase === 'Pending' || r.phase === 'Running') && r.message !== undefined) n += 1;
  return n;
}

function validMessage(matrix: RunMatrix, warnings: SpecIssue[]): string {
  const head = `The spec is valid: ${matrix.configurations.length} configuration(s), ${matrix.runs.length} run(s).`;
  if (warnings.length === 0) return head;
  return `${head} Warnings: ${warnings.map((w) => `${w.path}: ${w.message}`).join('; ')}`.slice(0, 4000);
}

/** startTime once any run started, completionTime once finished: each set once, then kept. */
function statusTimes(
  runs: RunSummary[],
  finished: boolean,
  prev: EnergyExperimentStatus,
  nowIso: string,
): { started?: string; completionTime?: string } {
  const started = runs.some((r) => r.startTime !== undefined) ? (prev.startTime ?? nowIso) : undefined;
  const completionTime = finished ? (prev.completionTime ?? nowIso) : undefined;
  return { ...(started !== undefined ? { started } : {}), ...(completionTime !== undefined ? { completionTime } : {}) };
}

export interface StatusInputs {
  spec: EnergyExperimentSpec;
  matrix: RunMatrix;
  warnings: SpecIssue[];
  generation: number;
  runs: RunSummary[];
  prev: EnergyExperimentStatus;
  aggregate: AggregateResults | null;
  simulated: boolean;
  decision: PhaseDecision;
  artifact: EnergyExperimentStatus['artifact'];
  nowIso: string;
}

/** Every configuration's results (the artifact has them all; status the first few) and the best one. */
export function configurationsOf(
  matrix: RunMatrix,
  runs: RunSummary[],
  aggregate: AggregateResults | null,
): { all: ConfigurationResult[]; best: Best | undefined } {
  const all = configurationResults(matrix.configurations, runs, aggregate === null ? null : statusMetrics(aggregate));
  return { all, best: bestConfiguration(all) };
}

/** The whole status of a valid experiment: progress, bounded runs and configurations, best, conditions. */
export function desiredStatus(i: StatusInputs): EnergyExperimentStatus {
  const { all, best } = configurationsOf(i.matrix, i.runs, i.aggregate);
  const conditions = applyConditions(
    i.prev.conditions,
    [
      { type: 'Validated', status: 'True', reason: REASONS.SpecValid, message: validMessage(i.matrix, i.warnings) },
      ...i.decision.updates,
    ],
    i.nowIso,
    i.generation,
  );
  const { started, completionTime } = statusTimes(i.runs, i.decision.finished, i.prev, i.nowIso);
  return {
    observedGeneration: i.generation,
    phase: i.decision.phase,
    conditions,
    progress: progressOf(i.runs),
    runs: withAggregatorRunMetrics(boundRuns(i.runs), i.aggregate),
    configurations: boundConfigurations(all),
    ...(best !== undefined ? { best } : {}),
    ...(i.artifact !== undefined ? { artifact: i.artifact } : {}),
    simulated: i.simulated,
    ...(started !== undefined ? { startTime: started } : {}),
    ...(completionTime !== undefined ? { completionTime } : {}),
  };
}

function issueText(issues: readonly SpecIssue[]): string {
  return issues
    .map((i) => `${i.path}: ${i.message}`)
    .join('; ')
    .slice(0, 4000);
}

/** Validated=False and phase Invalid, naming every field; nothing runs until the spec is fixed. */
export function invalidStatus(
  prev: EnergyExperimentStatus,
  issues: readonly SpecIssue[],
  nowIso: string,
  generation: number,
): { status: EnergyExperimentStatus; message: string } {
  const message = issueText(issues);
  const conditions = applyConditions(
    prev.conditions,
    [
      { type: 'Validated', status: 'False', reason: REASONS.SpecInvalid, message: `The spec is invalid: ${message}` },
      {
        type: 'Running',
        status: 'False',
        reason: REASONS.SpecInvalid,
        message: 'Nothing runs until the spec is fixed.',
      },
      {
        type: 'Failed',
        status: 'True',
        reason: REASONS.SpecInvalid,
        message: 'The spec is invalid; fix it and the experiment is validated again.',
      },
    ],
    nowIso,
    generation,
  );
  return { status: { ...prev, observedGeneration: generation, phase: 'Invalid', conditions }, message };
}

/** A validated spec whose pod could not be rendered: Failed/InvalidSpec naming the field, not retried. */
export function renderFailedStatus(
  prev: EnergyExperimentStatus,
  issues: readonly SpecIssue[],
  nowIso: string,
  generation: number,
): { status: EnergyExperimentStatus; message: string } {
  const message = issueText(issues);
  const why = `A pod could not be rendered: ${message}`;
  const conditions = applyConditions(
    prev.conditions,
    [
      {
        type: 'Running',
        status: 'False',
        reason: REASONS.InvalidSpec,
        message: 'No pod can be built for this spec; nothing runs until it is changed.',
      },
      { type: 'Succeeded', status: 'False', reason: REASONS.InvalidSpec, message: why },
      { type: 'Failed', status: 'True', reason: REASONS.InvalidSpec, message: why },
    ],
    nowIso,
    generation,
  );
  return { status: { ...prev, observedGeneration: generation, phase: 'Failed', conditions }, message };
}
