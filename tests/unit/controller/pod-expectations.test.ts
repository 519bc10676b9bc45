// A run's pod that the pod cache does not show is judged lost only once the cache has caught up with
// the pod's create (ADR 0028), through the whole reconciler: the 20,000-run bench lost 222 runs as
// PodLost with a fixed expectation timeout while a loaded API server and watch lagged. The pod cache
// here is a fake that lags on purpose and reports its resourceVersion as the informer does.
import { test } from 'node:test';
import { PodExpectations } from '../../../controller/expectations.ts';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { controllerUnderTest, experimentWith, RecordingWriter, statusOf, Store } from './fakes.ts';
import type { ExperimentObject } from '../../../controller/kube.ts';

/** A pod cache that shows nothing newer than `rv` (the last event its watch delivered). */
class LaggingPods extends Store<V1Pod> {
  rv = 10;
  resourceVersion(): string {
    return String(this.rv);
  }
}

/** Creates go to the API server (`server`), not into the cache; each gets the next resourceVersion. */
class ServerWriter extends RecordingWriter {
  readonly server = new Map<string, { pod: V1Pod; rv: number }>();
  private nextRv = 100;
  override createPod(pod: V1Pod): Promise<string> {
    this.created.push(pod.metadata?.name ?? '');
    const rv = ++this.nextRv;
    this.server.set(pod.metadata?.name ?? '', { pod: { ...pod, status: { phase: 'Running' } }, rv });
    return Promise.resolve(String(rv));
  }
}

const SPEC = {
  model: { name: 'm', source: { random: {} } },
  backends: [{ type: 'pytorch' }],
  measurement: { cycles: 1 },
  policy: { retries: 0, runTimeoutSeconds: 86_400 },
};

async function harness(): Promise<{
  h: Awaited<ReturnType<typeof controllerUnderTest>>;
  pods: LaggingPods;
  writer: ServerWriter;
  clock: { ms: number };
  experiments: Store<ExperimentObject>;
}> {
  const clock = { ms: Date.parse('2026-01-01T00:00:00Z') };
  const pods = new LaggingPods();
  const experiments = new Store<ExperimentObject>();
  const writer = new ServerWriter(experiments, pods);
  const h = await controllerUnderTest({ experiments, pods, writer, now: () => new Date(clock.ms) });
  experiments.put(experimentWith(SPEC));
  return { h, pods, writer, clock, experiments };
}

async function settled(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
}

void test('a pod created but not yet in the lagging pod cache keeps its run Running, however long the lag', async () => {
  const { h, pods, writer, clock, experiments } = await harness();
  try {
    await h.reconciler.reconcile('ns/e1');
    await h.reconciler.reconcile('ns/e1');
    await settled();
    assert.equal(writer.server.size, 1, 'the run pod was created at the API server');
    // Ten minutes later (twice client-go's expectation timeout) the cache still has not shown it.
    clock.ms += 10 * 60_000;
    await h.reconciler.reconcile('ns/e1');
    await settled();
    const run = statusOf(experiments).runs[0];
    assert.equal(run?.phase, 'Running', `not judged lost while the cache lags: ${run?.message ?? ''}`);
    assert.equal(writer.created.length, 1, 'and not created again');
    // The watch catches up and delivers the pod: the run goes on with it.
    const [name, entry] = [...writer.server][0] ?? [];
    pods.put(entry?.pod as V1Pod);
    pods.rv = entry?.rv ?? 0;
    await h.reconciler.reconcile('ns/e1');
    assert.equal(statusOf(experiments).runs[0]?.phase, 'Running', `${name ?? ''} is there`);
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('a pod deleted before the cache showed it is judged lost as soon as the cache has passed its create', async () => {
  const { h, pods, writer, clock, experiments } = await harness();
  try {
    await h.reconciler.reconcile('ns/e1');
    await h.reconciler.reconcile('ns/e1');
    await settled();
    const [, entry] = [...writer.server][0] ?? [];
    // Someone deleted it: the watch delivers its ADDED and DELETED events, the cache moves past both.
    pods.rv = (entry?.rv ?? 0) + 1;
    clock.ms += 1000;
    await h.reconciler.reconcile('ns/e1');
    await settled();
    clock.ms += 1000;
    await h.reconciler.reconcile('ns/e1');
    const run = statusOf(experiments).runs[0];
    assert.equal(run?.phase, 'Failed', 'judged at once, without waiting for a timeout');
    assert.match(run?.message ?? '', /PodLost/);
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('a released experiment drops the expectations of pods that came and went between two passes', () => {
  // Fast runs: created, finished and deleted before any pass saw them in the cache, so `observed`
  // never ended their expectations; before, they stayed for the process's life (2,824 after 5,000 runs).
  const e = new PodExpectations(() => 0);
  for (let i = 0; i < 1000; i++) e.expect(`big-p${i}`, 'uid-big');
  e.expect('small-p0', 'uid-small');
  e.created('big-p0', '41');
  e.forgetExperiment('uid-big');
  assert.equal(e.size, 1, 'only the other experiment is still expected');
  assert.equal(e.pending('small-p0', undefined), true);
});
