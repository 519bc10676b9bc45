// Golden command lines: every backend parameter of the spec maps to the exact flag its server takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackendSchema, ModelSchema, type BackendSpec, type ModelSpec } from '../../../api/spec.ts';
import { InvalidInputError } from '../../../lib/errors.ts';
import { formatCommandLine, renderBackendLaunch, type LaunchContext } from '../../../lib/backends/index.ts';

const ctx: LaunchContext = {
  host: '0.0.0.0',
  port: 8000,
  gpusPerRun: 4,
  modelMountPath: '/models',
  seed: 7,
  scratchDir: '/tmp/llem',
};
const hf: ModelSpec = ModelSchema.parse({ name: 'meta-llama/Llama-3.1-8B-Instruct', dtype: 'bfloat16' });
const backend = (input: unknown): BackendSpec => BackendSchema.parse(input);
const line = (b: unknown, m: ModelSpec = hf, c: LaunchContext = ctx): string =>
  formatCommandLine(renderBackendLaunch(backend(b), m, c));

const VLLM_BASE =
  'vllm serve meta-llama/Llama-3.1-8B-Instruct --revision main --served-model-name meta-llama/Llama-3.1-8B-Instruct ' +
  '--host 0.0.0.0 --port 8000 --dtype bfloat16 --seed 7 --tensor-parallel-size 1 --pipeline-parallel-size 1 ' +
  '--max-num-seqs 256 --gpu-memory-utilization 0.9 --kv-cache-dtype auto --no-enable-prefix-caching --enable-chunked-prefill';

void test('vllm with defaults renders every default explicitly', () => {
  assert.equal(line({ type: 'vllm' }), VLLM_BASE);
});

const vllmCases: [string, Record<string, unknown>, string, string][] = [
  ['tensor parallel', { tensorParallelSize: 2 }, '--tensor-parallel-size 1', '--tensor-parallel-size 2'],
  ['pipeline parallel', { pipelineParallelSize: 2 }, '--pipeline-parallel-size 1', '--pipeline-parallel-size 2'],
  ['max-num-seqs', { maxNumSeqs: 64 }, '--max-num-seqs 256', '--max-num-seqs 64'],
  [
    'gpu-memory-utilization',
    { gpuMemoryUtilization: 0.85 },
    '--gpu-memory-utilization 0.9',
    '--gpu-memory-utilization 0.85',
  ],
  [
    'quantization',
    { quantization: 'fp8' },
    '--gpu-memory-utilization 0.9',
    '--gpu-memory-utilization 0.9 --quantization fp8',
  ],
  ['kv-cache dtype', { kvCacheDtype: 'fp8_e4m3' }, '--kv-cache-dtype auto', '--kv-cache-dtype fp8_e4m3'],
  ['prefix caching', { enablePrefixCaching: true }, '--no-enable-prefix-caching', '--enable-prefix-caching'],
  ['chunked prefill off', { enableChunkedPrefill: false }, '--enable-chunked-prefill', '--no-enable-chunked-prefill'],
  ['enforce-eager', { enforceEager: true }, '--enable-chunked-prefill', '--enable-chunked-prefill --enforce-eager'],
  [
    'max-num-batched-tokens',
    { maxNumBatchedTokens: 4096 },
    '--gpu-memory-utilization 0.9',
    '--gpu-memory-utilization 0.9 --max-num-batched-tokens 4096',
  ],
  [
    'max-model-len',
    { maxModelLen: 8192 },
    '--gpu-memory-utilization 0.9',
    '--gpu-memory-utilization 0.9 --max-model-len 8192',
  ],
  [
    'ngram speculative decoding',
    { speculative: { method: 'ngram', numSpeculativeTokens: 3 } },
    '--enable-chunked-prefill',
    `--enable-chunked-prefill --speculative-config '{"method":"ngram","num_speculative_tokens":3,"prompt_lookup_max":3}'`,
  ],
  [
    'draft-model speculative decoding',
    { speculative: { method: 'draftModel', model: 'meta-llama/Llama-3.2-1B' } },
    '--enable-chunked-prefill',
    `--enable-chunked-prefill --speculative-config '{"method":"draft_model","model":"meta-llama/Llama-3.2-1B","num_speculative_tokens":4}'`,
  ],
  [
    'eagle3 speculative decoding',
    { speculative: { method: 'eagle3', model: 'yuhuili/EAGLE3-LLaMA3.1-Instruct-8B', numSpeculativeTokens: 2 } },
    '--enable-chunked-prefill',
    `--enable-chunked-prefill --speculative-config '{"method":"eagle3","model":"yuhuili/EAGLE3-LLaMA3.1-Instruct-8B","num_speculative_tokens":2}'`,
  ],
];

for (const [name, params, from, to] of vllmCases) {
  void test(`vllm renders ${name} as ${to.split(' ').slice(-2).join(' ')}`, () => {
    assert.ok(VLLM_BASE.includes(from), `base line lacks ${from}`);
    assert.equal(line({ type: 'vllm', vllm: params }), VLLM_BASE.replace(from, to));
  });
}

void test('vllm passes extraArgs through verbatim, last', () => {
  assert.equal(
    line({ type: 'vllm', extraArgs: ['--block-size', '32', '--disable-log-stats'] }),
    `${VLLM_BASE} --block-size 32 --disable-log-stats`,
  );
});

void test("vllm serves a PVC model from its mount path and a random model with dummy weights of the spec's sizes", () => {
  const pvc = ModelSchema.parse({ name: 'my-llama', source: { pvc: { claimName: 'models', path: 'llama/8b' } } });
  const launch = renderBackendLaunch(backend({ type: 'vllm' }), pvc, ctx);
  assert.deepEqual(launch.args.slice(0, 4), ['serve', '/models/llama/8b', '--served-model-name', 'my-llama']);
  assert.equal(launch.env['HF_HUB_OFFLINE'], '1');
  const random = ModelSchema.parse({
    name: 'meta-llama/Llama-3.2-1B',
    source: { random: { hiddenSize: 2048, numLayers: 16, numHeads: 32, numKvHeads: 8, intermediateSize: 8192 } },
  });
  const r = renderBackendLaunch(backend({ type: 'vllm' }), random, ctx);
  const i = r.args.indexOf('--hf-overrides');
  assert.deepEqual(r.args.slice(i - 2, i), ['--load-format', 'dummy']);
  assert.deepEqual(JSON.parse(r.args[i + 1] ?? '{}'), {
    hidden_size: 2048,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    intermediate_size: 8192,
    max_position_embeddings: 4096,
    tie_word_embeddings: false,
  });
  assert.equal(r.env['HF_HUB_OFFLINE'], undefined);
});

void test('vllm rejects more parallel ranks than the run has GPUs, naming the field', () => {
  assert.throws(
    () => line({ type: 'vllm', vllm: { tensorParallelSize: 4, pipelineParallelSize: 2 } }),
    (err: unknown) =>
      err instanceof InvalidInputError &&
      err.issues[0]?.path === 'spec.backends[vllm].vllm.tensorParallelSize' &&
      /8 GPUs/.test(err.message),
  );
  assert.throws(() => line({ type: 'vllm', vllm: { speculative: { method: 'eagle' } } }), /needs a draft model id/);
});

void test('the HF token reaches every backend only as a mounted file whose path is in HF_TOKEN_PATH', () => {
  const gated = ModelSchema.parse({
    name: 'meta-llama/Llama-3.1-8B',
    source: { huggingFace: { tokenSecretRef: { name: 'hf' } } },
  });
  for (const type of ['vllm', 'tensorrt', 'pytorch']) {
    const launch = renderBackendLaunch(backend({ type }), gated, { ...ctx, gpusPerRun: 1 });
    assert.deepEqual(launch.secretFiles, [
      {
        pathEnv: 'HF_TOKEN_PATH',
        secretName: 'hf',
        secretKey: 'token',
        mountDir: '/var/run/secrets/llem/huggingface',
        fileName: 'token',
      },
    ]);
    assert.equal(launch.env['HF_TOKEN_PATH'], '/var/run/secrets/llem/huggingface/token');
    assert.equal(launch.env['HF_TOKEN'], undefined);
    assert.ok(!launch.args.some((a) => a.includes('HF_TOKEN')), type);
  }
});

const TRT_BASE =
  'trtllm-serve serve meta-llama/Llama-3.1-8B-Instruct --host 0.0.0.0 --port 8000 --backend pytorch --tp_size 1 --pp_size 1 ' +
  '--max_batch_size 256 --max_num_tokens 8192 --kv_cache_free_gpu_memory_fraction 0.9 --extra_llm_api_options /tmp/llem/trtllm-extra-llm-api-options.yaml';

void test('tensorrt with defaults renders the PyTorch flow with every default explicit', () => {
  assert.equal(line({ type: 'tensorrt' }), TRT_BASE);
});

const trtCases: [string, Record<string, unknown>, string, string][] = [
  ['tp', { tensorParallelSize: 2 }, '--tp_size 1', '--tp_size 2'],
  ['pp', { pipelineParallelSize: 4 }, '--pp_size 1', '--pp_size 4'],
  ['max batch size', { maxBatchSize: 32 }, '--max_batch_size 256', '--max_batch_size 32'],
  ['max num tokens', { maxNumTokens: 2048 }, '--max_num_tokens 8192', '--max_num_tokens 2048'],
  [
    'kv cache fraction',
    { kvCacheFreeGpuMemoryFraction: 0.5 },
    '--kv_cache_free_gpu_memory_fraction 0.9',
    '--kv_cache_free_gpu_memory_fraction 0.5',
  ],
  ['the TensorRT engine backend', { backend: 'trt' }, '--backend pytorch', '--backend tensorrt'],
];

for (const [name, params, from, to] of trtCases) {
  void test(`tensorrt renders ${name} as ${to}`, () => {
    assert.equal(line({ type: 'tensorrt', tensorrt: params }), TRT_BASE.replace(from, to));
  });
}

void test('tensorrt quantisation becomes an extra LLM API options file written before start', () => {
  const launch = renderBackendLaunch(
    backend({ type: 'tensorrt', tensorrt: { quantization: 'fp8' }, extraArgs: ['--log_level', 'info'] }),
    hf,
    ctx,
  );
  assert.equal(formatCommandLine(launch), `${TRT_BASE} --log_level info`);
  assert.deepEqual(launch.files, [
    {
      path: '/tmp/llem/trtllm-extra-llm-api-options.yaml',
      content: 'dtype: bfloat16\nquant_config:\n  quant_algo: FP8\n',
    },
  ]);
});

void test('tensorrt gets the model dtype through the LLM API options (trtllm-serve has no flag); auto writes no file', () => {
  const plain = renderBackendLaunch(backend({ type: 'tensorrt' }), hf, ctx);
  assert.deepEqual(plain.files, [
    { path: '/tmp/llem/trtllm-extra-llm-api-options.yaml', content: 'dtype: bfloat16\n' },
  ]);
  const auto = renderBackendLaunch(
    backend({ type: 'tensorrt' }),
    ModelSchema.parse({ name: 'meta-llama/Llama-3.1-8B-Instruct' }),
    ctx,
  );
  assert.deepEqual(auto.files, []);
  assert.ok(!auto.args.includes('--extra_llm_api_options'));
});

void test('tensorrt refuses random weights and non-main revisions with a reason', () => {
  const random = ModelSchema.parse({ name: 'x/y', source: { random: {} } });
  assert.throws(() => line({ type: 'tensorrt' }, random), /cannot load random weights/);
  const pinned = ModelSchema.parse({ name: 'x/y', revision: 'abc123' });
  assert.throws(
    () => line({ type: 'tensorrt' }, pinned),
    (err: unknown) => err instanceof InvalidInputError && err.issues[0]?.path === 'spec.model.revision',
  );
});

const random1b = ModelSchema.parse({
  name: 'llem/random-llama-1b',
  dtype: 'bfloat16',
  source: {
    random: {
      hiddenSize: 2048,
      numLayers: 16,
      numHeads: 32,
      numKvHeads: 8,
      intermediateSize: 8192,
      vocabSize: 32000,
      maxPositionEmbeddings: 4096,
    },
  },
});
const one: LaunchContext = { ...ctx, gpusPerRun: 1 };
const PT_BASE =
  'python3 -m server --model llem/random-llama-1b --served-model-name llem/random-llama-1b --source random --random-architecture llama ' +
  '--random-hidden-size 2048 --random-layers 16 --random-heads 32 --random-kv-heads 8 --random-intermediate-size 8192 ' +
  '--random-vocab-size 32000 --random-max-positions 4096 --seed 7 --dtype bfloat16 --host 0.0.0.0 --port 8000 --batching dynamic ' +
  '--max-batch-size 8 --attn-implementation sdpa --no-compile --no-cuda-graphs --quantization none';

void test('pytorch with a random model renders the architecture and every default explicitly', () => {
  assert.equal(line({ type: 'pytorch' }, random1b, one), PT_BASE);
});

const ptCases: [string, Record<string, unknown>, string, string][] = [
  ['static batching', { batching: 'static' }, '--batching dynamic', '--batching static'],
  ['max batch size', { maxBatchSize: 32 }, '--max-batch-size 8', '--max-batch-size 32'],
  [
    'attention implementation',
    { attnImplementation: 'eager' },
    '--attn-implementation sdpa',
    '--attn-implementation eager',
  ],
  ['torch.compile', { compile: true }, '--no-compile', '--compile'],
  ['CUDA graphs', { cudaGraphs: true }, '--no-cuda-graphs', '--cuda-graphs'],
  ['a context length', { maxModelLen: 512 }, '--quantization none', '--quantization none --max-model-len 512'],
  [
    '4-bit quantisation',
    { quantization: 'bitsandbytes4bit' },
    '--quantization none',
    '--quantization bitsandbytes4bit',
  ],
  [
    '8-bit quantisation',
    { quantization: 'bitsandbytes8bit' },
    '--quantization none',
    '--quantization bitsandbytes8bit',
  ],
];

for (const [name, params, from, to] of ptCases) {
  void test(`pytorch renders ${name} as ${to}`, () => {
    assert.equal(line({ type: 'pytorch', pytorch: params }, random1b, one), PT_BASE.replace(from, to));
  });
}

void test('pytorch model sources: hub id with revision, PVC path, and PYTHONPATH for local runs', () => {
  const hubLine = line({ type: 'pytorch' }, hf, one);
  assert.ok(
    hubLine.includes(
      '--model meta-llama/Llama-3.1-8B-Instruct --served-model-name meta-llama/Llama-3.1-8B-Instruct --source huggingface --revision main --seed 7',
    ),
  );
  const pvc = ModelSchema.parse({ name: 'm', source: { pvc: { claimName: 'c', path: '/a/../b' } } });
  assert.ok(line({ type: 'pytorch' }, pvc, one).includes('--source path --path /models/b '));
  const local = renderBackendLaunch(backend({ type: 'pytorch' }), random1b, {
    ...one,
    pytorchServerRoot: '/repo/images/pytorch',
    python: '/venv/bin/python',
  });
  assert.equal(local.command, '/venv/bin/python');
  assert.equal(local.env['PYTHONPATH'], '/repo/images/pytorch');
  assert.equal(local.env['HF_HUB_OFFLINE'], '1');
});

void test('pytorch tensorParallelSize 2 on two GPUs renders --tensor-parallel-size 2; 1 renders no flag', () => {
  const two: LaunchContext = { ...ctx, gpusPerRun: 2 };
  assert.match(
    line({ type: 'pytorch', pytorch: { tensorParallelSize: 2 } }, random1b, two),
    / --tensor-parallel-size 2 /,
  );
  assert.doesNotMatch(line({ type: 'pytorch' }, random1b, one), /tensor-parallel/);
  assert.throws(
    () => line({ type: 'pytorch', pytorch: { tensorParallelSize: 4 } }, random1b, two),
    (e: unknown) => e instanceof InvalidInputError && /pytorch\.tensorParallelSize: .*gpusPerRun is 2/.test(e.message),
  );
});

void test('pytorch refuses more GPUs per run than its tensorParallelSize', () => {
  assert.throws(() => line({ type: 'pytorch' }, random1b, ctx), /spec\.placement\.gpusPerRun.*tensorParallelSize 1/);
});

void test('every backend reports a readiness endpoint and a client URL that reaches a wildcard bind', () => {
  for (const type of ['vllm', 'pytorch'] as const) {
    const launch = renderBackendLaunch(backend({ type }), random1b, one);
    assert.equal(launch.readiness.path, '/health');
    assert.equal(launch.baseUrl, 'http://127.0.0.1:8000');
  }
  const trt = renderBackendLaunch(backend({ type: 'tensorrt' }), hf, { ...one, host: '::1', port: 9000 });
  assert.equal(trt.baseUrl, 'http://[::1]:9000');
  assert.equal(trt.readiness.path, '/health');
});

void test("backends[].readinessTimeoutSeconds replaces the backend type's readiness timeout; absent, each type keeps its own", () => {
  const timeout = (b: unknown): number => renderBackendLaunch(backend(b), hf, ctx).readiness.timeoutSeconds;
  assert.equal(timeout({ type: 'vllm' }), 1800);
  assert.equal(timeout({ type: 'tensorrt' }), 3600);
  assert.equal(timeout({ type: 'vllm', readinessTimeoutSeconds: 7200 }), 7200);
  assert.equal(timeout({ type: 'tensorrt', readinessTimeoutSeconds: 60 }), 60);
  assert.throws(() => backend({ type: 'vllm', readinessTimeoutSeconds: 0 }));
  assert.throws(() => backend({ type: 'vllm', readinessTimeoutSeconds: 86_401 }));
});
