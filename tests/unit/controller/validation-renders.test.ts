// Validation = rendering (issue #16 item 3): whatever `llem validate` (and so the controller) accepts,
// the pod renderer renders; what a renderer refuses is refused at validation, naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { buildPod } from '../../../controller/pods.ts';

function manifest(spec: Record<string, unknown>): unknown {
  return { apiVersion: 'llem.dev/v1alpha1', kind: 'EnergyExperiment', metadata: { name: 'e', namespace: 'ns' }, spec };
}

const HF = { name: 'org/model', source: { huggingFace: {} } };
const RANDOM = { name: 'org/model', source: { random: {} } };

const REFUSED: [string, Record<string, unknown>, RegExp][] = [
  [
    'pytorch on two GPUs',
    { model: RANDOM, backends: [{ type: 'pytorch' }], placement: { gpusPerRun: 2 } },
    /^spec\.placement\.gpusPerRun: the pytorch backend serves from exactly pytorch\.tensorParallelSize GPUs/,
  ],
  [
    'pytorch tensor parallel over more GPUs than the run has',
    { model: RANDOM, backends: [{ type: 'pytorch', pytorch: { tensorParallelSize: 2 } }] },
    /pytorch\.tensorParallelSize: tensorParallelSize \(2\) needs 2 GPUs but placement\.gpusPerRun is 1/,
  ],
  [
    'pytorch tensor parallel with CUDA graphs',
    {
      model: RANDOM,
      backends: [{ type: 'pytorch', pytorch: { tensorParallelSize: 2, cudaGraphs: true } }],
      placement: { gpusPerRun: 2 },
    },
    /pytorch\.cudaGraphs: tensorParallelSize 2 runs the model eager and unquantised/,
  ],
  [
    'pytorch tensor parallel that does not divide the heads',
    {
      model: { ...RANDOM, source: { random: { numHeads: 6, numKvHeads: 3, hiddenSize: 384 } } },
      backends: [{ type: 'pytorch', pytorch: { tensorParallelSize: 2 } }],
      placement: { gpusPerRun: 2 },
    },
    /pytorch\.tensorParallelSize: tensorParallelSize \(2\) must divide the model's numKvHeads \(3\)/,
  ],
  [
    'tensorrt with random weights',
    { model: RANDOM, backends: [{ type: 'tensorrt' }] },
    /^spec\.model\.source\.random: trtllm-serve cannot load random weights/,
  ],
  [
    'tensorrt with a Hugging Face revision',
    { model: { ...HF, revision: 'v2' }, backends: [{ type: 'tensorrt' }] },
    /^spec\.model\.revision: trtllm-serve has no revision option/,
  ],
  [
    'pytorch among others on two GPUs',
    {
      model: HF,
      backends: [{ type: 'vllm', vllm: { tensorParallelSize: 2 } }, { type: 'pytorch' }],
      placement: { gpusPerRun: 2 },
    },
    /spec\.placement\.gpusPerRun/,
  ],
];

for (const [what, spec, issue] of REFUSED) {
  void test(`llem validate refuses ${what}, naming the field, as the renderer would`, () => {
    const v = validateEnergyExperiment(manifest(spec));
    assert.equal(v.ok, false);
    const lines = v.ok ? [] : v.issues.map((i) => `${i.path}: ${i.message}`);
    assert.ok(
      lines.some((l) => issue.test(l)),
      lines.join('\n'),
    );
  });
}

/** Backend x model x GPU combinations: each one either validates and renders, or is refused. */
function combinations(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const models = [
    RANDOM,
    HF,
    { ...HF, revision: 'abc' },
    { name: 'org/model', source: { pvc: { claimName: 'weights' } } },
  ];
  const backends = [
    { type: 'pytorch' },
    { type: 'pytorch', pytorch: { cudaGraphs: true } },
    { type: 'pytorch', pytorch: { tensorParallelSize: 2 } },
    { type: 'pytorch', pytorch: { tensorParallelSize: 2, cudaGraphs: true } },
    { type: 'vllm' },
    { type: 'vllm', vllm: { tensorParallelSize: 2 } },
    { type: 'tensorrt' },
    { type: 'tensorrt', tensorrt: { tensorParallelSize: 2 } },
  ];
  for (const model of models)
    for (const backend of backends)
      for (const gpusPerRun of [1, 2, 4]) out.push({ model, backends: [backend], placement: { gpusPerRun } });
  return out;
}

void test('every configuration that validates also renders a pod, for real backends and simulated ones', () => {
  let accepted = 0;
  let refused = 0;
  for (const spec of combinations()) {
    const v = validateEnergyExperiment(manifest(spec));
    if (!v.ok) {
      refused += 1;
      continue;
    }
    accepted += 1;
    for (const configuration of v.matrix.configurations) {
      const run = v.matrix.runs.find((r) => r.configurationId === configuration.id)!;
      for (const simulate of [false, true]) {
        const req = {
          experiment: { name: 'e', namespace: 'ns', uid: 'u' },
          spec: v.experiment.spec,
          configuration,
          run,
          attempt: 0,
          replica: 0,
        };
        assert.doesNotThrow(
          () => buildPod(req, { agentImage: 'a', backendImages: {}, agentEnv: [], simulate }),
          JSON.stringify(spec),
        );
      }
    }
  }
  assert.ok(accepted > 10 && refused > 10, `both sides are exercised (${accepted} accepted, ${refused} refused)`);
});

void test("the CRD carries the renderers' refusals as CEL rules, so kubectl apply agrees", async () => {
  const { readFile } = await import('node:fs/promises');
  const crd = parse(
    await readFile(new URL('../../../crds/llem.dev_energyexperiments.yaml', import.meta.url), 'utf8'),
  ) as unknown;
  const text = JSON.stringify(crd);
  assert.match(text, /the pytorch backend serves from exactly pytorch\.tensorParallelSize GPUs/);
  assert.match(text, /trtllm-serve cannot load random weights/);
  assert.match(text, /trtllm-serve has no revision option/);
});
