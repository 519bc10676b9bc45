// Issue #16 in the small: more runs than status can hold, one judge, render failures, Aggregator
// failures and feed release, through the whole reconciler (fakes for Kubernetes, the in-process bus).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Aggregator } from '../../../aggregator/index.ts';
import { EnergyExperimentStatusSchema, MAX_STATUS_RUNS } from '../../../api/status.ts';
import { InvalidInputError } from '../../../lib/errors.ts';
import { experimentCheckpointKey } from '../../../lib/bus/subjects.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import { Reconciler } from '../../../controller/reconciler.ts';
import { controllerUnderTest, experimentWith, settle, statusOf } from './fakes.ts';

function spec(points: number, cycles: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { name: 'm', source: { random: {} } },
    backends: [{ type: 'pytorch' }],
    sweep: { axes: { 'pytorch.maxBatchSize': Array.from({ length: points }, (_, i) => i + 1) } },
    measurement: { cycles, minWindowSeconds: 5 },
    placement: { parallelism: 50 },
    policy: { retries: 1 },
    ...extra,
  };
}

type Harness = Awaited<ReturnType<typeof controllerUnderTest>>;

/** Reconcile, run the new pods, repeat until the experiment finishes (or give up). */
async function drive(
  h: Harness,
  rounds: number,
  opts: { oomFirstAttempt?: boolean } = {},
): Promise<string | undefined> {
  for (let i = 0; i < rounds; i++) {
    await h.reconciler.reconcile('ns/e1');
    const phase = statusOf(h.experiments).phase;
    if (phase === 'Succeeded' || phase === 'Failed') return phase;
    await h.runPods(opts);
    await settle(60);
  }
  return statusOf(h.experiments).phase;
}

void test('with more runs than status holds, no run is created again for an attempt it already finished', async () => {
  // Every first attempt is OOM-killed and retried: a run that drops out of status.runs must not come
  // back as attempt 0 (the old failure: new pods, its data taken for duplicates, an endless loop).
  const h = await controllerUnderTest({ retryBaseMs: 1 });
  h.experiments.put(experimentWith(spec(25, 10)));
  try {
    assert.equal(await drive(h, 60, { oomFirstAttempt: true }), 'Succeeded');
    const status = EnergyExperimentStatusSchema.parse(h.experiments.get('ns', 'e1')?.status);
    assert.equal(status.progress?.summary, '250/250');
    assert.ok(status.runs.length <= MAX_STATUS_RUNS, `status keeps at most ${MAX_STATUS_RUNS} runs`);
    assert.equal(
      new Set(h.writer.created).size,
      h.writer.created.length,
      'no pod name (run, attempt, replica) is ever created twice',
    );
    assert.equal(h.writer.created.length, 500, 'attempt 0 and attempt 1 of each run, nothing more');
    assert.equal(
      status.configurations.reduce((n, c) => n + c.cyclesSucceeded, 0),
      250,
    );
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('a finished experiment releases its feed and later reconciles neither reload it nor write', async () => {
  const h = await controllerUnderTest();
  h.experiments.put(experimentWith(spec(2, 1)));
  try {
    assert.equal(await drive(h, 10), 'Succeeded');
    assert.equal(h.streams.active(), 0, 'consumer, Aggregator and run table are out of memory');
    const writes = h.writer.writes.length;
    await h.reconciler.reconcile('ns/e1');
    assert.equal(h.streams.active(), 0);
    assert.equal(h.writer.writes.length, writes);
    assert.ok(
      EnergyExperimentStatusSchema.parse(h.experiments.get('ns', 'e1')?.status).artifact,
      'results stay readable from the artifact',
    );
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('pytorch with gpusPerRun 2 and tensorParallelSize 1 is refused as an invalid spec naming the field, and no pod is built', async () => {
  const h = await controllerUnderTest();
  h.experiments.put(experimentWith(spec(1, 1, { placement: { gpusPerRun: 2 } })));
  try {
    assert.deepEqual(await h.reconciler.reconcile('ns/e1'), {});
    const status = EnergyExperimentStatusSchema.parse(h.experiments.get('ns', 'e1')?.status);
    assert.equal(status.phase, 'Invalid');
    assert.match(
      status.conditions.find((c) => c.type === 'Validated')?.message ?? '',
      /spec\.placement\.gpusPerRun: the pytorch backend serves from exactly pytorch\.tensorParallelSize GPUs/,
    );
    assert.equal(h.pods.list().length, 0);
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('a pod the renderer refuses sets Failed with reason InvalidSpec naming the field, and is not retried', async () => {
  const renderPod = (): never => {
    throw new InvalidInputError([{ file: '', path: 'spec.placement.gpusPerRun', message: 'this renderer refuses it' }]);
  };
  const h = await controllerUnderTest({ renderPod });
  h.experiments.put(experimentWith(spec(1, 1)));
  try {
    assert.deepEqual(await h.reconciler.reconcile('ns/e1'), {}, 'no error (no rate-limited retry), no requeue');
    const status = EnergyExperimentStatusSchema.parse(h.experiments.get('ns', 'e1')?.status);
    const failed = status.conditions.find((c) => c.type === 'Failed');
    assert.equal(failed?.status, 'True');
    assert.equal(failed?.reason, 'InvalidSpec');
    assert.match(failed?.message ?? '', /spec\.placement\.gpusPerRun: this renderer refuses it/);
    assert.equal(h.pods.list().length, 0);
    assert.ok(h.writer.events.some((e) => e.reason === 'InvalidSpec' && e.type === 'Warning'));
    const writes = h.writer.writes.length;
    await h.reconciler.reconcile('ns/e1');
    assert.equal(h.writer.writes.length, writes, 'the same spec fails the same way: nothing more is written');
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('an Aggregator failure sets Degraded AggregatorFailed with an Event, and the run it failed on is re-measured', async () => {
  // The feed hands every bus message (one wire message or a batch, ADR 0021) to applyBatch.
  const original = Aggregator.prototype.applyBatch;
  let thrown = false;
  Aggregator.prototype.applyBatch = function (this: Aggregator, msgs, seq) {
    if (!thrown && msgs.some((m) => m.kind === 'summary')) {
      thrown = true;
      throw new Error('simulated aggregator bug');
    }
    return original.call(this, msgs, seq);
  };
  const h = await controllerUnderTest({ retryBaseMs: 1 });
  h.experiments.put(experimentWith(spec(2, 1)));
  try {
    const phase = await drive(h, 20);
    const status = EnergyExperimentStatusSchema.parse(h.experiments.get('ns', 'e1')?.status);
    const degraded = status.conditions.find((c) => c.type === 'Degraded');
    assert.equal(degraded?.status, 'True');
    assert.equal(degraded?.reason, 'AggregatorFailed');
    assert.match(degraded?.message ?? '', /simulated aggregator bug/);
    assert.ok(h.writer.events.some((e) => e.type === 'Warning' && e.reason === 'AggregatorFailed'));
    assert.equal(phase, 'Succeeded', 'the tainted attempt was retried and its replacement judged complete');
    assert.equal(
      h.writer.created.filter((n) => n.includes('-a1-')).length,
      1,
      'exactly the run it failed on ran again',
    );
    assert.ok(
      status.configurations.every((c) => Object.keys(c.metrics).length > 0),
      'metrics come from the Aggregator, never rough totals',
    );
  } finally {
    Aggregator.prototype.applyBatch = original;
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('an unreadable Aggregator checkpoint sets Degraded and the Aggregator is rebuilt from the whole stream', async () => {
  const h = await controllerUnderTest();
  h.experiments.put(experimentWith(spec(2, 1)));
  try {
    await h.reconciler.reconcile('ns/e1');
    await h.runPods();
    await settle(100);
    // A controller restart that finds a corrupt checkpoint: a fresh reconciler and fresh feeds.
    await h.streams.stopAll();
    await h.bus.putCheckpoint(experimentCheckpointKey('ns', 'uid-1'), {
      state: new TextEncoder().encode('{"aggregator":"not json'),
      lastStreamSeq: 9,
    });
    const streams = new BusExperimentStreams(
      h.bus,
      { changed: () => undefined, applied: () => undefined, lag: () => undefined },
      h.log,
      50,
    );
    const reconciler = new Reconciler({
      experiments: h.experiments,
      pods: h.pods,
      writer: h.writer,
      streams,
      log: h.log,
      podOptions: { agentImage: 'a', backendImages: {}, agentEnv: [], simulate: true },
    });
    let phase: string | undefined;
    for (let i = 0; i < 20 && phase !== 'Succeeded' && phase !== 'Failed'; i++) {
      await reconciler.reconcile('ns/e1');
      phase = statusOf(h.experiments).phase;
      await settle(60);
    }
    const status = EnergyExperimentStatusSchema.parse(h.experiments.get('ns', 'e1')?.status);
    assert.equal(status.phase, 'Succeeded', 'the stream still holds every message: nothing is lost');
    assert.equal(status.conditions.find((c) => c.type === 'Degraded')?.reason, 'AggregatorFailed');
    assert.match(status.conditions.find((c) => c.type === 'Degraded')?.message ?? '', /checkpoint could not be read/);
    assert.ok(
      h.writer.created.every((n) => n.includes('-a0-')),
      'no run was measured again',
    );
    await streams.stopAll();
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('a released 1,000-run experiment leaves no per-experiment state behind, and its memory is reclaimed once its pods are gone', async () => {
  const released: number[] = [];
  const h = await controllerUnderTest({ released: (runs) => released.push(runs) });
  h.experiments.put(experimentWith(spec(50, 20, { placement: { parallelism: 200 } })));
  try {
    assert.equal(await drive(h, 400), 'Succeeded');
    // The feed's release settles in the background; later passes (pod events) see the pods gone.
    await settle(50);
    await h.reconciler.reconcile('ns/e1');
    assert.equal(h.streams.active(), 0, 'consumer, Aggregator and run table are out of memory');
    assert.equal(h.pods.list().length, 0, 'every finished pod was deleted');
    const left = Object.entries(h.reconciler.retained()).filter(([, n]) => n !== 0);
    assert.deepEqual(
      left,
      [],
      'validation, pass inputs, expectations, signals, spans, writes, event budgets: all gone',
    );
    assert.deepEqual(released, [1000, 1000], 'reclaimed after the release and again once its pods were gone');
    await h.reconciler.reconcile('ns/e1');
    assert.deepEqual(released, [1000, 1000], 'once');
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});
