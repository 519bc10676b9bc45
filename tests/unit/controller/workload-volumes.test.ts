import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { buildPod } from '../../../controller/pods.ts';
import { InvalidInputError } from '../../../lib/errors.ts';

const ref = { name: 'exp', namespace: 'ns', uid: 'uid-1234567' };
const OPTS = { agentImage: 'agent:1', backendImages: {}, agentEnv: [], simulate: false };

function podFor(dataset: Record<string, unknown>): ReturnType<typeof buildPod> {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }], workload: { dataset } },
  });
  assert.ok(v.ok, JSON.stringify(v));
  const [configuration] = v.matrix.configurations;
  const [run] = v.matrix.runs;
  assert.ok(configuration !== undefined && run !== undefined);
  return buildPod({ experiment: ref, spec: v.experiment.spec, configuration, run, attempt: 0, replica: 0 }, OPTS);
}

test('a trace on a PVC is mounted read-only into the run pod and the agent is pointed at the file in it', () => {
  const pod = podFor({ trace: { pvc: { claimName: 'traces', path: 'azure/day1.jsonl' }, timeScale: 2 } });
  const volume = pod.spec?.volumes?.find((v) => v.name === 'workload-trace');
  assert.deepEqual(volume?.persistentVolumeClaim, { claimName: 'traces', readOnly: true });
  const c = pod.spec?.containers[0];
  const mount = c?.volumeMounts?.find((m) => m.name === 'workload-trace');
  assert.deepEqual(mount, { name: 'workload-trace', mountPath: '/etc/llem/workload/trace', readOnly: true });
  const config = JSON.parse(c?.env?.find((e) => e.name === 'LLEM_AGENT_CONFIG')?.value ?? '{}') as {
    workload: { traceFile?: string; traceTimeScale?: number };
  };
  assert.equal(config.workload.traceFile, '/etc/llem/workload/trace/azure/day1.jsonl');
  assert.equal(config.workload.traceTimeScale, 2);
});

test('a local trace or conversations file is refused for a run pod, naming the field', () => {
  for (const kind of ['trace', 'conversations'] as const) {
    assert.throws(
      () => podFor({ [kind]: { file: 'x.jsonl' } }),
      (err: unknown) =>
        err instanceof InvalidInputError && err.issues[0]?.path === `spec.workload.dataset.${kind}.file`,
    );
  }
});

test('a PVC path that leaves the volume, or both file and pvc, are invalid', () => {
  const manifest = (trace: unknown): unknown => ({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: { model: { name: 'm' }, backends: [{ type: 'pytorch' }], workload: { dataset: { trace } } },
  });
  const up = validateEnergyExperiment(manifest({ pvc: { claimName: 't', path: '../etc/passwd' } }));
  assert.equal(up.ok ? '' : up.issues[0]?.path, 'spec.workload.dataset.trace.pvc.path');
  const both = validateEnergyExperiment(manifest({ file: 'a', pvc: { claimName: 't', path: 'a' } }));
  assert.match(both.ok ? '' : (both.issues[0]?.message ?? ''), /exactly one of file, pvc/);
});
