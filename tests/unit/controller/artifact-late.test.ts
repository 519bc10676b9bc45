// An experiment whose last run fails without sending anything new (a backend OOM-killed before its first
// message) and whose artifact takes longer than a pass waits for it: the pass that finds the artifact
// written must still write the final status. It did not: that pass looked the same as the last one that
// wrote (same run table, same cached results) and was skipped, so the experiment stayed Running forever
// (the real node's OOM fault timed out this way under load), and its Events must not be lost either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { controllerUnderTest, experimentWith, settle, statusOf } from './fakes.ts';

function oomKilled(p: V1Pod): V1Pod {
  const terminated = { exitCode: 137, reason: 'OOMKilled' };
  return {
    ...p,
    status: {
      phase: 'Failed',
      containerStatuses: [
        { name: 'backend', ready: false, restartCount: 0, image: '', imageID: '', state: { terminated } },
      ],
    },
  };
}

void test('a finished experiment whose artifact is written after the pass that finished it still gets its final status', async () => {
  const requeued: string[] = [];
  const h = await controllerUnderTest({ requeue: (key) => requeued.push(key) });
  const put = h.streams.putArtifact.bind(h.streams);
  // Slower than a pass waits for it (a loaded machine, a busy NATS).
  h.streams.putArtifact = async (...args: Parameters<typeof put>): Promise<string> => {
    await settle(300);
    return put(...args);
  };
  h.experiments.put(
    experimentWith({
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      measurement: { cycles: 1 },
      policy: { retries: 0 },
    }),
  );
  await h.reconciler.reconcile('ns/e1');
  await settle();
  assert.equal(statusOf(h.experiments).phase, 'Running');
  const [pod] = h.pods.list();
  assert.ok(pod !== undefined);
  h.pods.put(oomKilled(pod));
  await h.reconciler.reconcile('ns/e1');
  await settle();
  assert.equal(statusOf(h.experiments).phase, 'Running', 'the artifact is not written yet: status waits for it');
  await settle(600);
  assert.ok(requeued.includes('ns/e1'), 'the written artifact queues the experiment again');
  await h.reconciler.reconcile('ns/e1');
  await settle();
  const status = statusOf(h.experiments);
  assert.equal(status.phase, 'Failed', JSON.stringify(status.conditions));
  assert.match(status.artifact?.uri ?? '', /^nats-obj:\/\/llem-artifacts\//);
  // The Events of the pass that finished it are recorded with the status that shows it, not dropped.
  const reasons = h.writer.events.map((e) => `${e.reason}: ${e.message}`);
  assert.ok(
    reasons.some((r) => /^RunFailed: .*OOMKilled/.test(r)),
    `no RunFailed event naming the OOM: ${JSON.stringify(reasons)}`,
  );
  assert.ok(
    reasons.some((r) => r.startsWith('ExperimentFailed')),
    JSON.stringify(reasons),
  );
  await h.streams.stopAll();
  await h.bus.close();
});
