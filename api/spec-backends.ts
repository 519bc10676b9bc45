// Backend entries of the EnergyExperiment spec: the type and its parameters per backend.
import { z } from 'zod';
import { DNS1123_LABEL_PATTERN } from './names.ts';
import { cel, DNS1123_MESSAGE, posInt } from './spec-parts.ts';

// ---------------------------------------------------------------- backends

export const BACKEND_TYPES = ['pytorch', 'vllm', 'tensorrt'] as const;
/** Names reserved for backends we intend to add; rejected with a clear message until then. */
export const RESERVED_BACKEND_TYPES = ['sglang'] as const;
export type BackendType = (typeof BACKEND_TYPES)[number];

// Extra model-loading options (ADR 0025): an allow-list with types, never a free-form map, so every key is
// documented, validated, hashed and mapped to the option its backend documents. Unknown keys are refused
// with their field path.
export const RopeScalingSchema = z.strictObject({
  ropeType: z.enum(['linear', 'dynamic', 'yarn', 'llama3', 'longrope']).describe('rope_scaling.rope_type.'),
  factor: z.number().gt(0).describe('rope_scaling.factor: context extension factor.'),
  originalMaxPositionEmbeddings: posInt.optional().describe('rope_scaling.original_max_position_embeddings.'),
  lowFreqFactor: z.number().gt(0).optional().describe('rope_scaling.low_freq_factor (llama3).'),
  highFreqFactor: z.number().gt(0).optional().describe('rope_scaling.high_freq_factor (llama3).'),
});

const trustRemoteCode = z
  .boolean()
  .optional()
  .describe(
    "trust_remote_code: run Python code from the model's repository. Off unless set to true here; never implied.",
  );

export const PytorchModelKwargsSchema = z
  .strictObject({
    trustRemoteCode,
    codeRevision: z
      .string()
      .min(1)
      .optional()
      .describe('code_revision: the revision of remote code (with trustRemoteCode).'),
    lowCpuMemUsage: z.boolean().optional().describe('low_cpu_mem_usage.'),
    useSafetensors: z.boolean().optional().describe('use_safetensors.'),
    subfolder: z.string().min(1).optional().describe('subfolder of the repository holding the weights.'),
    ropeScaling: RopeScalingSchema.optional().describe('rope_scaling, overriding the model config.'),
    bnb4bitQuantType: z
      .enum(['nf4', 'fp4'])
      .optional()
      .describe('BitsAndBytesConfig bnb_4bit_quant_type (quantization bitsandbytes4bit).'),
    bnb4bitUseDoubleQuant: z
      .boolean()
      .optional()
      .describe('BitsAndBytesConfig bnb_4bit_use_double_quant (quantization bitsandbytes4bit).'),
  })
  .describe(
    'Extra transformers from_pretrained options (an allow-list; other keys are refused). Part of the config hash.',
  );

export const VllmModelKwargsSchema = z
  .strictObject({
    trustRemoteCode: trustRemoteCode.describe('--trust-remote-code; off unless set to true here.'),
    codeRevision: z.string().min(1).optional().describe('--code-revision (with trustRemoteCode).'),
    tokenizerRevision: z.string().min(1).optional().describe('--tokenizer-revision.'),
    ropeScaling: RopeScalingSchema.optional().describe('rope_scaling through --hf-overrides.'),
  })
  .describe('Extra vLLM model-loading options (an allow-list; other keys are refused). Part of the config hash.');

export const TensorrtModelKwargsSchema = z
  .strictObject({
    trustRemoteCode: trustRemoteCode.describe('trtllm-serve --trust_remote_code; off unless set to true here.'),
  })
  .describe('Extra TensorRT-LLM model-loading options (an allow-list). Part of the config hash.');

export const PytorchParamsSchema = z.strictObject({
  tensorParallelSize: posInt
    .max(64)
    .default(1)
    .describe(
      'GPUs one server shards the model over (torch.distributed: NCCL on GPUs, gloo on CPU; one process per GPU, rank 0 serves HTTP). Must equal placement.gpusPerRun; above 1: eager and unquantised (no cudaGraphs, compile or quantization).',
    ),
  batching: z
    .enum(['static', 'dynamic'])
    .default('dynamic')
    .describe('static: fixed batches of maxBatchSize; dynamic: requests join as slots free up.'),
  maxBatchSize: posInt.default(8).describe('Most sequences generated together.'),
  attnImplementation: z
    .enum(['eager', 'sdpa', 'flash_attention_2'])
    .default('sdpa')
    .describe('transformers attn_implementation.'),
  compile: z.boolean().default(false).describe('torch.compile the model before serving.'),
  cudaGraphs: z
    .boolean()
    .default(false)
    .describe(
      'Replay each decode step as a CUDA graph over a static KV cache of maxBatchSize x max model length (llama, mistral, qwen2; not with compile or quantization). Prefill stays eager.',
    ),
  quantization: z
    .enum(['none', 'bitsandbytes4bit', 'bitsandbytes8bit'])
    .default('none')
    .describe('Load-time quantisation.'),
  maxModelLen: posInt
    .optional()
    .describe(
      '--max-model-len: longest prompt + output in tokens; absent: the model config (max_position_embeddings). With cudaGraphs it sizes the static KV cache (maxBatchSize x maxModelLen). Must fit the longest request.',
    ),
  modelKwargs: PytorchModelKwargsSchema.optional(),
});

export const SpeculativeSchema = z
  .strictObject({
    method: z.enum(['ngram', 'draftModel', 'eagle', 'eagle3', 'mtp']),
    model: z.string().min(1).optional().describe('Draft model id; required for draftModel, eagle and eagle3.'),
    numSpeculativeTokens: posInt.default(4).describe('Tokens proposed per step.'),
  })
  .meta(
    cel({
      rule: "!(self.method in ['draftModel', 'eagle', 'eagle3']) || has(self.model)",
      message: 'model is required for speculative methods draftModel, eagle and eagle3',
      fieldPath: '.model',
    }),
  );

export const VllmParamsSchema = z.strictObject({
  tensorParallelSize: posInt
    .default(1)
    .describe('--tensor-parallel-size; with pipelineParallelSize at most placement.gpusPerRun.'),
  pipelineParallelSize: posInt.default(1).describe('--pipeline-parallel-size.'),
  maxNumSeqs: posInt.default(256).describe('--max-num-seqs: most sequences in one batch.'),
  maxNumBatchedTokens: posInt.optional().describe('--max-num-batched-tokens; absent: vLLM chooses.'),
  maxModelLen: posInt.optional().describe('--max-model-len; absent: the model config. Must fit the longest request.'),
  gpuMemoryUtilization: z
    .number()
    .gt(0)
    .max(1)
    .default(0.9)
    .describe('--gpu-memory-utilization: fraction of GPU memory vLLM may use.'),
  quantization: z
    .enum(['none', 'awq', 'gptq', 'fp8', 'bitsandbytes'])
    .default('none')
    .describe('--quantization; none: as the checkpoint is.'),
  kvCacheDtype: z.enum(['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2']).default('auto').describe('--kv-cache-dtype.'),
  enablePrefixCaching: z
    .boolean()
    .default(false)
    .describe('--enable-prefix-caching (off by default so repeated prompts do not flatter the numbers).'),
  enableChunkedPrefill: z.boolean().default(true).describe('--enable-chunked-prefill.'),
  speculative: SpeculativeSchema.optional().describe('--speculative-config; absent: no speculative decoding.'),
  enforceEager: z.boolean().default(false).describe('--enforce-eager: no CUDA graphs (faster start, slower decode).'),
  modelKwargs: VllmModelKwargsSchema.optional(),
});

export const TensorrtParamsSchema = z.strictObject({
  tensorParallelSize: posInt.default(1).describe('--tp_size; with pipelineParallelSize at most placement.gpusPerRun.'),
  pipelineParallelSize: posInt.default(1).describe('--pp_size.'),
  maxBatchSize: posInt.default(256).describe('--max_batch_size.'),
  maxNumTokens: posInt.default(8192).describe('--max_num_tokens: most tokens in one scheduled batch.'),
  kvCacheFreeGpuMemoryFraction: z.number().gt(0).max(1).default(0.9).describe('--kv_cache_free_gpu_memory_fraction.'),
  backend: z
    .enum(['pytorch', 'trt'])
    .default('pytorch')
    .describe('trtllm-serve --backend: the PyTorch flow or a built TensorRT engine.'),
  quantization: z
    .enum(['none', 'fp8', 'int8', 'int4_awq', 'nvfp4'])
    .default('none')
    .describe('Quantisation the checkpoint is expected to carry.'),
  modelKwargs: TensorrtModelKwargsSchema.optional(),
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
    image: z
      .string()
      .min(1)
      .optional()
      .describe("Container image override; defaults to the chart's image for the type."),
    pytorch: PytorchParamsSchema.optional(),
    vllm: VllmParamsSchema.optional(),
    tensorrt: TensorrtParamsSchema.optional(),
    extraArgs: z.array(z.string()).default([]).describe('Passed verbatim to the backend server command line.'),
    readinessTimeoutSeconds: posInt
      .max(86_400)
      .optional()
      .describe(
        'How long the server may take to answer its health check (model download and load included); absent: 1800 for pytorch and vllm, 3600 for tensorrt.',
      ),
    shutdownGraceSeconds: posInt
      .max(600)
      .optional()
      .describe(
        'When stopping the server: SIGTERM to its whole process tree, SIGKILL after this many seconds; absent: 10 for llem run, 5 in a pod.',
      ),
  })
  .superRefine((b, ctx) => {
    for (const t of BACKEND_TYPES) {
      if (t !== b.type && b[t] !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [t],
          message: `parameters for "${t}" given on a backend of type "${b.type}"`,
        });
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
