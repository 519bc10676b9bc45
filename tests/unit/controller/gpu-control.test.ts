// Cluster mode for spec.gpu (issue #21, ADR 0024): refused unless the chart value and the experiment
// both allow it; when allowed, only the pods that change GPU settings get root + CAP_SYS_ADMIN, the
// backend's user and a host directory for restore markers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { gpuControlIssues } from '../../../controller/gpu-control.ts';
import { buildPod, type PodBuilderOptions } from '../../../controller/pods.ts';
import { parse as parseControllerFlags } from '../../../cli/commands/controller.ts';
import type { ExperimentObject } from '../../../controller/kube.ts';
import { Reconciler } from '../../../controller/reconciler.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { rootLogger } from '../../../lib/log.ts';
import { RecordingWriter, Store } from './fakes.ts';

const ref = { name: 'exp', namespace: 'team-a', uid: '0b7c1d2e-aaaa-bbbb-cccc-123456789abc' };
const OPTS: PodBuilderOptions = { agentImage: 'agent:1', backendImages: {}, agentEnv: [], simulate: false };

function validated(gpu: Record<string, unknown>, axes: Record<string, unknown[]> = {}) {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }], gpu, sweep: { axes } },
  });
  assert.ok(v.ok, JSON.stringify(v));
  return v;
}

function pods(v: ReturnType<typeof validated>, opts: PodBuilderOptions): V1Pod[] {
  return v.matrix.configurations.map((configuration) => {
    const run = v.matrix.runs.find((r) => r.configurationId === configuration.id);
    assert.ok(run !== undefined);
    return buildPod({ experiment: ref, spec: v.experiment.spec, configuration, run, attempt: 0, replica: 0 }, opts);
  });
}

describe('spec.gpu in a cluster', () => {
  it('is refused naming spec.gpu and the chart value when the cluster does not permit GPU control', () => {
    const v = validated({}, { 'gpu.powerLimitWatts': [300, 250] });
    const issues = gpuControlIssues(v.experiment.spec, v.matrix, false);
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.path, 'spec.gpu');
    assert.match(issues[0]?.message ?? '', /spec\.gpu\.powerLimitWatts .*gpuControl\.enabled is false/);
  });

  it('is refused naming spec.gpu.allowDeviceControl when the chart permits it but the experiment does not ask', () => {
    const v = validated({ smClockMHz: 1400 });
    const issues = gpuControlIssues(v.experiment.spec, v.matrix, true);
    assert.equal(issues[0]?.path, 'spec.gpu.allowDeviceControl');
    assert.match(issues[0]?.message ?? '', /must be true for spec\.gpu\.smClockMHz/);
    assert.deepEqual(gpuControlIssues(validated({}).experiment.spec, validated({}).matrix, false), [], 'no settings');
  });

  it('gives only pods that change GPU settings root with CAP_SYS_ADMIN, the backend uid and the marker host path', () => {
    const v = validated({ allowDeviceControl: true }, { 'gpu.powerLimitWatts': [300] });
    assert.deepEqual(gpuControlIssues(v.experiment.spec, v.matrix, true), []);
    const [p] = pods(v, { ...OPTS, gpuControl: true });
    const c = p?.spec?.containers[0];
    assert.deepEqual(c?.securityContext?.capabilities, { drop: ['ALL'], add: ['SYS_ADMIN'] });
    assert.equal(c?.securityContext?.runAsUser, 0);
    assert.equal(c?.securityContext?.privileged, false);
    assert.equal(c?.securityContext?.allowPrivilegeEscalation, false);
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env['LLEM_BACKEND_UID'], '10001');
    assert.equal(env['LLEM_GPU_STATE_DIR'], '/var/lib/llem/gpu-state');
    const config = JSON.parse(String(env['LLEM_AGENT_CONFIG'])) as {
      gpu: { powerLimitWatts: number; permitted: boolean };
    };
    assert.deepEqual(config.gpu, { powerLimitWatts: 300, permitted: true });
    assert.ok(p?.spec?.volumes?.some((x) => x.hostPath?.path === '/var/lib/llem/gpu-state'));
    assert.equal(
      p?.spec?.initContainers?.[0]?.securityContext?.capabilities?.add,
      undefined,
      'the init container gets nothing',
    );
  });

  it('keeps the restricted context for pods without GPU settings, whatever the chart says', () => {
    const [p] = pods(validated({ allowDeviceControl: true }), { ...OPTS, gpuControl: true });
    const c = p?.spec?.containers[0];
    assert.deepEqual(c?.securityContext?.capabilities, { drop: ['ALL'] });
    assert.equal(c?.securityContext?.runAsUser, undefined);
    assert.ok(!(p?.spec?.volumes ?? []).some((x) => x.hostPath !== undefined));
    const [q] = pods(validated({ allowDeviceControl: true }, { 'gpu.powerLimitWatts': [300] }), OPTS);
    const env = Object.fromEntries((q?.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    const config = JSON.parse(String(env['LLEM_AGENT_CONFIG'])) as { gpu: { permitted: boolean } };
    assert.equal(config.gpu.permitted, false, 'without the chart value the agent refuses too');
  });

  it('takes the chart value as --gpu-control or LLEM_GPU_CONTROL', () => {
    const env = { LLEM_NATS_URL: 'nats://nats:4222' };
    const flag = (argv: string[], e: NodeJS.ProcessEnv): boolean => {
      const c = parseControllerFlags(argv, { ...env, ...e });
      assert.ok(c !== 'help');
      return c.gpuControl;
    };
    assert.equal(flag(['--gpu-control'], {}), true);
    assert.equal(flag([], { LLEM_GPU_CONTROL: '1' }), true);
    assert.equal(flag([], {}), false);
  });
});

describe('the reconciler and spec.gpu', () => {
  async function reconcile(gpuControl: boolean, gpu: Record<string, unknown>) {
    const experiments = new Store<ExperimentObject>();
    const pods = new Store<V1Pod>();
    const bus = new InProcessBus();
    await bus.ensureLayout();
    const noop = { changed: () => undefined, applied: () => undefined, lag: () => undefined };
    const reconciler = new Reconciler({
      experiments,
      pods,
      writer: new RecordingWriter(experiments, pods),
      streams: new BusExperimentStreams(bus, noop, rootLogger, 50),
      log: rootLogger,
      podOptions: { ...OPTS, simulate: true, gpuControl },
    });
    experiments.put({
      apiVersion: 'llem.dev/v1alpha1',
      kind: 'EnergyExperiment',
      metadata: { name: 'e1', namespace: 'ns', uid: 'uid-1', generation: 1, resourceVersion: '1' },
      spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }], gpu },
    });
    await reconciler.reconcile('ns/e1');
    const status = experiments.get('ns', 'e1')?.status as {
      phase: string;
      conditions: Array<{ type: string; status: string; reason: string; message: string }>;
    };
    return { status, pods: pods.list() };
  }

  it('sets Validated=False naming spec.gpu and starts no pod when the chart does not permit GPU control', async () => {
    const { status, pods: started } = await reconcile(false, { powerLimitWatts: 300, allowDeviceControl: true });
    const v = status.conditions.find((c) => c.type === 'Validated');
    assert.equal(v?.status, 'False');
    assert.equal(v?.reason, 'SpecInvalid');
    assert.match(
      v?.message ?? '',
      /spec\.gpu: spec\.gpu\.powerLimitWatts would change GPU settings.*gpuControl\.enabled/,
    );
    assert.equal(started.length, 0);
  });

  it('runs the experiment when both the chart value and spec.gpu.allowDeviceControl permit it', async () => {
    const { status, pods: started } = await reconcile(true, { powerLimitWatts: 300, allowDeviceControl: true });
    assert.equal(status.conditions.find((c) => c.type === 'Validated')?.status, 'True');
    assert.ok(started.length > 0);
    assert.deepEqual(started[0]?.spec?.containers[0]?.securityContext?.capabilities?.add, ['SYS_ADMIN']);
  });
});
