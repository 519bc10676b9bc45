// metav1.Condition-style conditions for EnergyExperiment status. Pure functions: the caller passes
// `now`, so a reconcile that changes nothing produces byte-identical conditions (and no write).
import { z } from 'zod';

export const CONDITION_TYPES = ['Validated', 'Running', 'Succeeded', 'Failed', 'Degraded'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;
export type ConditionStatus = (typeof CONDITION_STATUSES)[number];

/** Reasons are one CamelCase word each; messages are human sentences. */
export const REASONS = {
  // Validated
  SpecValid: 'SpecValid',
  SpecInvalid: 'SpecInvalid',
  // Running
  Pending: 'Pending',
  RunsInProgress: 'RunsInProgress',
  /** A running attempt's pod waits for a node the scheduler cannot find (e.g. the only node is lost). */
  Unschedulable: 'Unschedulable',
  Suspended: 'Suspended',
  Finished: 'Finished',
  // Succeeded / Failed
  AllRunsSucceeded: 'AllRunsSucceeded',
  CompletedWithFailures: 'CompletedWithFailures',
  RunFailed: 'RunFailed',
  RetriesExhausted: 'RetriesExhausted',
  InProgress: 'InProgress',
  // Degraded
  AsExpected: 'AsExpected',
  ShortWindow: 'ShortWindow',
  ClientSaturated: 'ClientSaturated',
  MessagesLost: 'MessagesLost',
  Retrying: 'Retrying',
  Simulated: 'Simulated',
  AggregatorFailed: 'AggregatorFailed',
  // Failed: a configuration validated but its pod could not be rendered (a bug: validation = rendering)
  InvalidSpec: 'InvalidSpec',
  // any
  Initializing: 'Initializing',
} as const;
export type ConditionReason = (typeof REASONS)[keyof typeof REASONS];

const REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

export const ConditionSchema = z.strictObject({
  type: z.enum(CONDITION_TYPES),
  status: z.enum(CONDITION_STATUSES),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: z.string().describe('RFC 3339 time of the last status change.'),
  reason: z.string().min(1).max(1024).regex(REASON_PATTERN),
  message: z.string().max(32768),
});
export type Condition = z.output<typeof ConditionSchema>;

export interface ConditionUpdate {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export function getCondition(conditions: readonly Condition[], type: ConditionType): Condition | undefined {
  return conditions.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[], type: ConditionType): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

/**
 * Returns a new list with `update` applied. `lastTransitionTime` moves only when the status flips;
 * reason/message/observedGeneration are updated in place. Order follows CONDITION_TYPES.
 */
export function setCondition(
  conditions: readonly Condition[],
  update: ConditionUpdate,
  context: { now: string; observedGeneration: number },
): Condition[] {
  const previous = getCondition(conditions, update.type);
  const lastTransitionTime =
    previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : context.now;
  const next: Condition = { ...update, observedGeneration: context.observedGeneration, lastTransitionTime };
  const others = conditions.filter((c) => c.type !== update.type);
  return sortConditions([...others, next]);
}

/** Every condition type present; the ones not yet known are `Unknown` (reason Initializing). */
export function initialConditions(
  conditions: readonly Condition[],
  context: { now: string; observedGeneration: number },
): Condition[] {
  let out = [...conditions];
  for (const type of CONDITION_TYPES) {
    if (getCondition(out, type) === undefined) {
      out = setCondition(
        out,
        { type, status: 'Unknown', reason: REASONS.Initializing, message: 'Not yet known.' },
        context,
      );
    }
  }
  return out;
}

export function sortConditions(conditions: readonly Condition[]): Condition[] {
  const rank = (t: ConditionType): number => CONDITION_TYPES.indexOf(t);
  return [...conditions].sort((a, b) => rank(a.type) - rank(b.type));
}

/** True when both lists say the same thing (ignores order). Use it to skip no-op status patches. */
export function conditionsEqual(a: readonly Condition[], b: readonly Condition[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((c) => {
    const o = getCondition(b, c.type);
    return (
      o !== undefined &&
      o.status === c.status &&
      o.reason === c.reason &&
      o.message === c.message &&
      o.lastTransitionTime === c.lastTransitionTime &&
      o.observedGeneration === c.observedGeneration
    );
  });
}
