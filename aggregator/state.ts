// The aggregator's mergeable state as plain data. The zod schemas double as the checkpoint
// validator, so the state and its persisted form cannot drift apart. No raw samples live here:
// every field is a running sum, a bound, or a sketch.
import { z } from 'zod';
import { AppliedGpuSettingsSchema, BackendMetricsSchema, ClientHealthSchema } from '../api/protocol.ts';

export const FAILURE_POLICIES = ['strict', 'bestEffort'] as const;
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

export const PlannedRunSchema = z.object({
  runId: z.string().min(1),
  configId: z.string().min(1),
  configHash: z.string(),
  cycle: z.number().int().min(0),
  /** Data-parallel pods of this run; each is one publisher with its own seq. */
  replicas: z.number().int().min(1),
  failurePolicy: z.enum(FAILURE_POLICIES),
});
export type PlannedRun = z.infer<typeof PlannedRunSchema>;

export const AggregatorPlanSchema = z.object({
  experimentUid: z.string().min(1),
  runs: z.array(PlannedRunSchema),
});
export type AggregatorPlan = z.infer<typeof AggregatorPlanSchema>;

const KIND_COUNTS = { hello: z.number(), ready: z.number(), sketch: z.number(), telemetry: z.number() };

export const SummaryStateSchema = z.object({
  seq: z.number(),
  messagesBefore: z.number(),
  countsByKind: z.object(KIND_COUNTS),
  requestsOk: z.number(),
  requestsFailed: z.number(),
  inputTokens: z.number(),
  outputTokens: z.number(),
  baselineStartMs: z.number().nullable(),
  baselineEndMs: z.number().nullable(),
  windowStartMs: z.number(),
  windowEndMs: z.number(),
  warnings: z.array(z.string()),
  backendMetrics: BackendMetricsSchema.optional(),
  client: ClientHealthSchema.optional(),
  gpuSettings: z.array(AppliedGpuSettingsSchema).optional(),
});
export type SummaryState = z.infer<typeof SummaryStateSchema>;

export const PublisherStateSchema = z.object({
  replica: z.number(),
  /** Every seq in 1..contiguousUpTo has been applied. */
  contiguousUpTo: z.number(),
  /** Applied seqs above contiguousUpTo (arrived early), ascending. Empty in the normal case. */
  ahead: z.array(z.number()),
  received: z.object({ ...KIND_COUNTS, summary: z.number(), aborted: z.number() }),
  /** Sums over this publisher's sketch messages, checked against its summary. */
  requestsOk: z.number(),
  requestsFailed: z.number(),
  inputTokens: z.number(),
  outputTokens: z.number(),
  /** Sum of the sketches' requestsSloMet; absent while none carried one (no SLO set, or an older agent). */
  requestsSloMet: z.number().optional(),
  gpuUuids: z.array(z.string()).nullable(),
  /** Each announced GPU's power limit (parallel to gpuUuids; null = not reported): bounds plausible power. */
  powerLimitsW: z.array(z.number().nullable()).default([]),
  configHash: z.string().nullable(),
  summary: SummaryStateSchema.nullable(),
  aborted: z.object({ phase: z.string(), reason: z.string() }).nullable(),
  /** Messages of this publisher that could not be used (e.g. an undecodable sketch); capped (MAX_PROBLEMS). */
  problems: z.array(z.string()),
});
export type PublisherState = z.infer<typeof PublisherStateSchema>;

const TickSchema = z.object({
  aligned: z.boolean(),
  uncertaintyMs: z.number(),
  waitedMs: z.number(),
  periodMs: z.number().nullable(),
  /** Power read with the mark, right after the edge: the power of the span between boundary and edge. */
  powerW: z.number().nullable().default(null),
});

/** Running integration of one GPU over one protocol segment (baseline or window). */
export const SegmentStateSchema = z.object({
  startMs: z.number(),
  startMj: z.number().nullable(),
  startMissing: z.string().nullable(),
  endMs: z.number().nullable(),
  endMj: z.number().nullable(),
  endMissing: z.string().nullable(),
  lastMs: z.number(),
  lastPowerW: z.number().nullable(),
  /** Last non-null counter reading, when it was taken, and the power integral at that moment. */
  lastMj: z.number().nullable(),
  lastMjMs: z.number(),
  powerIntegralAtLastMj: z.number(),
  coveredMsAtLastMj: z.number(),
  /** Sum of non-negative counter deltas. */
  counterMj: z.number(),
  /** Counter decreases (reset or wrap) whose span was replaced by integrated sampled power. */
  resets: z.array(z.object({ atMs: z.number(), integratedMj: z.number().nullable() })),
  /** Trapezoid integral of sampled power, W·ms = mJ, and the time it covers. */
  powerIntegralMj: z.number(),
  coveredMs: z.number(),
  powerSumW: z.number(),
  powerCount: z.number(),
  peakPowerW: z.number().nullable(),
  outOfOrder: z.number(),
  /** The marks' counter step edges (agent/telemetry/ticks.ts); null: an unaligned (older agent) mark. */
  startTick: TickSchema.nullable().default(null),
  endTick: TickSchema.nullable().default(null),
  /** Operating conditions over the segment's samples: OR of NVML throttle reasons, SM clock, temperature. */
  throttleMask: z.number().default(0),
  throttledSamples: z.number().default(0),
  conditionSamples: z.number().default(0),
  smClockMinMhz: z.number().nullable().default(null),
  smClockSumMhz: z.number().default(0),
  smClockCount: z.number().default(0),
  temperatureMaxC: z.number().nullable().default(null),
  /** Highest power a counter delta implies (delta over its span plus the counter's update slack), W. */
  maxImpliedPowerW: z.number().default(0),
  maxImpliedAtMs: z.number().default(0),
  /** How far the wall clock stepped back at the closing mark (ms; 0 = it did not). */
  clockStepBackMs: z.number().default(0),
});
export type SegmentState = z.infer<typeof SegmentStateSchema>;

export const GpuStateSchema = z.object({
  replica: z.number(),
  gpuUuid: z.string(),
  baseline: SegmentStateSchema.nullable(),
  window: SegmentStateSchema.nullable(),
});
export type GpuState = z.infer<typeof GpuStateSchema>;

export const LATENCY_METRICS = ['ttftMs', 'itlMs', 'e2eMs', 'tpotMs'] as const;
export type LatencyMetric = (typeof LATENCY_METRICS)[number];

export const RunStateSchema = z.object({
  runId: z.string(),
  attempt: z.number().int().min(0),
  simulated: z.boolean(),
  publishers: z.array(PublisherStateSchema),
  gpus: z.array(GpuStateSchema),
  /**
   * Failed requests by error class, as [class, count] pairs sorted by class: the classes are agent
   * input, so they never become keys of a plain object (`constructor`, `__proto__`; issue #17 item 4).
   * Version 1 checkpoints held a plain record; restore reads that too, keeping only finite counts.
   */
  errorClasses: z.union([
    z.array(z.tuple([z.string(), z.number()])),
    z.record(z.string(), z.unknown()).transform((r) =>
      Object.entries(r)
        .filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    ),
  ]),
  /** Rejected input of this attempt that no publisher's list holds (a replica outside the plan); capped. */
  problems: z.array(z.string()).default([]),
  /** base64 of LogHistogram.serialize() (lossless), or null when the run has none yet. */
  sketches: z.object({
    ttftMs: z.string().nullable(),
    itlMs: z.string().nullable(),
    e2eMs: z.string().nullable(),
    tpotMs: z.string().nullable(),
  }),
});
export type RunStateData = z.infer<typeof RunStateSchema>;

export const CHECKPOINT_FORMAT = 'llem-aggregator-checkpoint';
export const CHECKPOINT_VERSION = 2;
/** Versions restore reads: 1 lacks the started attempts and the plausibility fields (defaults fill them). */
export const READABLE_CHECKPOINT_VERSIONS: readonly number[] = [1, 2];

/** Attempts the runtime started, per run (attempt 0 is started by the plan itself). */
export const StartedAttemptsSchema = z.object({ runId: z.string(), attempts: z.array(z.number().int().min(0)) });

export const CheckpointSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  version: z.union([z.literal(1), z.literal(CHECKPOINT_VERSION)]),
  plan: AggregatorPlanSchema,
  lastStreamSeq: z.number(),
  started: z.array(StartedAttemptsSchema).default([]),
  runs: z.array(RunStateSchema),
});
export type CheckpointData = z.infer<typeof CheckpointSchema>;

export function newPublisher(replica: number): PublisherState {
  return {
    replica,
    contiguousUpTo: 0,
    ahead: [],
    received: { hello: 0, ready: 0, sketch: 0, telemetry: 0, summary: 0, aborted: 0 },
    requestsOk: 0,
    requestsFailed: 0,
    inputTokens: 0,
    outputTokens: 0,
    gpuUuids: null,
    powerLimitsW: [],
    configHash: null,
    summary: null,
    aborted: null,
    problems: [],
  };
}

/** Most problem sentences kept per publisher or run: a hostile agent cannot grow the state without bound. */
export const MAX_PROBLEMS = 20;

export function addProblem(list: string[], problem: string): void {
  if (list.length < MAX_PROBLEMS) list.push(problem);
  else if (list.length === MAX_PROBLEMS) list.push('further problems are not listed');
}
