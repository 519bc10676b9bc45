// The backend server command line for one configuration: what follows `llem agent --` in the pod.
// Every server listens on 127.0.0.1:SERVER_PORT inside the pod; the agent talks to it there.
import type { Configuration } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';

export const SERVER_PORT = 8000;

interface ServerContext {
  simulate: boolean;
  agentDir: string;
  modelDir: string;
}

function modelArg(spec: EnergyExperimentSpec, ctx: ServerContext): string {
  const pvc = spec.model.source.pvc;
  if (pvc === undefined) return spec.model.name;
  return `${ctx.modelDir}/${pvc.path.replace(/^\/+/, '')}`.replace(/\/+$/, '') || ctx.modelDir;
}

function flag(name: string, value: string | number | boolean | undefined): string[] {
  if (value === undefined || value === false) return [];
  return value === true ? [`--${name}`] : [`--${name}`, String(value)];
}

function vllm(c: Configuration & { backend: { type: 'vllm' } }, model: string, spec: EnergyExperimentSpec): string[] {
  const p = c.backend.params;
  return [
    'vllm', 'serve', model,
    '--host', '127.0.0.1', '--port', String(SERVER_PORT),
    '--revision', spec.model.revision, '--dtype', spec.model.dtype,
    ...flag('tensor-parallel-size', p.tensorParallelSize),
    ...flag('pipeline-parallel-size', p.pipelineParallelSize),
    ...flag('max-num-seqs', p.maxNumSeqs),
    ...flag('max-num-batched-tokens', p.maxNumBatchedTokens),
    ...flag('max-model-len', p.maxModelLen),
    ...flag('gpu-memory-utilization', p.gpuMemoryUtilization),
    ...(p.quantization === 'none' ? [] : flag('quantization', p.quantization)),
    ...flag('kv-cache-dtype', p.kvCacheDtype),
    ...(p.enablePrefixCaching ? ['--enable-prefix-caching'] : ['--no-enable-prefix-caching']),
    ...(p.enableChunkedPrefill ? ['--enable-chunked-prefill'] : ['--no-enable-chunked-prefill']),
    ...flag('enforce-eager', p.enforceEager),
    ...(p.speculative === undefined
      ? []
      : ['--speculative-config', JSON.stringify({ method: p.speculative.method, num_speculative_tokens: p.speculative.numSpeculativeTokens, ...(p.speculative.model !== undefined ? { model: p.speculative.model } : {}) })]),
    '--served-model-name', spec.model.name,
  ];
}

function tensorrt(c: Configuration & { backend: { type: 'tensorrt' } }, model: string): string[] {
  const p = c.backend.params;
  return [
    'trtllm-serve', model,
    '--host', '127.0.0.1', '--port', String(SERVER_PORT),
    '--backend', p.backend,
    '--tp_size', String(p.tensorParallelSize), '--pp_size', String(p.pipelineParallelSize),
    '--max_batch_size', String(p.maxBatchSize), '--max_num_tokens', String(p.maxNumTokens),
    '--kv_cache_free_gpu_memory_fraction', String(p.kvCacheFreeGpuMemoryFraction),
  ];
}

function pytorch(c: Configuration & { backend: { type: 'pytorch' } }, model: string, spec: EnergyExperimentSpec): string[] {
  const p = c.backend.params;
  const random = spec.model.source.random;
  return [
    'python', '-m', 'llem_pytorch_server',
    '--host', '127.0.0.1', '--port', String(SERVER_PORT),
    '--model', model, '--revision', spec.model.revision, '--dtype', spec.model.dtype,
    '--batching', p.batching, '--max-batch-size', String(p.maxBatchSize),
    '--attn-implementation', p.attnImplementation, '--quantization', p.quantization,
    ...flag('compile', p.compile),
    ...(random !== undefined ? ['--random-architecture', JSON.stringify(random)] : []),
  ];
}

/** argv of the backend server (or of the mock server when simulating). */
export function serverCommand(c: Configuration, spec: EnergyExperimentSpec, ctx: ServerContext): string[] {
  if (ctx.simulate) return [`${ctx.agentDir}/bin/llem`, 'mock-server', '--host', '127.0.0.1', '--port', String(SERVER_PORT), '--model', spec.model.name];
  const model = modelArg(spec, ctx);
  const b = c.backend;
  const base =
    b.type === 'vllm'
      ? vllm(c as Configuration & { backend: typeof b }, model, spec)
      : b.type === 'tensorrt'
        ? tensorrt(c as Configuration & { backend: typeof b }, model)
        : pytorch(c as Configuration & { backend: typeof b }, model, spec);
  return [...base, ...b.extraArgs];
}
