// `trtllm-serve serve`: TensorRT-LLM's OpenAI server, PyTorch or TensorRT engine backend.
import { posix } from 'node:path';
import { TensorrtParamsSchema, type BackendSpec, type ModelSpec, type TensorrtParams } from '../../api/spec.ts';
import { InvalidInputError } from '../../lib/errors.ts';
import { baseEnv, hfTokenFiles, modelLocation } from './model-source.ts';
import type { BackendLaunch, LaunchContext, LaunchFile } from './types.ts';
import { clientHost } from './vllm.ts';

/** The spec's `trt` is trtllm-serve's `tensorrt` (engine build); `pytorch` is its PyTorch flow. */
const BACKEND_FLAG: Record<TensorrtParams['backend'], string> = { pytorch: 'pytorch', trt: 'tensorrt' };

/** TensorRT-LLM QuantAlgo names; quantisation is not a trtllm-serve flag but an LLM API option. */
const QUANT_ALGO: Record<Exclude<TensorrtParams['quantization'], 'none'>, string> = {
  fp8: 'FP8',
  int8: 'W8A16',
  int4_awq: 'W4A16_AWQ',
  nvfp4: 'NVFP4',
};

/** LLM API options trtllm-serve has no flag for: the model dtype and the quantisation. */
function extraOptionsFile(p: TensorrtParams, model: ModelSpec, ctx: LaunchContext): LaunchFile | null {
  const lines: string[] = [];
  if (model.dtype !== 'auto') lines.push(`dtype: ${model.dtype}`);
  if (p.quantization !== 'none') lines.push('quant_config:', `  quant_algo: ${QUANT_ALGO[p.quantization]}`);
  if (lines.length === 0) return null;
  return { path: posix.join(ctx.scratchDir, 'trtllm-extra-llm-api-options.yaml'), content: `${lines.join('\n')}\n` };
}

export function renderTensorrt(backend: BackendSpec, model: ModelSpec, ctx: LaunchContext): BackendLaunch {
  const p = TensorrtParamsSchema.parse(backend.tensorrt ?? {});
  const field = `spec.backends[${backend.name ?? backend.type}]`;
  const location = modelLocation(model, ctx);
  if (location.kind === 'random') {
    throw new InvalidInputError([
      {
        file: '',
        path: `${field}.type`,
        message:
          'trtllm-serve cannot load random weights; use model.source.huggingFace or pvc, or the pytorch/vllm backend for random models',
      },
    ]);
  }
  if (location.kind === 'huggingFace' && model.revision !== 'main') {
    throw new InvalidInputError([
      {
        file: '',
        path: 'spec.model.revision',
        message: `trtllm-serve has no revision option (got "${model.revision}"); put that revision on a PVC and use model.source.pvc`,
      },
    ]);
  }
  const gpus = p.tensorParallelSize * p.pipelineParallelSize;
  if (gpus > ctx.gpusPerRun) {
    throw new InvalidInputError([
      {
        file: '',
        path: `${field}.tensorrt.tensorParallelSize`,
        message: `tensor x pipeline parallel = ${gpus} GPUs, but placement.gpusPerRun is ${ctx.gpusPerRun}`,
      },
    ]);
  }
  const args = ['serve', location.kind === 'path' ? location.path : model.name];
  args.push('--host', ctx.host, '--port', String(ctx.port), '--backend', BACKEND_FLAG[p.backend]);
  args.push('--tp_size', String(p.tensorParallelSize), '--pp_size', String(p.pipelineParallelSize));
  args.push('--max_batch_size', String(p.maxBatchSize), '--max_num_tokens', String(p.maxNumTokens));
  args.push('--kv_cache_free_gpu_memory_fraction', String(p.kvCacheFreeGpuMemoryFraction));
  if (p.modelKwargs?.trustRemoteCode === true) args.push('--trust_remote_code');
  const extra = extraOptionsFile(p, model, ctx);
  if (extra !== null) args.push('--extra_llm_api_options', extra.path);
  args.push(...backend.extraArgs);
  const env = baseEnv(location, model);
  return {
    backend: 'tensorrt',
    command: 'trtllm-serve',
    args,
    env,
    secretFiles: hfTokenFiles(model),
    files: extra === null ? [] : [extra],
    servedModelName: location.kind === 'path' ? location.path : model.name,
    baseUrl: `http://${clientHost(ctx.host)}:${ctx.port}`,
    readiness: { path: '/health', timeoutSeconds: 3600, intervalMs: 2000 },
    metrics: null,
  };
}
