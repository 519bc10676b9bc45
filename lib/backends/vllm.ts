// `vllm serve`: one flag per VllmParams field, always explicit so the rendered line documents the run.
import { VllmParamsSchema, type BackendSpec, type ModelSpec, type VllmParams } from '../../api/spec.ts';
import { InvalidInputError } from '../../lib/errors.ts';
import { baseEnv, hfTokenFiles, modelLocation } from './model-source.ts';
import { ropeScalingConfig, vllmModelKwargsArgs } from './model-kwargs.ts';
import type { BackendLaunch, LaunchContext } from './types.ts';

/** vLLM's --speculative-config JSON for each method of the spec. */
export function speculativeConfig(spec: NonNullable<VllmParams['speculative']>): Record<string, unknown> {
  const n = spec.numSpeculativeTokens;
  switch (spec.method) {
    case 'ngram':
      return { method: 'ngram', num_speculative_tokens: n, prompt_lookup_max: n };
    case 'mtp':
      return { method: 'mtp', num_speculative_tokens: n };
    case 'draftModel':
      return { method: 'draft_model', model: spec.model, num_speculative_tokens: n };
    case 'eagle':
    case 'eagle3':
      return { method: spec.method, model: spec.model, num_speculative_tokens: n };
  }
}

function checkParams(p: VllmParams, ctx: LaunchContext, field: string): void {
  const gpus = p.tensorParallelSize * p.pipelineParallelSize;
  const issues = [];
  if (gpus > ctx.gpusPerRun) {
    issues.push({
      file: '',
      path: `${field}.tensorParallelSize`,
      message: `tensor x pipeline parallel = ${gpus} GPUs, but placement.gpusPerRun is ${ctx.gpusPerRun}; raise gpusPerRun or lower the parallel sizes`,
    });
  }
  const s = p.speculative;
  if (s !== undefined && s.model === undefined && ['draftModel', 'eagle', 'eagle3'].includes(s.method)) {
    issues.push({
      file: '',
      path: `${field}.speculative.model`,
      message: `speculative method "${s.method}" needs a draft model id`,
    });
  }
  if (issues.length > 0) throw new InvalidInputError(issues);
}

/**
 * Random weights: vLLM reads config and tokenizer of model.name (same architecture) from the hub, and the
 * sizes are overridden to the spec's, as the PyTorch backend builds them (head_dim from the width, untied
 * embeddings). The vocabulary stays the tokenizer's: a smaller embedding than the tokenizer's ids would fail
 * on the first real request.
 */
function randomSizes(r: NonNullable<ModelSpec['source']['random']>): Record<string, unknown> {
  return {
    hidden_size: r.hiddenSize,
    num_hidden_layers: r.numLayers,
    num_attention_heads: r.numHeads,
    num_key_value_heads: r.numKvHeads,
    head_dim: r.hiddenSize / r.numHeads,
    intermediate_size: r.intermediateSize,
    max_position_embeddings: r.maxPositionEmbeddings,
    tie_word_embeddings: false,
  };
}

/** --hf-overrides (one JSON: random sizes and modelKwargs.ropeScaling) and the modelKwargs flags. */
function modelConfigArgs(p: VllmParams, overrides: Record<string, unknown>, at: string): string[] {
  const rope = p.modelKwargs?.ropeScaling;
  const all = rope === undefined ? overrides : { ...overrides, rope_scaling: ropeScalingConfig(rope) };
  const args = Object.keys(all).length > 0 ? ['--hf-overrides', JSON.stringify(all)] : [];
  return [...args, ...vllmModelKwargsArgs(p.modelKwargs, at)];
}

export function renderVllm(backend: BackendSpec, model: ModelSpec, ctx: LaunchContext): BackendLaunch {
  const p = VllmParamsSchema.parse(backend.vllm ?? {});
  checkParams(p, ctx, `spec.backends[${backend.name ?? backend.type}].vllm`);
  const location = modelLocation(model, ctx);
  const args = ['serve'];
  const env = baseEnv(location, model);
  env['VLLM_NO_USAGE_STATS'] = '1';
  if (location.kind === 'path') args.push(location.path);
  else args.push(model.name, '--revision', model.revision);
  const overrides: Record<string, unknown> = {};
  if (location.kind === 'random' && model.source.random !== undefined) {
    args.push('--load-format', 'dummy');
    Object.assign(overrides, randomSizes(model.source.random));
    delete env['HF_HUB_OFFLINE'];
  }
  args.push(...modelConfigArgs(p, overrides, `spec.backends[${backend.name ?? 'vllm'}].vllm.modelKwargs`));
  args.push(
    '--served-model-name',
    model.name,
    '--host',
    ctx.host,
    '--port',
    String(ctx.port),
    '--dtype',
    model.dtype,
    '--seed',
    String(ctx.seed),
  );
  args.push(
    '--tensor-parallel-size',
    String(p.tensorParallelSize),
    '--pipeline-parallel-size',
    String(p.pipelineParallelSize),
  );
  args.push('--max-num-seqs', String(p.maxNumSeqs), '--gpu-memory-utilization', String(p.gpuMemoryUtilization));
  if (p.maxNumBatchedTokens !== undefined) args.push('--max-num-batched-tokens', String(p.maxNumBatchedTokens));
  if (p.maxModelLen !== undefined) args.push('--max-model-len', String(p.maxModelLen));
  if (p.quantization !== 'none') args.push('--quantization', p.quantization);
  args.push('--kv-cache-dtype', p.kvCacheDtype);
  args.push(p.enablePrefixCaching ? '--enable-prefix-caching' : '--no-enable-prefix-caching');
  args.push(p.enableChunkedPrefill ? '--enable-chunked-prefill' : '--no-enable-chunked-prefill');
  if (p.speculative !== undefined) args.push('--speculative-config', JSON.stringify(speculativeConfig(p.speculative)));
  if (p.enforceEager) args.push('--enforce-eager');
  args.push(...backend.extraArgs);
  return {
    backend: 'vllm',
    command: 'vllm',
    args,
    env,
    secretFiles: hfTokenFiles(model),
    files: [],
    servedModelName: model.name,
    baseUrl: `http://${clientHost(ctx.host)}:${ctx.port}`,
    readiness: { path: '/health', timeoutSeconds: 1800, intervalMs: 1000 },
    metrics: { path: '/metrics', format: 'prometheus' },
  };
}

/** The address a client on the same host uses to reach a server bound to `host`. */
export function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
