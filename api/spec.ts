// The EnergyExperiment spec: the single source of truth for what an experiment is.
// Every default is explicit here; the CRD (crds/) and `kubectl explain` are generated from it.
// Objects are strict: an unknown field is an error (the manifest loader adds a did-you-mean hint).
// Rules across several fields live in api/validation.ts (mirrored as CEL rules in the CRD where CEL
// can say them); rules across a sweep point live in api/matrix.ts. No transforms here: the schema
// must stay representable as a structural OpenAPI schema.
import { z } from 'zod';
import {
  BACKEND_TYPES,
  BackendSchema,
  PytorchParamsSchema,
  TensorrtParamsSchema,
  VllmParamsSchema,
} from './spec-backends.ts';
import {
  cel,
  Dns1123LabelSchema,
  exactlyOne,
  freeObject,
  nonNegInt,
  nonNegNumber,
  oneOf,
  posInt,
  stringMap,
} from './spec-parts.ts';
import { TokenDistributionSchema, WorkloadSchema } from './spec-workload.ts';
import { GpuSettingsSchema } from './spec-gpu.ts';
import { SloSchema } from './spec-ladder.ts';
import { CyclesSchema } from './spec-adaptive.ts';

export * from './spec-backends.ts';
export * from './spec-workload.ts';
export * from './spec-gpu.ts';
export * from './spec-ladder.ts';
export * from './spec-adaptive.ts';
export { Dns1123LabelSchema, type CelRule } from './spec-parts.ts';

export const API_GROUP = 'llem.dev';
export const API_VERSION_NAME = 'v1alpha1';
export const API_VERSION = `${API_GROUP}/${API_VERSION_NAME}` as const;
export const KIND = 'EnergyExperiment' as const;
export const PLURAL = 'energyexperiments';
export const SHORT_NAME = 'ee';

// ---------------------------------------------------------------- metadata

export const ObjectMetaSchema = z.strictObject({
  name: Dns1123LabelSchema.describe(
    'Experiment name; a DNS-1123 label because run ids, pods and subjects derive from it.',
  ),
  namespace: Dns1123LabelSchema.optional(),
  labels: stringMap.optional(),
  annotations: stringMap.optional(),
});

// ---------------------------------------------------------------- model

export const SecretKeyRefSchema = z.strictObject({
  name: Dns1123LabelSchema,
  key: z.string().min(1).default('token').describe('Key in the Secret.'),
});

export const RandomArchitectureSchema = z
  .strictObject({
    architecture: z.enum(['llama', 'qwen2', 'mistral']).default('llama'),
    hiddenSize: posInt.default(256),
    numLayers: posInt.default(2),
    numHeads: posInt.default(4),
    numKvHeads: posInt.default(4),
    intermediateSize: posInt.default(512),
    vocabSize: posInt.default(32000),
    maxPositionEmbeddings: posInt.default(4096),
  })
  .describe(
    'Random-initialised weights built from this architecture config: for tests and smoke runs; no weights download. vLLM takes config and tokenizer (so the vocabulary) from model.name (same architecture) and the other sizes via --hf-overrides; TensorRT-LLM cannot load random weights.',
  )
  .meta(
    cel(
      {
        rule: 'self.hiddenSize % self.numHeads == 0',
        message: 'hiddenSize must be a multiple of numHeads',
        fieldPath: '.hiddenSize',
      },
      {
        rule: 'self.numHeads % self.numKvHeads == 0',
        message: 'numKvHeads must divide numHeads',
        fieldPath: '.numKvHeads',
      },
    ),
  );

export const ModelSourceSchema = z
  .strictObject({
    huggingFace: z
      .strictObject({
        tokenSecretRef: SecretKeyRefSchema.optional().describe('Secret holding the HF token; only for gated models.'),
      })
      .optional(),
    pvc: z
      .strictObject({
        claimName: Dns1123LabelSchema,
        path: z.string().min(1).default('/').describe('Model directory inside the volume.'),
      })
      .optional()
      .describe('Weights already on a PersistentVolumeClaim (mounted read-only).'),
    random: RandomArchitectureSchema.optional(),
  })
  .superRefine(oneOf(['huggingFace', 'pvc', 'random'], 'model.source'))
  .meta(cel(exactlyOne(['huggingFace', 'pvc', 'random'], 'model.source')));

export const DTYPES = ['auto', 'float16', 'bfloat16', 'float32'] as const;

export const ModelSchema = z.strictObject({
  name: z.string().min(1).max(200).describe('Hugging Face model id (also the tokenizer source).'),
  revision: z.string().min(1).default('main').describe('Hugging Face revision (branch, tag or commit).'),
  source: ModelSourceSchema.prefault({ huggingFace: {} }).describe(
    'Where the weights come from; default: the Hugging Face Hub.',
  ),
  dtype: z.enum(DTYPES).default('auto').describe("Weight and activation dtype; auto: the model config's."),
});

// ---------------------------------------------------------------- sweep

/** A dotted path a sweep may vary: `<backendType>.<param>` or `workload.<field>` (nested with dots). */
export const SWEEP_ROOTS = [...BACKEND_TYPES, 'workload', 'model', 'gpu'] as const;
const SWEEP_PATH = /^(pytorch|vllm|tensorrt|workload|model|gpu)(\.[A-Za-z][A-Za-z0-9]*)+$/;

export const SweepValueSchema = z.union([z.string(), z.number(), z.boolean(), z.null(), freeObject]);
export type SweepValue = z.infer<typeof SweepValueSchema>;

const sweepPathKey = z
  .string()
  .max(128)
  .regex(SWEEP_PATH, {
    message: `must be a dotted path starting with one of ${SWEEP_ROOTS.join(', ')} (e.g. vllm.maxNumSeqs, workload.concurrency)`,
  });

export const MAX_SWEEP_AXES = 16;

export const SweepSchema = z.strictObject({
  axes: z
    .record(sweepPathKey, z.array(SweepValueSchema).min(1).max(64))
    .refine((axes) => Object.keys(axes).length <= MAX_SWEEP_AXES, { message: `at most ${MAX_SWEEP_AXES} axes` })
    // Axis names are checked by zod only: CEL `matches` over map keys of unknown length can exceed
    // the API server's rule cost budget, and the controller validates with zod anyway.
    .meta({ maxProperties: MAX_SWEEP_AXES })
    .default({})
    .describe('Cartesian axes: dotted path -> values. Backend axes apply only to backends of that type.'),
  points: z
    .array(z.record(sweepPathKey, SweepValueSchema))
    .max(1024)
    .default([])
    .describe(
      'Explicit points, added after the Cartesian product of axes (duplicates collapse); with no axes, only these points run.',
    ),
  skipInvalid: z
    .boolean()
    .default(false)
    .describe(
      'false: an invalid combination makes the manifest invalid. true: it is skipped and listed with its reason.',
    ),
});

// ---------------------------------------------------------------- measurement

export const MEASUREMENT_ORDERS = ['interleave', 'shuffle', 'sequential'] as const;
export type MeasurementOrder = (typeof MEASUREMENT_ORDERS)[number];

export const MeasurementSchema = z.strictObject({
  cycles: CyclesSchema,
  order: z
    .enum(MEASUREMENT_ORDERS)
    .default('interleave')
    .describe(
      'interleave: every config once per cycle; shuffle: seeded permutation; sequential: all cycles of a config together.',
    ),
  seed: nonNegInt.default(0),
  warmupRequests: nonNegInt.default(8),
  baselineSeconds: nonNegNumber.default(30).describe('Idle baseline with the model loaded; 0 skips it.'),
  sampleIntervalMs: z.number().int().min(10).max(60000).default(100),
  minWindowSeconds: nonNegNumber
    .default(5)
    .describe('Windows shorter than this are flagged; below 5 s NVML energy is coarse.'),
  extendToMinWindow: z
    .boolean()
    .default(false)
    .describe('Keep issuing requests until the window lasts minWindowSeconds, instead of only flagging a short one.'),
  cooldownSeconds: nonNegNumber.default(10),
  steadyState: z.boolean().default(false).describe('Report over the steady-state window only (ML.ENERGY style).'),
  gpuAttribution: z
    .enum(['exclusive', 'wholeDevice'])
    .default('exclusive')
    .describe(
      'exclusive: MIG slices are refused (NVML has no per-slice energy). wholeDevice: a MIG slice is measured as its whole parent GPU, and every result carries that warning.',
    ),
  requireExclusiveGpu: z
    .boolean()
    .optional()
    .describe(
      'Fail a run when another process uses a measured GPU (else a warning). Default: true in a cluster, false for llem run.',
    ),
  minClockFraction: z
    .number()
    .min(0)
    .max(1)
    .default(0.8)
    .describe('A run whose busy window samples ran the SM clock below this fraction of the maximum gets a warning.'),
});

// ---------------------------------------------------------------- placement and policy

export const TolerationSchema = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).default('Equal'),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

/**
 * Environment names llem itself sets in a run pod, or that would change what the pod measures or may
 * see (the NVIDIA runtime reads NVIDIA_VISIBLE_DEVICES: "all" would expose every GPU of the node).
 */
export const RESERVED_ENV_NAMES = [
  'HF_TOKEN',
  'HF_TOKEN_PATH',
  'HF_HUB_OFFLINE',
  'HF_HUB_DISABLE_TELEMETRY',
  'DO_NOT_TRACK',
  'PYTHONPATH',
  'PYTHONUNBUFFERED',
  'VLLM_NO_USAGE_STATS',
  'NODE_OPTIONS',
  'LD_PRELOAD',
  'NVIDIA_VISIBLE_DEVICES',
  'NVIDIA_DRIVER_CAPABILITIES',
  'CUDA_VISIBLE_DEVICES',
] as const;
const RESERVED_ENV_PREFIXES = ['LLEM_'] as const;
/** A C identifier: what every shell and the kubelet accept, and what `$(NAME)` references can name. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isReservedEnvName(name: string): boolean {
  const upper = name.toUpperCase();
  return (
    (RESERVED_ENV_NAMES as readonly string[]).includes(upper) || RESERVED_ENV_PREFIXES.some((p) => upper.startsWith(p))
  );
}

const envName = z.string().superRefine((name, ctx) => {
  if (!ENV_NAME.test(name)) {
    ctx.addIssue({
      code: 'custom',
      message: `must be letters, digits and underscores, not starting with a digit (got ${JSON.stringify(name.slice(0, 64))})`,
    });
  } else if (isReservedEnvName(name)) {
    ctx.addIssue({
      code: 'custom',
      message: `${name} is reserved: llem sets it (LLEM_*, ${RESERVED_ENV_NAMES.join(', ')}); choose another name`,
    });
  }
});

function uniqueEnvNames(env: readonly { name: string }[], ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  env.forEach((e, i) => {
    const first = seen.get(e.name);
    if (first !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: [i, 'name'],
        message: `${e.name} is already set by env[${first}]; give each variable once`,
      });
    else seen.set(e.name, i);
  });
}

export const PodTemplateOverridesSchema = z.strictObject({
  labels: stringMap.optional().describe('Added to every run pod.'),
  annotations: stringMap.optional().describe('Added to every run pod.'),
  priorityClassName: z.string().optional(),
  serviceAccountName: z.string().optional(),
  env: z
    .array(z.strictObject({ name: envName, value: z.string() }))
    .default([])
    .superRefine(uniqueEnvNames)
    .describe(
      'Extra environment for the backend container (no secrets: use tokenSecretRef). Names llem sets are refused.',
    ),
  runAsNonRoot: z
    .boolean()
    .optional()
    .describe(
      'Refuse to start the backend as root. Default: true for pytorch and vllm (llem images run as uid 10001), false for tensorrt (the NGC image runs as root).',
    ),
  resources: z
    .strictObject({ requests: stringMap.optional(), limits: stringMap.optional() })
    .optional()
    .describe('CPU/memory for the backend container; the nvidia.com/gpu limit always comes from gpusPerRun.'),
  shmSize: z
    .string()
    .default('8Gi')
    .describe('Size of the /dev/shm emptyDir (vLLM and NCCL need more than the 64 MiB default).'),
});

export const PlacementSchema = z.strictObject({
  gpusPerRun: posInt.max(64).default(1).describe('GPUs per run replica (one pod).'),
  replicas: posInt
    .max(256)
    .default(1)
    .describe(
      'Data-parallel replicas of one run, started together: one pod each in a cluster; with llem run one server each, on its own gpusPerRun GPUs.',
    ),
  parallelism: posInt.default(1).describe('Runs in flight at once.'),
  nodeSelector: stringMap.default({}),
  tolerations: z.array(TolerationSchema).default([]),
  affinity: freeObject.optional().describe('A core/v1 Affinity, passed to every run pod as written.'),
  runtimeClassName: z.string().optional().describe('e.g. nvidia, where the GPU runtime is not the default.'),
  podTemplate: PodTemplateOverridesSchema.prefault({}).describe('Overrides for the run pods.'),
});

export const FAILURE_POLICIES = ['strict', 'bestEffort'] as const;

export const PolicySchema = z.strictObject({
  retries: nonNegInt.max(20).default(2).describe('Further attempts of a failed run (a new pod each).'),
  runTimeoutSeconds: z.number().int().min(10).default(3600).describe('One attempt of one run, start-up included.'),
  failurePolicy: z
    .enum(FAILURE_POLICIES)
    .default('strict')
    .describe(
      'strict: a run without complete data fails and is retried, never silently partial; bestEffort: the experiment completes with the runs that succeeded, and finished runs that lost messages are merged too, named in partialRuns (aborted runs never are).',
    ),
  ttlSecondsAfterFinished: nonNegInt
    .optional()
    .describe('Delete the finished experiment after this long; absent: keep it.'),
  suspend: z
    .boolean()
    .default(false)
    .describe(
      'true: stop. Pods of runs in flight are deleted (each such run uses one of policy.retries and runs again on resume) and no new runs start; false: carry on.',
    ),
});

// ---------------------------------------------------------------- the resource

const backendName = '(has(%s.name) ? %s.name : %s.type)';
const nameOf = (v: string): string => backendName.replaceAll('%s', v);
// CEL cannot see into sweep axes (their values are untyped, so the API server leaves them out of
// the CEL type): these rules check the base values as written, and api/validation.ts does the same
// so that `llem validate` and `kubectl apply` agree (docs/adr/0002).

export const EnergyExperimentSpecSchema = z
  .strictObject({
    model: ModelSchema,
    backends: z
      .array(BackendSchema)
      .min(1)
      .max(16)
      .meta(
        cel({
          rule: `self.all(b, self.exists_one(c, ${nameOf('c')} == ${nameOf('b')}))`,
          message: 'backend names (default: the type) must be unique',
        }),
      ),
    sweep: SweepSchema.prefault({}),
    workload: WorkloadSchema.prefault({}),
    measurement: MeasurementSchema.prefault({}),
    placement: PlacementSchema.prefault({}),
    gpu: GpuSettingsSchema.prefault({}).describe(
      'GPU power limit and locked clocks the runs use (sweepable: gpu.powerLimitWatts ...); restored after every run.',
    ),
    policy: PolicySchema.prefault({}),
    slo: SloSchema.optional(),
  })
  .meta(
    cel(
      ...(['vllm', 'tensorrt'] as const).map((t) => ({
        rule:
          `self.backends.all(b, !has(b.${t}) || !has(b.${t}.tensorParallelSize) || !has(b.${t}.pipelineParallelSize) || ` +
          `b.${t}.tensorParallelSize * b.${t}.pipelineParallelSize <= (has(self.placement) && has(self.placement.gpusPerRun) ? self.placement.gpusPerRun : 1))`,
        message: `${t}: tensorParallelSize x pipelineParallelSize must not exceed placement.gpusPerRun`,
      })),
      {
        rule: "!has(self.workload) || !has(self.workload.mode) || self.workload.mode != 'rate' || has(self.workload.ratePerSecond)",
        message: 'workload.ratePerSecond is required when workload.mode is rate',
      },
      // The backend renderers' refusals (api/rules.ts renderRefusals), so kubectl apply agrees with llem validate.
      {
        rule:
          "self.backends.all(b, b.type != 'pytorch' || " +
          '(has(b.pytorch) && has(b.pytorch.tensorParallelSize) ? b.pytorch.tensorParallelSize : 1) == ' +
          '(has(self.placement) && has(self.placement.gpusPerRun) ? self.placement.gpusPerRun : 1))',
        message:
          'the pytorch backend serves from exactly pytorch.tensorParallelSize GPUs (default 1); placement.gpusPerRun must equal it',
      },
      {
        rule: "!self.backends.exists(b, b.type == 'tensorrt') || !has(self.model.source) || !has(self.model.source.random)",
        message: 'trtllm-serve cannot load random weights; use model.source.huggingFace or pvc for tensorrt',
      },
      {
        rule:
          "!self.backends.exists(b, b.type == 'tensorrt') || !has(self.model.source) || !has(self.model.source.huggingFace) || " +
          "!has(self.model.revision) || self.model.revision == 'main'",
        message: 'trtllm-serve has no revision option; put that revision on a PVC (model.source.pvc)',
      },
    ),
  );

export const EnergyExperimentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: ObjectMetaSchema,
  spec: EnergyExperimentSpecSchema,
  /** Present on objects read back from the cluster; ignored by validation. */
  status: z.unknown().optional(),
});

export type EnergyExperiment = z.output<typeof EnergyExperimentSchema>;
export type EnergyExperimentInput = z.input<typeof EnergyExperimentSchema>;
export type EnergyExperimentSpec = z.output<typeof EnergyExperimentSpecSchema>;
export type EnergyExperimentSpecInput = z.input<typeof EnergyExperimentSpecSchema>;
export type ModelSpec = z.output<typeof ModelSchema>;
export type BackendSpec = z.output<typeof BackendSchema>;
export type PytorchParams = z.output<typeof PytorchParamsSchema>;
export type VllmParams = z.output<typeof VllmParamsSchema>;
export type TensorrtParams = z.output<typeof TensorrtParamsSchema>;
export type SweepSpec = z.output<typeof SweepSchema>;
export type WorkloadSpec = z.output<typeof WorkloadSchema>;
export type TokenDistribution = z.output<typeof TokenDistributionSchema>;
export type MeasurementSpec = z.output<typeof MeasurementSchema>;
export type PlacementSpec = z.output<typeof PlacementSchema>;
export type PolicySpec = z.output<typeof PolicySchema>;
export type GpuSpec = z.output<typeof GpuSettingsSchema>;

/** Parameter schema per backend type: the matrix uses it to default and re-validate swept values. */
export const BACKEND_PARAM_SCHEMAS = {
  pytorch: PytorchParamsSchema,
  vllm: VllmParamsSchema,
  tensorrt: TensorrtParamsSchema,
} as const;

export type BackendParams = PytorchParams | VllmParams | TensorrtParams;
