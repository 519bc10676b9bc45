// A running attempt whose pod the scheduler cannot place (the only node lost, no free GPU) says why in
// the Running condition, from the scheduler's own PodScheduled condition; once placed, it stops saying so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { waitingForNode } from '../../../controller/pod-waiting.ts';
import { podLabels, podName } from '../../../controller/pods.ts';
import { stepRuns, type RunInputs } from '../../../controller/runs.ts';
import { controllerUnderTest, experimentWith, settle, statusOf } from './fakes.ts';

const TAINT_MESSAGE =
  '0/1 nodes are available: 1 node(s) had untolerated taint(s). ' +
  'preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.';

function unschedulable(p: V1Pod, message = TAINT_MESSAGE): V1Pod {
  return {
    ...p,
    status: {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }],
    },
  };
}

function running(
  id = 'r1',
  attempt = 1,
): { id: string; configurationId: string; cycle: number; phase: 'Running'; attempt: number } {
  return { id, configurationId: 'c', cycle: 0, phase: 'Running', attempt };
}

function pod(name: string, run: string, attempt: number): V1Pod {
  return { metadata: { name, labels: { 'llem.dev/run': run, 'llem.dev/attempt': String(attempt) } } };
}

void test("the scheduler's message for a running attempt's unplaceable pod is what the run waits for", () => {
  const p = unschedulable(pod('p-a1', 'r1', 1));
  assert.equal(waitingForNode([p], [running()]), `pod p-a1 cannot be scheduled: ${TAINT_MESSAGE}`);
});

void test('pods of other attempts, deleted pods, scheduled pods and pods merely pending say nothing', () => {
  const old = unschedulable(pod('p-a0', 'r1', 0));
  const deleted = {
    ...unschedulable(pod('p-a1', 'r1', 1)),
    metadata: { ...pod('p-a1', 'r1', 1).metadata, deletionTimestamp: new Date() },
  };
  const placed: V1Pod = {
    ...pod('p-a1', 'r1', 1),
    status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] },
  };
  const fresh: V1Pod = { ...pod('p-a1', 'r1', 1), status: { phase: 'Pending' } };
  for (const p of [old, deleted, placed, fresh]) assert.equal(waitingForNode([p], [running()]), undefined);
  assert.equal(
    waitingForNode([unschedulable(pod('p-a1', 'r1', 1))], [{ ...running(), phase: 'Succeeded' }]),
    undefined,
  );
});

void test("a run whose pod cannot be scheduled shows Running=True reason Unschedulable with the scheduler's reason, and RunsInProgress once placed", async () => {
  const { experiments, pods, reconciler, streams, bus } = await controllerUnderTest();
  experiments.put(
    experimentWith({
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      measurement: { cycles: 1 },
    }),
  );
  await reconciler.reconcile('ns/e1');
  await settle();
  const [first] = pods.list();
  assert.ok(first !== undefined, 'the run got its pod');
  const runningCondition = (): { reason?: string; message?: string } | undefined =>
    statusOf(experiments).conditions.find((c) => c.type === 'Running');
  assert.equal(runningCondition()?.reason, 'RunsInProgress');

  pods.put(unschedulable(first));
  await reconciler.reconcile('ns/e1');
  await settle();
  assert.equal(runningCondition()?.reason, 'Unschedulable');
  assert.match(
    runningCondition()?.message ?? '',
    /Waiting for a node: pod \S+ cannot be scheduled: 0\/1 nodes are available: 1 node\(s\) had untolerated taint/,
  );

  pods.put({ ...first, status: { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }] } });
  await reconciler.reconcile('ns/e1');
  await settle();
  assert.equal(runningCondition()?.reason, 'RunsInProgress');
  assert.doesNotMatch(runningCondition()?.message ?? '', /Waiting for a node/);
  await streams.stopAll();
  await bus.close();
});

void test('a run that runs out of time while the kubelet keeps failing to create its container names that container and why (a memory limit too low for runc to start it)', () => {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      measurement: { cycles: 1 },
      policy: { retries: 1, runTimeoutSeconds: 60 },
    },
  });
  assert.ok(v.ok);
  const ref = { name: 'exp', namespace: 'ns', uid: 'uid-1234567' };
  const t0 = new Date('2026-01-01T00:00:00Z');
  const inputs: RunInputs = {
    planned: v.matrix.runs,
    previous: [],
    pods: [],
    judge: { verdict: () => null, failure: () => undefined },
    resumed: new Set(),
    policy: v.experiment.spec.policy,
    replicas: 1,
    parallelism: 1,
    now: t0,
    retryBaseMs: 1000,
    expected: new Set(),
    podName: (r, a, i) => podName(ref, r, a, i),
  };
  const started = stepRuns(inputs);
  const id = started.runs[0]?.id ?? '';
  const stuck: V1Pod = {
    metadata: { name: podName(ref, id, 0, 0), labels: podLabels(ref, id, 0, 0) },
    status: {
      phase: 'Pending',
      containerStatuses: [
        {
          name: 'backend',
          ready: false,
          restartCount: 0,
          image: 'x',
          imageID: '',
          state: {
            waiting: {
              reason: 'CreateContainerError',
              message: 'container init was OOM-killed (memory limit too low?)',
            },
          },
        },
      ],
    },
  };
  const before = stepRuns({ ...inputs, now: new Date(t0.getTime() + 30_000), previous: started.runs, pods: [stuck] });
  assert.equal(before.runs[0]?.phase, 'Running', 'the kubelet may still get it started: not failed before the timeout');
  const after = stepRuns({ ...inputs, now: new Date(t0.getTime() + 61_000), previous: started.runs, pods: [stuck] });
  assert.equal(after.runs[0]?.attempt, 1);
  assert.match(
    after.runs[0]?.message ?? '',
    /RunTimeout: no complete data within policy\.runTimeoutSeconds \(60 s\); pod \S+: backend: CreateContainerError: container init was OOM-killed \(memory limit too low\?\)/,
  );
});
