// The pod cache keeps only what the controller reads of a pod (controller/pod-slim.ts, ADR 0035):
// whatever the slimmed pod lost, the run state machine and the scheduling check read the same from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { slimPod } from '../../../controller/pod-slim.ts';
import { podFailure } from '../../../controller/runs.ts';
import { waitingForNode } from '../../../controller/pod-waiting.ts';

function whole(phase: string, extra: Partial<V1Pod['status']> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'e1-u1-r1-a1-r0',
      namespace: 'ns',
      uid: 'pod-uid',
      resourceVersion: '42',
      generateName: 'e1-',
      creationTimestamp: new Date(0),
      annotations: { note: 'x'.repeat(500) },
      labels: { 'llem.dev/run': 'r1', 'llem.dev/attempt': '1', 'llem.dev/experiment-uid': 'u1' },
      ownerReferences: [
        { apiVersion: 'llem.dev/v1alpha1', kind: 'EnergyExperiment', name: 'e1', uid: 'u1', controller: true },
        { apiVersion: 'v1', kind: 'ConfigMap', name: 'other', uid: 'c1' },
      ],
      managedFields: [{ manager: 'llem', operation: 'Update' }],
    },
    spec: { containers: [{ name: 'backend', image: 'img' }] },
    status: {
      phase,
      hostIP: '10.0.0.1',
      podIP: '10.1.0.1',
      qosClass: 'Burstable',
      startTime: new Date(0),
      conditions: [
        { type: 'Ready', status: 'False', reason: 'ContainersNotReady' },
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes: no GPU.' },
      ],
      containerStatuses: [
        {
          name: 'backend',
          image: 'img',
          imageID: 'sha256:abc',
          containerID: 'containerd://1',
          ready: false,
          restartCount: 3,
          lastState: { terminated: { exitCode: 1, reason: 'Error' } },
          state: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: new Date(5000) } },
        },
      ],
      initContainerStatuses: [
        {
          name: 'init',
          image: 'i',
          imageID: 'i',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } },
        },
      ],
      ...extra,
    },
  };
}

void test('a slimmed pod keeps what the controller reads and drops the rest', () => {
  const p = whole('Failed');
  slimPod(p);
  assert.equal(p.spec, undefined);
  assert.deepEqual(Object.keys(p.metadata ?? {}).sort(), [
    'labels',
    'name',
    'namespace',
    'ownerReferences',
    'resourceVersion',
    'uid',
  ]);
  assert.deepEqual(
    p.metadata?.ownerReferences?.map((o) => o.name),
    ['e1'],
    'only the controlling owner (the experiment the pod event requeues)',
  );
  assert.deepEqual(Object.keys(p.status ?? {}).sort(), [
    'conditions',
    'containerStatuses',
    'initContainerStatuses',
    'phase',
  ]);
  assert.deepEqual(
    p.status?.conditions?.map((c) => c.type),
    ['PodScheduled'],
  );
  assert.deepEqual(Object.keys(p.status?.containerStatuses?.[0] ?? {}).sort(), ['name', 'state']);
});

void test('failure reasons and the scheduling wait read the same from a slimmed pod as from the whole one', () => {
  const cases = [
    whole('Failed'),
    whole('Failed', { reason: 'Evicted', message: 'The node was low on memory.' }),
    whole('Pending', { initContainerStatuses: [] }),
    whole('Running', { initContainerStatuses: [], containerStatuses: [] }),
  ];
  for (const p of cases) {
    const slim = structuredClone(p);
    slimPod(slim);
    assert.deepEqual(podFailure(slim), podFailure(p));
    const runs = [{ id: 'r1', configurationId: 'c', cycle: 0, phase: 'Running' as const, attempt: 1 }];
    assert.equal(waitingForNode([slim], runs), waitingForNode([p], runs));
  }
  const deleting = whole('Succeeded');
  deleting.metadata = { ...deleting.metadata, deletionTimestamp: new Date(1) };
  slimPod(deleting);
  assert.ok(deleting.metadata?.deletionTimestamp !== undefined, 'a terminating pod still shows it');
});
