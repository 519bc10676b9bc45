// The EnergyExperiment spec: the single source of truth for what an experiment is.
// Every default is explicit here; the CRD (crds/) and `kubectl explain` are generated from it.
// Objects are strict: an unknown field is an error (the manifest loader adds a did-you-mean hint).
// Rules across several fields live in api/validation.ts (mirrored as CEL rules in the CRD where CEL
// can say them); rules across a sweep point live in api/matrix.ts. No transforms here: the schema
// must stay representable as a structural OpenAPI schema.
import { z } from 'zod';
import { DNS1123_LABEL_PATTERN } from './names.ts';

export const API_GROUP = 'llem.dev';
export const API_VERSION_NAME = 'v1alpha1';
export const API_VERSION = `${API_GROUP}/${API_VERSION_NAME}` as const;
export const KIND = 'EnergyExperiment' as const;
export const PLURAL = 'energyexperiments';
export const SHORT_NAME = 'ee';

const DNS1123_MESSAGE = 'must be a DNS-1123 label: at most 63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit';

export const Dns1123LabelSchema = z
  .string()
  .max(63, { message: DNS1123_MESSAGE })
  .regex(new RegExp(DNS1123_LABEL_PATTERN), { message: DNS1123_MESSAGE });

/** A CEL rule for the CRD (x-kubernetes-validations), next to the zod rule it mirrors. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
}
function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}
const exactlyOne = (keys: readonly string[], what: string): CelRule => ({
  rule: `[${keys.map((k) => `has(self.${k})`).join(', ')}].filter(x, x).size() == 1`,
  message: `${what} must set exactly one of ${keys.join(', ')}`,
});

const posInt = z.number().int().min(1);
const nonNegInt = z.number().int().min(0);
const nonNegNumber = z.number().min(0);
const stringMap = z.record(z.string(), z.string());
/** Free-form Kubernetes object (affinity, pod spec fragments): kept as given, validated by the API server. */
const freeObject = z.record(z.string(), z.unknown());

function oneOf<T extends Record<string, unknown>>(keys: readonly (keyof T & string)[], what: string) {
  return (value: T, ctx: z.core.$RefinementCtx<T>): void => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      const got = present.length === 0 ? 'none' : present.join(', ');
      ctx.addIssue({ code: 'custom', message: `${what} must set exactly one of ${keys.join(', ')} (got ${got})` });
    }
  };
}

// ---------------------------------------------------------------- metadata

export const ObjectMetaSchema = z.strictObject({
  name: Dns1123LabelSchema.describe('Experiment name; a DNS-1123 label because run ids, pods and subjects derive from it.'),
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
  .describe('Random-initialised weights built from this architecture config: for tests and smoke runs; no download.')
  .meta(
    cel(
      { rule: 'self.hiddenSize % self.numHeads == 0', message: 'hiddenSize must be a multiple of numHeads', fieldPath: '.hiddenSize' },
      { rule: 'self.numHeads % self.numKvHeads == 0', message: 'numKvHeads must divide numHeads', fieldPath: '.numKvHeads' },
    ),
  );

export const ModelSourceSchema = z
  .strictObject({
    huggingFace: z
      .strictObject({ tokenSecretRef: SecretKeyRefSchema.optional().describe('Secret holding the HF token; only for gated models.') })
      .optional(),
    pvc: z
      .strictObject({ claimName: Dns1123LabelSchema, path: z.string().min(1).default('/').describe('Model directory inside the volume.') })
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
  source: ModelSourceSchema.prefault({ huggingFace: {} }).describe('Where the weights come from; default: the Hugging Face Hub.'),
  dtype: z.enum(DTYPES).default('auto').describe("Weight and activation dtype; auto: the model config's."),
});

// ---------------------------------------------------------------- backends

export const BACKEND_TYPES = ['pytorch', 'vllm', 'tensorrt'] as const;
/** Names reserved for backends we intend to add; rejected with a clear message until then. */
export const RESERVED_BACKEND_TYPES = ['sglang'] as const;
export type BackendType = (typeof BACKEND_TYPES)[number];

export const PytorchParamsSchema = z.strictObject({
  batching: z.enum(['static', 'dynamic']).default('dynamic').describe('static: fixed batches of maxBatchSize; dynamic: requests join as slots free up.'),
  maxBatchSize: posInt.default(8).describe('Most sequences generated together.'),
  attnImplementation: z.enum(['eager', 'sdpa', 'flash_attention_2']).default('sdpa').describe('transformers attn_implementation.'),
  compile: z.boolean().default(false).describe('torch.compile the model before serving.'),
  quantization: z.enum(['none', 'bitsandbytes4bit', 'bitsandbytes8bit']).default('none').describe('Load-time quantisation.'),
});

export const SpeculativeSchema = z.strictObject({
  method: z.enum(['ngram', 'draftModel', 'eagle', 'eagle3', 'mtp']),
  model: z.string().min(1).optional().describe('Draft model id; required for draftModel, eagle and eagle3.'),
  numSpeculativeTokens: posInt.default(4).describe('Tokens proposed per step.'),
}).meta(
  cel({
    rule: "!(self.method in ['draftModel', 'eagle', 'eagle3']) || has(self.model)",
    message: 'model is required for speculative methods draftModel, eagle and eagle3',
    fieldPath: '.model',
  }),
);

export const VllmParamsSchema = z.strictObject({
  tensorParallelSize: posInt.default(1).describe('--tensor-parallel-size; with pipelineParallelSize at most placement.gpusPerRun.'),
  pipelineParallelSize: posInt.default(1).describe('--pipeline-parallel-size.'),
  maxNumSeqs: posInt.default(256).describe('--max-num-seqs: most sequences in one batch.'),
  maxNumBatchedTokens: posInt.optional().describe('--max-num-batched-tokens; absent: vLLM chooses.'),
  maxModelLen: posInt.optional().describe('--max-model-len; absent: the model config. Must fit the longest request.'),
  gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9).describe('--gpu-memory-utilization: fraction of GPU memory vLLM may use.'),
  quantization: z.enum(['none', 'awq', 'gptq', 'fp8', 'bitsandbytes']).default('none').describe('--quantization; none: as the checkpoint is.'),
  kvCacheDtype: z.enum(['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2']).default('auto').describe('--kv-cache-dtype.'),
  enablePrefixCaching: z.boolean().default(false).describe('--enable-prefix-caching (off by default so repeated prompts do not flatter the numbers).'),
  enableChunkedPrefill: z.boolean().default(true).describe('--enable-chunked-prefill.'),
  speculative: SpeculativeSchema.optional().describe('--speculative-config; absent: no speculative decoding.'),
  enforceEager: z.boolean().default(false).describe('--enforce-eager: no CUDA graphs (faster start, slower decode).'),
});

export const TensorrtParamsSchema = z.strictObject({
  tensorParallelSize: posInt.default(1).describe('--tp_size; with pipelineParallelSize at most placement.gpusPerRun.'),
  pipelineParallelSize: posInt.default(1).describe('--pp_size.'),
  maxBatchSize: posInt.default(256).describe('--max_batch_size.'),
  maxNumTokens: posInt.default(8192).describe('--max_num_tokens: most tokens in one scheduled batch.'),
  kvCacheFreeGpuMemoryFraction: z.number().gt(0).max(1).default(0.9).describe('--kv_cache_free_gpu_memory_fraction.'),
  backend: z.enum(['pytorch', 'trt']).default('pytorch').describe('trtllm-serve --backend: the PyTorch flow or a built TensorRT engine.'),
  quantization: z.enum(['none', 'fp8', 'int8', 'int4_awq', 'nvfp4']).default('none').describe('Quantisation the checkpoint is expected to carry.'),
});

export const BackendSchema = z
  .strictObject({
    type: z.enum(BACKEND_TYPES, {
      error: (iss) =>
        RESERVED_BACKEND_TYPES.includes(iss.input as 'sglang')
          ? `backend type "${String(iss.input)}" is reserved but not supported yet; use one of ${BACKEND_TYPES.join(', ')}`
          : `must be one of ${BACKEND_TYPES.join(', ')} (got ${JSON.stringify(iss.input) ?? 'nothing'})`,
    }),
    name: z
      .string()
      .max(20, { message: 'must be at most 20 characters (it is part of run ids)' })
      .regex(new RegExp(DNS1123_LABEL_PATTERN), { message: DNS1123_MESSAGE })
      .optional()
      .describe('Unique name of this backend entry; defaults to its type. Part of configuration and run ids.'),
    image: z.string().min(1).optional().describe("Container image override; defaults to the chart's image for the type."),
    pytorch: PytorchParamsSchema.optional(),
    vllm: VllmParamsSchema.optional(),
    tensorrt: TensorrtParamsSchema.optional(),
    extraArgs: z.array(z.string()).default([]).describe('Passed verbatim to the backend server command line.'),
  })
  .superRefine((b, ctx) => {
    for (const t of BACKEND_TYPES) {
      if (t !== b.type && b[t] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [t], message: `parameters for "${t}" given on a backend of type "${b.type}"` });
      }
    }
  })
  .meta(
    cel(
      ...BACKEND_TYPES.map((t) => ({
        rule: `!has(self.${t}) || self.type == '${t}'`,
        message: `${t} parameters are only allowed on a backend of type ${t}`,
        fieldPath: `.${t}`,
      })),
    ),
  );

// ---------------------------------------------------------------- sweep

/** A dotted path a sweep may vary: `<backendType>.<param>` or `workload.<field>` (nested with dots). */
export const SWEEP_ROOTS = [...BACKEND_TYPES, 'workload', 'model'] as const;
const SWEEP_PATH = /^(pytorch|vllm|tensorrt|workload|model)(\.[A-Za-z][A-Za-z0-9]*)+$/;

export const SweepValueSchema = z.union([z.string(), z.number(), z.boolean(), z.null(), freeObject]);
export type SweepValue = z.infer<typeof SweepValueSchema>;

const sweepPathKey = z.string().max(128).regex(SWEEP_PATH, {
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
    .describe('Explicit points, added after the Cartesian product of axes (duplicates collapse); with no axes, only these points run.'),
  skipInvalid: z
    .boolean()
    .default(false)
    .describe('false: an invalid combination makes the manifest invalid. true: it is skipped and listed with its reason.'),
});

// ---------------------------------------------------------------- workload

export const TokenDistributionSchema = z
  .strictObject({
    distribution: z.enum(['fixed', 'uniform', 'normal', 'lognormal']).default('fixed'),
    mean: posInt.optional().describe('fixed: the length; normal/lognormal: the mean.'),
    stddev: nonNegNumber.optional(),
    min: posInt.optional().describe('uniform: lower bound; normal/lognormal: clamp (default 1).'),
    max: posInt.optional().describe('uniform: upper bound; normal/lognormal: clamp.'),
  })
  .superRefine((d, ctx) => {
    const need = d.distribution === 'uniform' ? (['min', 'max'] as const) : d.distribution === 'fixed' ? (['mean'] as const) : (['mean', 'stddev'] as const);
    for (const k of need) {
      if (d[k] === undefined) ctx.addIssue({ code: 'custom', path: [k], message: `required for distribution "${d.distribution}"` });
    }
    if (d.min !== undefined && d.max !== undefined && d.min > d.max) {
      ctx.addIssue({ code: 'custom', path: ['max'], message: `must be >= min (${d.min})` });
    }
  })
  .meta(
    cel(
      { rule: "self.distribution != 'fixed' || has(self.mean)", message: 'mean is required for distribution fixed', fieldPath: '.mean' },
      { rule: "self.distribution != 'uniform' || (has(self.min) && has(self.max))", message: 'min and max are required for distribution uniform' },
      {
        rule: "!(self.distribution in ['normal', 'lognormal']) || (has(self.mean) && has(self.stddev))",
        message: 'mean and stddev are required for distributions normal and lognormal',
      },
      { rule: '!has(self.min) || !has(self.max) || self.min <= self.max', message: 'max must be >= min', fieldPath: '.max' },
    ),
  );

export const DatasetSchema = z
  .strictObject({
    synthetic: z
      .strictObject({
        inputTokens: TokenDistributionSchema.prefault({ distribution: 'fixed', mean: 512 }),
        outputTokens: TokenDistributionSchema.prefault({ distribution: 'fixed', mean: 128 }),
        seed: nonNegInt.default(0).describe('Seed for lengths and token ids: the same seed gives the same requests.'),
      })
      .optional()
      .describe('Random token ids with lengths drawn from the distributions (default: 512 in, 128 out).'),
    prompts: z.array(z.string().min(1)).min(1).optional().describe('Inline prompts, cycled through in order.'),
    configMapRef: z
      .strictObject({ name: Dns1123LabelSchema, key: z.string().min(1).default('prompts.jsonl') })
      .optional()
      .describe('Prompts from a ConfigMap key: JSON lines with a "prompt" field.'),
  })
  .superRefine(oneOf(['synthetic', 'prompts', 'configMapRef'], 'workload.dataset'))
  .meta(cel(exactlyOne(['synthetic', 'prompts', 'configMapRef'], 'workload.dataset')));

export const SamplingSchema = z.strictObject({
  temperature: nonNegNumber.default(0).describe('0: greedy decoding.'),
  topP: z.number().gt(0).max(1).default(1),
  maxTokens: posInt.optional().describe("Cap on max_tokens; absent: each request's sampled output length."),
});

export const WORKLOAD_MODES = ['offline', 'concurrency', 'rate'] as const;

export const WorkloadSchema = z.strictObject({
  dataset: DatasetSchema.prefault({ synthetic: {} }),
  requests: posInt.default(200).describe('Requests in the measurement window (warm-up excluded).'),
  mode: z.enum(WORKLOAD_MODES).default('concurrency').describe('offline: all at once; concurrency: closed loop; rate: open-loop Poisson.'),
  concurrency: posInt.default(8).describe('In-flight requests in concurrency mode.'),
  ratePerSecond: z.number().gt(0).optional().describe('Mean arrival rate in rate mode (required there).'),
  sampling: SamplingSchema.prefault({}),
  ignoreEos: z.boolean().default(true).describe('Generate exactly the requested output length, whatever the model would stop at.'),
  requestTimeoutSeconds: z.number().gt(0).default(120).describe('A request still running after this counts as failed (timeout).'),
  api: z.enum(['completions', 'chat']).default('completions').describe('OpenAI endpoint: /v1/completions or /v1/chat/completions.'),
});

// ---------------------------------------------------------------- measurement

export const MEASUREMENT_ORDERS = ['interleave', 'shuffle', 'sequential'] as const;
export type MeasurementOrder = (typeof MEASUREMENT_ORDERS)[number];

export const MeasurementSchema = z.strictObject({
  cycles: posInt.max(100).default(3).describe('Repetitions of every configuration; the CI is computed across them.'),
  order: z
    .enum(MEASUREMENT_ORDERS)
    .default('interleave')
    .describe('interleave: every config once per cycle; shuffle: seeded permutation; sequential: all cycles of a config together.'),
  seed: nonNegInt.default(0),
  warmupRequests: nonNegInt.default(8),
  baselineSeconds: nonNegNumber.default(30).describe('Idle baseline with the model loaded; 0 skips it.'),
  sampleIntervalMs: z.number().int().min(10).max(60000).default(100),
  minWindowSeconds: nonNegNumber.default(5).describe('Windows shorter than this are flagged; below 5 s NVML energy is coarse.'),
  extendToMinWindow: z.boolean().default(false).describe('Keep issuing requests until the window lasts minWindowSeconds, instead of only flagging a short one.'),
  cooldownSeconds: nonNegNumber.default(10),
  steadyState: z.boolean().default(false).describe('Report over the steady-state window only (ML.ENERGY style).'),
});

// ---------------------------------------------------------------- placement and policy

export const TolerationSchema = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).default('Equal'),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

export const PodTemplateOverridesSchema = z.strictObject({
  labels: stringMap.optional().describe('Added to every run pod.'),
  annotations: stringMap.optional().describe('Added to every run pod.'),
  priorityClassName: z.string().optional(),
  serviceAccountName: z.string().optional(),
  env: z.array(z.strictObject({ name: z.string().min(1), value: z.string() })).default([]).describe('Extra environment for the backend container (no secrets: use tokenSecretRef).'),
  resources: z
    .strictObject({ requests: stringMap.optional(), limits: stringMap.optional() })
    .optional()
    .describe('CPU/memory for the backend container; the nvidia.com/gpu limit always comes from gpusPerRun.'),
  shmSize: z.string().default('8Gi').describe('Size of the /dev/shm emptyDir (vLLM and NCCL need more than the 64 MiB default).'),
});

export const PlacementSchema = z.strictObject({
  gpusPerRun: posInt.max(64).default(1).describe('GPUs per run replica (one pod).'),
  replicas: posInt.max(256).default(1).describe('Data-parallel pods of one run, on different nodes, started together.'),
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
    .describe('strict: a run without complete data fails and is retried, never silently partial; bestEffort: the experiment completes with the runs that succeeded.'),
  ttlSecondsAfterFinished: nonNegInt.optional().describe('Delete the finished experiment after this long; absent: keep it.'),
  suspend: z.boolean().default(false).describe('true: start no new runs; runs in flight finish.'),
});

// ---------------------------------------------------------------- the resource

const backendName = "(has(%s.name) ? %s.name : %s.type)";
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
      .meta(cel({ rule: `self.all(b, self.exists_one(c, ${nameOf('c')} == ${nameOf('b')}))`, message: 'backend names (default: the type) must be unique' })),
    sweep: SweepSchema.prefault({}),
    workload: WorkloadSchema.prefault({}),
    measurement: MeasurementSchema.prefault({}),
    placement: PlacementSchema.prefault({}),
    policy: PolicySchema.prefault({}),
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

/** Parameter schema per backend type: the matrix uses it to default and re-validate swept values. */
export const BACKEND_PARAM_SCHEMAS = {
  pytorch: PytorchParamsSchema,
  vllm: VllmParamsSchema,
  tensorrt: TensorrtParamsSchema,
} as const;

export type BackendParams = PytorchParams | VllmParams | TensorrtParams;
