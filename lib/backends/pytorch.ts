// The llem PyTorch server (images/pytorch/server): `python3 -m server ...`.
import { PytorchParamsSchema, type BackendSpec, type ModelSpec } from '../../api/spec.ts';
import { InvalidInputError } from '../../lib/errors.ts';
import { baseEnv, hfTokenFiles, modelLocation } from './model-source.ts';
import { pytorchModelKwargs } from './model-kwargs.ts';
import type { BackendLaunch, LaunchContext } from './types.ts';
import { clientHost } from './vllm.ts';

function sourceArgs(model: ModelSpec, ctx: LaunchContext): string[] {
  const location = modelLocation(model, ctx);
  if (location.kind === 'path') return ['--source', 'path', '--path', location.path];
  if (location.kind === 'huggingFace') return ['--source', 'huggingface', '--revision', location.revision];
  const r = model.source.random;
  if (r === undefined) throw new Error('unreachable: random location without random source');
  return [
    '--source',
    'random',
    '--random-architecture',
    r.architecture,
    '--random-hidden-size',
    String(r.hiddenSize),
    '--random-layers',
    String(r.numLayers),
    '--random-heads',
    String(r.numHeads),
    '--random-kv-heads',
    String(r.numKvHeads),
    '--random-intermediate-size',
    String(r.intermediateSize),
    '--random-vocab-size',
    String(r.vocabSize),
    '--random-max-positions',
    String(r.maxPositionEmbeddings),
  ];
}

export function renderPytorch(backend: BackendSpec, model: ModelSpec, ctx: LaunchContext): BackendLaunch {
  const p = PytorchParamsSchema.parse(backend.pytorch ?? {});
  const at = `spec.backends[${backend.name ?? 'pytorch'}].pytorch`;
  if (ctx.gpusPerRun !== p.tensorParallelSize) {
    throw new InvalidInputError([
      {
        file: '',
        path: ctx.gpusPerRun > p.tensorParallelSize ? 'spec.placement.gpusPerRun' : `${at}.tensorParallelSize`,
        message: `the pytorch backend serves from exactly tensorParallelSize GPUs: gpusPerRun is ${ctx.gpusPerRun}, tensorParallelSize ${p.tensorParallelSize}; make them equal`,
      },
    ]);
  }
  const args = ['-m', 'server', '--model', model.name, '--served-model-name', model.name, ...sourceArgs(model, ctx)];
  args.push('--seed', String(ctx.seed), '--dtype', model.dtype, '--host', ctx.host, '--port', String(ctx.port));
  args.push('--batching', p.batching, '--max-batch-size', String(p.maxBatchSize));
  // One process per GPU (rank r on the r-th of CUDA_VISIBLE_DEVICES); rank 0 serves HTTP (images/pytorch/server).
  if (p.tensorParallelSize > 1) args.push('--tensor-parallel-size', String(p.tensorParallelSize));
  args.push('--attn-implementation', p.attnImplementation, p.compile ? '--compile' : '--no-compile');
  args.push(p.cudaGraphs ? '--cuda-graphs' : '--no-cuda-graphs', '--quantization', p.quantization);
  if (p.maxModelLen !== undefined) args.push('--max-model-len', String(p.maxModelLen));
  const kwargs = pytorchModelKwargs(p.modelKwargs, p.quantization, `${at}.modelKwargs`);
  if (kwargs !== null) args.push('--model-kwargs', kwargs);
  args.push(...backend.extraArgs);
  const env: Record<string, string> = { ...baseEnv(modelLocation(model, ctx), model), PYTHONUNBUFFERED: '1' };
  if (ctx.pytorchServerRoot !== undefined) env['PYTHONPATH'] = ctx.pytorchServerRoot;
  return {
    backend: 'pytorch',
    command: ctx.python ?? 'python3',
    args,
    env,
    secretFiles: hfTokenFiles(model),
    files: [],
    servedModelName: model.name,
    baseUrl: `http://${clientHost(ctx.host)}:${ctx.port}`,
    readiness: { path: '/health', timeoutSeconds: 1800, intervalMs: 500 },
    metrics: { path: '/stats', format: 'llem-stats' },
  };
}
