// Validation = rendering at the API server: what the backend renderers refuse (and `llem validate`
// refuses) is refused by `kubectl apply` through the CRD's CEL rules, and what they accept is admitted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';

const skip = kubeSkipReason();

function doc(name: string, spec: string): string {
  return `apiVersion: llem.dev/v1alpha1\nkind: EnergyExperiment\nmetadata: { name: ${name}, namespace: cel }\nspec:\n${spec}`;
}

const REFUSED: [string, string, RegExp][] = [
  [
    'pytorch-two-gpus',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch }]\n  placement: { gpusPerRun: 2 }\n',
    /pytorch backend serves from exactly pytorch.tensorParallelSize GPUs/,
  ],
  [
    'trt-random',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: tensorrt }]\n',
    /cannot load random weights/,
  ],
  [
    'trt-revision',
    '  model: { name: org/m, revision: v2, source: { huggingFace: {} } }\n  backends: [{ type: tensorrt }]\n',
    /no revision option/,
  ],
  [
    'ladder-factor-and-step',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch }]\n' +
      '  workload: { ladder: { mode: rate, start: 1, factor: 2, step: 1 } }\n',
    /set exactly one of factor and step/,
  ],
  [
    'ladder-fractional-concurrency',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch }]\n' +
      '  workload: { ladder: { mode: concurrency, start: 1.5, factor: 2 } }\n',
    /must be an integer/,
  ],
  [
    'slo-empty',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch }]\n  slo: {}\n',
    /set at least one of ttftMs, itlMs, e2eMs/,
  ],
];

const ACCEPTED: [string, string][] = [
  ['pytorch-one-gpu', '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch }]\n'],
  [
    'pytorch-tensor-parallel-two-gpus',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch, pytorch: { tensorParallelSize: 2 } }]\n  placement: { gpusPerRun: 2 }\n',
  ],
  [
    'trt-hf',
    '  model: { name: org/m, source: { huggingFace: {} } }\n  backends: [{ type: tensorrt, tensorrt: { tensorParallelSize: 2 } }]\n  placement: { gpusPerRun: 2 }\n',
  ],
  [
    'vllm-random-two-gpus',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: vllm, vllm: { tensorParallelSize: 2 } }]\n  placement: { gpusPerRun: 2 }\n',
  ],
  [
    'ladder-and-slo',
    '  model: { name: org/m, source: { random: {} } }\n  backends: [{ type: pytorch }]\n' +
      '  workload: { ladder: { mode: concurrency, start: 2, factor: 2, maxSteps: 4 } }\n  slo: { ttftMs: { ms: 500 } }\n',
  ],
];

void describe('the CRD and llem validate agree with the backend renderers', { skip, timeout: 300_000 }, () => {
  let kube: KubeCluster;
  before(async () => {
    kube = await startKube();
    await kube.kubectlOk(['create', 'namespace', 'cel']);
  });
  after(async () => kube?.stop());

  void test('kubectl apply and llem validate both refuse what a renderer refuses, with the same reason', async () => {
    for (const [name, spec, reason] of REFUSED) {
      const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: doc(name, spec) });
      assert.notEqual(r.code, 0, `${name} was admitted`);
      assert.match(r.stderr, reason, name);
      const { parse } = await import('yaml');
      const v = validateEnergyExperiment(parse(doc(name, spec)));
      assert.equal(v.ok, false, `${name} validated`);
      assert.match(v.ok ? '' : v.issues.map((i) => i.message).join('\n'), reason, name);
    }
  });

  void test('kubectl apply and llem validate both accept what the renderers render', async () => {
    const { parse } = await import('yaml');
    for (const [name, spec] of ACCEPTED) {
      const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: doc(name, spec) });
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const v = validateEnergyExperiment(parse(doc(name, spec)));
      assert.ok(v.ok, `${name}: ${v.ok ? '' : JSON.stringify(v.issues)}`);
    }
  });
});
