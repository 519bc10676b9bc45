// Each invalid manifest must be rejected with `file: <exact field path>: <message>`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateManifestDocument } from '../../../lib/manifest/index.ts';
import { isInvalidInput } from '../../../lib/errors.ts';
import { at, validManifest, type Json } from './fixtures.ts';

interface Case {
  what: string;
  mutate: (m: Json) => void;
  path: string;
  message?: RegExp;
}

const spec = (m: Json): Json => at(m, 'spec');
const vllm0 = (m: Json): Json => {
  const b = at(m, 'spec', 'backends', 0);
  b['vllm'] ??= {};
  return b['vllm'] as Json;
};
const sweep = (m: Json, s: Json): void => {
  spec(m)['sweep'] = s;
};

const CASES: Case[] = [
  {
    what: 'a wrong apiVersion',
    mutate: (m) => (m['apiVersion'] = 'llem.dev/v1'),
    path: 'apiVersion',
    message: /must be "llem.dev\/v1alpha1" \(got "llem.dev\/v1"\)/,
  },
  { what: 'a wrong kind', mutate: (m) => (m['kind'] = 'Experiment'), path: 'kind' },
  {
    what: 'an unknown top-level field',
    mutate: (m) => (m['specs'] = {}),
    path: 'specs',
    message: /did you mean "spec"/,
  },
  { what: 'a missing metadata', mutate: (m) => delete m['metadata'], path: 'metadata', message: /required/ },
  {
    what: 'an upper-case name',
    mutate: (m) => (at(m, 'metadata')['name'] = 'Base'),
    path: 'metadata.name',
    message: /DNS-1123/,
  },
  {
    what: 'a 64-character name',
    mutate: (m) => (at(m, 'metadata')['name'] = 'a'.repeat(64)),
    path: 'metadata.name',
    message: /DNS-1123/,
  },
  {
    what: 'a misspelt metadata field',
    mutate: (m) => (at(m, 'metadata')['label'] = {}),
    path: 'metadata.label',
    message: /did you mean "labels"/,
  },
  { what: 'a missing spec', mutate: (m) => delete m['spec'], path: 'spec', message: /required/ },
  { what: 'a missing model', mutate: (m) => delete spec(m)['model'], path: 'spec.model', message: /required/ },
  { what: 'an empty model name', mutate: (m) => (at(m, 'spec', 'model')['name'] = ''), path: 'spec.model.name' },
  {
    what: 'an unknown dtype',
    mutate: (m) => (at(m, 'spec', 'model')['dtype'] = 'fp16'),
    path: 'spec.model.dtype',
    message: /must be one of auto, float16, bfloat16, float32 \(got "fp16"\)/,
  },
  {
    what: 'two model sources',
    mutate: (m) => (at(m, 'spec', 'model', 'source')['huggingFace'] = {}),
    path: 'spec.model.source',
    message: /exactly one of huggingFace, pvc, random/,
  },
  {
    what: 'no model source',
    mutate: (m) => (at(m, 'spec', 'model')['source'] = {}),
    path: 'spec.model.source',
    message: /got none/,
  },
  {
    what: 'a PVC claim name that is not a label',
    mutate: (m) => (at(m, 'spec', 'model')['source'] = { pvc: { claimName: 'My_Claim' } }),
    path: 'spec.model.source.pvc.claimName',
  },
  {
    what: 'a token secret without a name',
    mutate: (m) => (at(m, 'spec', 'model')['source'] = { huggingFace: { tokenSecretRef: { key: 'token' } } }),
    path: 'spec.model.source.huggingFace.tokenSecretRef.name',
    message: /required/,
  },
  {
    what: 'a zero hidden size',
    mutate: (m) => (at(m, 'spec', 'model', 'source', 'random')['hiddenSize'] = 0),
    path: 'spec.model.source.random.hiddenSize',
  },
  {
    what: 'a hidden size that is not a multiple of the heads',
    mutate: (m) => (at(m, 'spec', 'model', 'source', 'random')['hiddenSize'] = 250),
    path: 'spec.model.source.random.hiddenSize',
    message: /multiple of numHeads/,
  },
  {
    what: 'KV heads that do not divide the heads',
    mutate: (m) => (at(m, 'spec', 'model', 'source', 'random')['numKvHeads'] = 3),
    path: 'spec.model.source.random.numKvHeads',
  },
  {
    what: 'an empty backend list',
    mutate: (m) => (spec(m)['backends'] = []),
    path: 'spec.backends',
    message: /must have at least 1 item$/,
  },
  {
    what: 'the reserved sglang backend',
    mutate: (m) => (spec(m)['backends'] = [{ type: 'sglang' }]),
    path: 'spec.backends[0].type',
    message: /reserved but not supported yet/,
  },
  {
    what: 'an unknown backend type',
    mutate: (m) => (spec(m)['backends'] = [{ type: 'onnx' }]),
    path: 'spec.backends[0].type',
  },
  {
    what: 'vLLM parameters on a PyTorch backend',
    mutate: (m) => (spec(m)['backends'] = [{ type: 'pytorch', vllm: {} }]),
    path: 'spec.backends[0].vllm',
    message: /type "pytorch"/,
  },
  {
    what: 'a misspelt vLLM parameter',
    mutate: (m) => (vllm0(m)['maxNumSeq'] = 8),
    path: 'spec.backends[0].vllm.maxNumSeq',
    message: /did you mean "maxNumSeqs"/,
  },
  {
    what: 'a GPU memory fraction above 1',
    mutate: (m) => (vllm0(m)['gpuMemoryUtilization'] = 1.5),
    path: 'spec.backends[0].vllm.gpuMemoryUtilization',
    message: /must be <= 1 \(got 1.5\)/,
  },
  {
    what: 'a GPU memory fraction of 0',
    mutate: (m) => (vllm0(m)['gpuMemoryUtilization'] = 0),
    path: 'spec.backends[0].vllm.gpuMemoryUtilization',
    message: /must be > 0 \(got 0\)/,
  },
  {
    what: 'a fractional maxNumSeqs',
    mutate: (m) => (vllm0(m)['maxNumSeqs'] = 2.5),
    path: 'spec.backends[0].vllm.maxNumSeqs',
    message: /must be an integer \(got 2.5\)/,
  },
  {
    what: 'tensor parallelism larger than the GPUs per run',
    mutate: (m) => (vllm0(m)['tensorParallelSize'] = 2),
    path: 'spec.backends[0].vllm.tensorParallelSize',
    message: /needs 2 GPUs but placement.gpusPerRun is 1/,
  },
  {
    what: 'TensorRT-LLM tensor x pipeline parallelism larger than the GPUs per run',
    mutate: (m) => {
      spec(m)['backends'] = [{ type: 'tensorrt', tensorrt: { tensorParallelSize: 2, pipelineParallelSize: 2 } }];
      spec(m)['placement'] = { gpusPerRun: 2 };
    },
    path: 'spec.backends[0].tensorrt.tensorParallelSize',
    message: /needs 4 GPUs/,
  },
  {
    what: 'tensor parallelism that does not divide the heads',
    mutate: (m) => {
      vllm0(m)['tensorParallelSize'] = 3;
      spec(m)['placement'] = { gpusPerRun: 3 };
    },
    path: 'spec.backends[0].vllm.tensorParallelSize',
    message: /must divide the model's numHeads/,
  },
  {
    what: 'two backends with the same name',
    mutate: (m) => (spec(m)['backends'] = [{ type: 'vllm' }, { type: 'vllm' }]),
    path: 'spec.backends[1].type',
    message: /already used by spec.backends\[0\]/,
  },
  {
    what: 'an upper-case backend name',
    mutate: (m) => (at(m, 'spec', 'backends', 0)['name'] = 'VLLM'),
    path: 'spec.backends[0].name',
  },
  {
    what: 'a backend name longer than 20',
    mutate: (m) => (at(m, 'spec', 'backends', 0)['name'] = 'v'.repeat(21)),
    path: 'spec.backends[0].name',
  },
  {
    what: 'EAGLE speculative decoding without a draft model',
    mutate: (m) => (vllm0(m)['speculative'] = { method: 'eagle' }),
    path: 'spec.backends[0].vllm.speculative.model',
    message: /required when speculative.method is "eagle"/,
  },
  {
    what: 'an unknown PyTorch batching mode',
    mutate: (m) => (spec(m)['backends'] = [{ type: 'pytorch', pytorch: { batching: 'continuous' } }]),
    path: 'spec.backends[0].pytorch.batching',
  },
  {
    what: 'CUDA graphs together with torch.compile',
    mutate: (m) => (spec(m)['backends'] = [{ type: 'pytorch', pytorch: { cudaGraphs: true, compile: true } }]),
    path: 'spec.backends[0].pytorch.cudaGraphs',
    message: /cudaGraphs and compile are alternatives/,
  },
  {
    what: 'CUDA graphs with a quantised model',
    mutate: (m) =>
      (spec(m)['backends'] = [{ type: 'pytorch', pytorch: { cudaGraphs: true, quantization: 'bitsandbytes4bit' } }]),
    path: 'spec.backends[0].pytorch.cudaGraphs',
    message: /cudaGraphs needs an unquantised model \(quantization is "bitsandbytes4bit"\)/,
  },
  {
    what: 'a non-string extra argument',
    mutate: (m) => (at(m, 'spec', 'backends', 0)['extraArgs'] = [7]),
    path: 'spec.backends[0].extraArgs[0]',
  },
  {
    what: 'a context length shorter than the longest request',
    mutate: (m) => {
      vllm0(m)['maxModelLen'] = 100;
      at(m, 'spec', 'workload')['dataset'] = { synthetic: { inputTokens: { mean: 90 }, outputTokens: { mean: 20 } } };
    },
    path: 'spec.backends[0].vllm.maxModelLen',
    message: /90 input \+ 20 output/,
  },
  {
    what: 'a PyTorch context length shorter than the longest request',
    mutate: (m) => {
      spec(m)['backends'] = [{ type: 'pytorch', pytorch: { maxModelLen: 100 } }];
      at(m, 'spec', 'workload')['dataset'] = { synthetic: { inputTokens: { mean: 90 }, outputTokens: { mean: 20 } } };
    },
    path: 'spec.backends[0].pytorch.maxModelLen',
    message: /90 input \+ 20 output/,
  },
  {
    what: 'a sweep axis outside the sweepable roots',
    mutate: (m) => sweep(m, { axes: { 'foo.bar': [1] } }),
    path: 'spec.sweep.axes[foo.bar]',
    message: /must be a dotted path starting with one of/,
  },
  {
    what: 'an empty sweep axis',
    mutate: (m) => sweep(m, { axes: { 'vllm.maxNumSeqs': [] } }),
    path: 'spec.sweep.axes[vllm.maxNumSeqs]',
  },
  {
    what: 'an invalid value on a sweep axis',
    mutate: (m) => sweep(m, { axes: { 'vllm.maxNumSeqs': [8, 0] } }),
    path: 'spec.sweep.axes[vllm.maxNumSeqs][1]',
    message: /vllm.maxNumSeqs: /,
  },
  {
    what: 'a sweep axis naming an unknown parameter',
    mutate: (m) => sweep(m, { axes: { 'vllm.maxNumSeq': [8] } }),
    path: 'spec.sweep.axes[vllm.maxNumSeq][0]',
    message: /unknown field "vllm.maxNumSeq"/,
  },
  {
    what: 'a sweep axis for a backend type that is not listed',
    mutate: (m) => sweep(m, { axes: { 'tensorrt.maxBatchSize': [8] } }),
    path: 'spec.sweep.axes[tensorrt.maxBatchSize]',
    message: /no backend of type "tensorrt"/,
  },
  {
    what: 'a swept tensor parallel size larger than the GPUs per run',
    mutate: (m) => sweep(m, { axes: { 'vllm.tensorParallelSize': [1, 2] } }),
    path: 'spec.sweep.axes[vllm.tensorParallelSize][1]',
    message: /needs 2 GPUs/,
  },
  {
    what: 'an invalid explicit sweep point',
    mutate: (m) => sweep(m, { points: [{ 'workload.concurrency': -1 }] }),
    path: 'spec.sweep.points[0][workload.concurrency]',
  },
  {
    what: 'a misspelt sweep field',
    mutate: (m) => sweep(m, { axis: {} }),
    path: 'spec.sweep.axis',
    message: /did you mean "axes"/,
  },
  {
    what: 'an unknown workload mode',
    mutate: (m) => (at(m, 'spec', 'workload')['mode'] = 'closed'),
    path: 'spec.workload.mode',
  },
  {
    what: 'a misspelt workload mode',
    mutate: (m) => (at(m, 'spec', 'workload')['mode'] = 'concurency'),
    path: 'spec.workload.mode',
    message: /must be one of offline, concurrency, rate \(got "concurency"\); did you mean "concurrency"\?/,
  },
  {
    what: 'rate mode without a rate',
    mutate: (m) => (at(m, 'spec', 'workload')['mode'] = 'rate'),
    path: 'spec.workload.ratePerSecond',
    message: /required when workload.mode is "rate"/,
  },
  {
    what: 'zero requests',
    mutate: (m) => (at(m, 'spec', 'workload')['requests'] = 0),
    path: 'spec.workload.requests',
    message: /must be >= 1 \(got 0\)/,
  },
  {
    what: 'two dataset kinds',
    mutate: (m) => (at(m, 'spec', 'workload')['dataset'] = { synthetic: {}, prompts: ['hi'] }),
    path: 'spec.workload.dataset',
    message: /exactly one of synthetic, prompts, configMapRef/,
  },
  {
    what: 'a uniform distribution without a maximum',
    mutate: (m) =>
      (at(m, 'spec', 'workload')['dataset'] = { synthetic: { inputTokens: { distribution: 'uniform', min: 4 } } }),
    path: 'spec.workload.dataset.synthetic.inputTokens.max',
    message: /required for distribution "uniform"/,
  },
  {
    what: 'a distribution whose minimum exceeds its maximum',
    mutate: (m) =>
      (at(m, 'spec', 'workload')['dataset'] = {
        synthetic: { outputTokens: { distribution: 'uniform', min: 9, max: 3 } },
      }),
    path: 'spec.workload.dataset.synthetic.outputTokens.max',
    message: /must be >= min/,
  },
  {
    what: 'an empty prompt list',
    mutate: (m) => (at(m, 'spec', 'workload')['dataset'] = { prompts: [] }),
    path: 'spec.workload.dataset.prompts',
  },
  {
    what: 'a top-p of 0',
    mutate: (m) => (at(m, 'spec', 'workload')['sampling'] = { topP: 0 }),
    path: 'spec.workload.sampling.topP',
  },
  {
    what: 'a negative temperature',
    mutate: (m) => (at(m, 'spec', 'workload')['sampling'] = { temperature: -1 }),
    path: 'spec.workload.sampling.temperature',
  },
  {
    what: 'a zero request timeout',
    mutate: (m) => (at(m, 'spec', 'workload')['requestTimeoutSeconds'] = 0),
    path: 'spec.workload.requestTimeoutSeconds',
  },
  {
    what: 'an unknown API flavour',
    mutate: (m) => (at(m, 'spec', 'workload')['api'] = 'responses'),
    path: 'spec.workload.api',
  },
  { what: 'zero cycles', mutate: (m) => (at(m, 'spec', 'measurement')['cycles'] = 0), path: 'spec.measurement.cycles' },
  {
    what: 'an unknown order',
    mutate: (m) => (at(m, 'spec', 'measurement')['order'] = 'random'),
    path: 'spec.measurement.order',
  },
  {
    what: 'a 5 ms sample interval',
    mutate: (m) => (at(m, 'spec', 'measurement')['sampleIntervalMs'] = 5),
    path: 'spec.measurement.sampleIntervalMs',
  },
  {
    what: 'a negative baseline',
    mutate: (m) => (at(m, 'spec', 'measurement')['baselineSeconds'] = -1),
    path: 'spec.measurement.baselineSeconds',
  },
  {
    what: 'a misspelt measurement field',
    mutate: (m) => (at(m, 'spec', 'measurement')['cycle'] = 3),
    path: 'spec.measurement.cycle',
    message: /did you mean "cycles"/,
  },
  {
    what: 'zero GPUs per run',
    mutate: (m) => (spec(m)['placement'] = { gpusPerRun: 0 }),
    path: 'spec.placement.gpusPerRun',
  },
  {
    what: 'an unknown toleration operator',
    mutate: (m) => (spec(m)['placement'] = { tolerations: [{ key: 'gpu', operator: 'In' }] }),
    path: 'spec.placement.tolerations[0].operator',
  },
  {
    what: 'a non-string node selector value',
    mutate: (m) => (spec(m)['placement'] = { nodeSelector: { 'nvidia.com/gpu.product': 1 } }),
    path: 'spec.placement.nodeSelector[nvidia.com/gpu.product]',
  },
  {
    what: 'an unknown failure policy',
    mutate: (m) => (spec(m)['policy'] = { failurePolicy: 'lenient' }),
    path: 'spec.policy.failurePolicy',
  },
  { what: 'negative retries', mutate: (m) => (spec(m)['policy'] = { retries: -1 }), path: 'spec.policy.retries' },
  {
    what: 'a 5 s run timeout',
    mutate: (m) => (spec(m)['policy'] = { runTimeoutSeconds: 5 }),
    path: 'spec.policy.runTimeoutSeconds',
  },
  {
    what: 'a non-boolean suspend',
    mutate: (m) => (spec(m)['policy'] = { suspend: 'yes' }),
    path: 'spec.policy.suspend',
    message: /expected true or false, got "yes"/,
  },
];

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

void describe('invalid manifests', () => {
  void it('has at least 40 cases', () => {
    assert.ok(CASES.length >= 40, `only ${CASES.length} cases`);
  });

  void it('accepts the unmutated fixture', () => {
    assert.doesNotThrow(() => validateManifestDocument(validManifest(), 'case.yaml'));
  });

  for (const c of CASES) {
    void it(`rejects ${c.what} at ${c.path}`, () => {
      const m = validManifest();
      c.mutate(m);
      let thrown: unknown;
      try {
        validateManifestDocument(m, 'case.yaml');
      } catch (err) {
        thrown = err;
      }
      assert.ok(isInvalidInput(thrown), `expected InvalidInputError, got ${String(thrown)}`);
      const line = thrown.message.split('\n').find((l) => new RegExp(`^case\\.yaml: ${escape(c.path)}: `).test(l));
      assert.ok(line !== undefined, `no line for ${c.path} in:\n${thrown.message}`);
      if (c.message !== undefined) assert.match(line, c.message);
    });
  }
});
