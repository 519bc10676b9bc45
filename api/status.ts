// EnergyExperiment status: small on purpose. The full report lives in the results artifact.
import { z } from 'zod';
import { ConditionSchema } from './conditions.ts';

/**
 * What weakens a statistic: `fewCycles` = fewer than 3 cycles (the interval rests on t with 1
 * degree of freedom, or there is none); `ciClampedAtZero` = the Student-t lower bound fell below
 * zero for a quantity that cannot be negative and is shown as 0.
 */
export const STAT_FLAGS = ['fewCycles', 'ciClampedAtZero'] as const;

/** Summary of one metric across the cycles of a configuration (Student t 95% interval). */
/** Across cycles; std and the 95% interval need two values and are absent with one (not zero-width). */
export const StatSchema = z.strictObject({
  n: z.number().int().min(0),
  mean: z.number(),
  std: z.number().min(0).optional(),
  ci95Low: z.number().optional(),
  ci95High: z.number().optional(),
  flags: z.array(z.enum(STAT_FLAGS)).optional(),
});
export type Stat = z.output<typeof StatSchema>;

/**
 * Metric names used in status and the artifact. Energy is the GPU energy-counter delta over the
 * measurement window summed over all GPUs of all replicas; per-token figures divide by output tokens.
 */
export const METRIC_NAMES = [
  'joulesPerToken',
  'baselineSubtractedJoulesPerToken',
  'tokensPerJoule',
  'energyJoules',
  'averagePowerWatts',
  'baselinePowerWatts',
  'outputTokensPerSecond',
  'requestsPerSecond',
  'ttftMsP50',
  'ttftMsP99',
  'itlMsP50',
  'itlMsP99',
  'e2eMsP50',
  'e2eMsP99',
  'tpotMsP50',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export const MetricsSchema = z
  .record(z.string(), StatSchema)
  .describe(`Keyed by metric name: ${METRIC_NAMES.join(', ')}.`);

export const EXPERIMENT_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Suspended', 'Invalid'] as const;
export type ExperimentPhase = (typeof EXPERIMENT_PHASES)[number];

/** Skipped: a load-ladder step past saturation (ADR 0030), or a run adaptive cycles found not needed (ADR 0031). */
export const RUN_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Skipped'] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

export const ProgressSchema = z.strictObject({
  total: z.number().int().min(0),
  pending: z.number().int().min(0),
  running: z.number().int().min(0),
  succeeded: z.number().int().min(0),
  failed: z.number().int().min(0),
  /** Runs skipped: ladder steps past saturation, runs adaptive cycles found not needed; absent: none. */
  skipped: z.number().int().min(0).optional(),
  /** "succeeded/total", for the Progress printer column (total less the skipped runs). */
  summary: z.string(),
});
export type Progress = z.output<typeof ProgressSchema>;

/** Most runs shown in status; older finished runs drop out (the artifact keeps all of them). */
export const MAX_STATUS_RUNS = 200;
export const MAX_STATUS_CONFIGURATIONS = 256;

export const RunSummarySchema = z.strictObject({
  id: z.string(),
  configurationId: z.string(),
  cycle: z.number().int().min(0),
  phase: z.enum(RUN_PHASES),
  attempt: z.number().int().min(0),
  startTime: z.string().optional(),
  completionTime: z.string().optional(),
  joulesPerToken: z.number().optional(),
  message: z.string().max(1024).optional(),
});
export type RunSummary = z.output<typeof RunSummarySchema>;

export const ConfigurationResultSchema = z.strictObject({
  id: z.string(),
  backend: z.string(),
  configHash: z.string(),
  /** The sweep point as `path=value` pairs (JSON values), for display. */
  point: z.record(z.string(), z.string()),
  cyclesSucceeded: z.number().int().min(0),
  metrics: MetricsSchema,
});
export type ConfigurationResult = z.output<typeof ConfigurationResultSchema>;

/**
 * The configuration with the lowest mean gross J/token (`metric`): GPU energy over the window,
 * idle floor included. The baseline-subtracted J/token (idle floor removed) is shown beside it.
 */
export const BestSchema = z.strictObject({
  configurationId: z.string(),
  backend: z.string(),
  configHash: z.string(),
  metric: z.literal('joulesPerToken').optional(),
  joulesPerToken: z.number(),
  ci95Low: z.number().optional(),
  ci95High: z.number().optional(),
  baselineSubtractedJoulesPerToken: z.number().optional(),
  cycles: z.number().int().min(0).optional(),
  flags: z.array(z.enum(STAT_FLAGS)).optional(),
});

export const ArtifactSchema = z.strictObject({
  /** `nats-obj://<bucket>/<name>` in cluster mode, a directory path locally. */
  uri: z.string(),
  kind: z.enum(['objectStore', 'directory']),
});

export const EnergyExperimentStatusSchema = z.strictObject({
  observedGeneration: z.number().int().min(0).optional(),
  phase: z.enum(EXPERIMENT_PHASES).optional(),
  conditions: z
    .array(ConditionSchema)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
    .default([]),
  progress: ProgressSchema.optional(),
  runs: z.array(RunSummarySchema).max(MAX_STATUS_RUNS).default([]),
  configurations: z.array(ConfigurationResultSchema).max(MAX_STATUS_CONFIGURATIONS).default([]),
  best: BestSchema.optional(),
  artifact: ArtifactSchema.optional(),
  /** True when any number came from the simulated GPU or mock server. */
  simulated: z.boolean().optional(),
  startTime: z.string().optional(),
  completionTime: z.string().optional(),
});

export type EnergyExperimentStatus = z.output<typeof EnergyExperimentStatusSchema>;
export type EnergyExperimentStatusInput = z.input<typeof EnergyExperimentStatusSchema>;
export type Best = z.output<typeof BestSchema>;
export type Artifact = z.output<typeof ArtifactSchema>;

export function progressSummary(p: Omit<Progress, 'summary'>): Progress {
  return { ...p, summary: `${p.succeeded}/${p.total - (p.skipped ?? 0)}` };
}
