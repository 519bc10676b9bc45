import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newAggregator } from '../../../aggregator/index.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { experimentCheckpointKey } from '../../../lib/bus/subjects.ts';
import type { CheckpointRecord } from '../../../lib/bus/types.ts';
import { rootLogger } from '../../../lib/log.ts';
import { dataSubject, encodeMessage, messageId } from '../../../api/protocol.ts';
import { fakeMessages } from '../../support/fake-agent.ts';

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A bus whose first checkpoint write fails (a NATS hiccup). */
class FlakyBus extends InProcessBus {
  failures = 1;
  override async putCheckpoint(key: string, record: CheckpointRecord): Promise<void> {
    if (this.failures-- > 0) throw new Error('nats: timeout');
    await super.putCheckpoint(key, record);
  }
}

void test('a failed checkpoint write is retried by the next one, not lost with every later one', async () => {
  const bus = new FlakyBus();
  await bus.ensureLayout();
  const streams = new BusExperimentStreams(
    bus,
    { changed: () => undefined, applied: () => undefined, lag: () => undefined },
    rootLogger,
    3_600_000,
  );
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }] },
  });
  assert.ok(v.ok);
  const ref = { namespace: 'ns', name: 'e', uid: 'uid-flaky' };
  const plan = { planned: v.matrix.runs, seed: [], newAggregator: () => newAggregator(ref.uid, v.matrix, 1, 'strict') };
  const f = (await streams.feed(ref, plan)) as unknown as { dirty: boolean; checkpoint(): Promise<void> };
  const hello = fakeMessages(
    { namespace: ref.namespace, experimentUid: ref.uid, runId: v.matrix.runs[0]!.id, attempt: 0, replica: 0 },
    1,
    1,
  )[0]!;
  await bus.publish(dataSubject(hello, hello.kind), encodeMessage(hello), { msgId: messageId(hello) });
  await until(() => f.dirty);
  const checkpoint = (): Promise<void> => f.checkpoint();
  await assert.rejects(checkpoint(), /nats: timeout/);
  assert.equal(await bus.getCheckpoint(experimentCheckpointKey(ref.namespace, ref.uid)), null);
  await checkpoint();
  assert.notEqual(
    await bus.getCheckpoint(experimentCheckpointKey(ref.namespace, ref.uid)),
    null,
    'the next checkpoint wrote the state',
  );
  await streams.stopAll();
  await bus.close();
});

void test('a message whose body names another run than its subject is dead-lettered, not applied', async () => {
  const { dataSubject, messageId } = await import('../../../api/protocol.ts');
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const seen: string[] = [];
  const events = {
    changed: () => undefined,
    applied: () => undefined,
    lag: () => undefined,
    message: (_r: unknown, m: { runId: string }) => seen.push(m.runId),
  };
  const streams = new BusExperimentStreams(bus, events, rootLogger, 3_600_000);
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }] },
  });
  assert.ok(v.ok);
  const ref = { namespace: 'ns', name: 'e', uid: 'uid-forged' };
  await streams.feed(ref, {
    planned: v.matrix.runs,
    seed: [],
    newAggregator: () => newAggregator(ref.uid, v.matrix, 1, 'strict'),
  });
  const [own, victim] = v.matrix.runs;
  assert.ok(own !== undefined && victim !== undefined);
  // The agent of `own` may publish only on its own subjects; its body claims to be `victim`'s.
  const body = {
    v: 1,
    namespace: 'ns',
    experimentUid: ref.uid,
    runId: victim.id,
    attempt: 0,
    replica: 0,
    seq: 1,
    sentAtMs: Date.now(),
    simulated: true,
    kind: 'aborted',
    phase: 'measuring',
    reason: 'forged',
  };
  const subject = dataSubject(
    { namespace: 'ns', experimentUid: ref.uid, runId: own.id, attempt: 0, replica: 0 },
    'aborted',
  );
  await bus.publish(subject, new TextEncoder().encode(JSON.stringify(body)), { msgId: messageId(body) });
  const genuine = { ...body, runId: own.id };
  await bus.publish(subject, new TextEncoder().encode(JSON.stringify(genuine)), { msgId: messageId(genuine) });
  for (const until = Date.now() + 5000; seen.length < 1 && Date.now() < until;)
    await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seen, [own.id], 'only the message whose body matches its subject is applied');
  assert.equal(bus.deadLettered(), 1);
  await streams.stopAll();
  await bus.close();
});

void test('a batch is applied member by member, and one forged member dead-letters the whole batch', async () => {
  const { BATCH_KIND, batchMessageId, encodeBatch } = await import('../../../api/protocol.ts');
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const seen: Array<[string, number]> = [];
  const events = {
    changed: () => undefined,
    applied: () => undefined,
    lag: () => undefined,
    message: (_r: unknown, m: { runId: string; seq: number }) => seen.push([m.runId, m.seq]),
  };
  const streams = new BusExperimentStreams(bus, events, rootLogger, 3_600_000);
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }] },
  });
  assert.ok(v.ok);
  const ref = { namespace: 'ns', name: 'e', uid: 'uid-batch' };
  const feed = await streams.feed(ref, {
    planned: v.matrix.runs,
    seed: [],
    newAggregator: () => newAggregator(ref.uid, v.matrix, 1, 'strict'),
  });
  const [own, victim] = v.matrix.runs;
  assert.ok(own !== undefined && victim !== undefined);
  const key = { namespace: 'ns', experimentUid: ref.uid, runId: own.id, attempt: 0, replica: 0 };
  const ready = (runId: string, seq: number): Record<string, unknown> => ({
    v: 1,
    ...key,
    runId,
    seq,
    sentAtMs: Date.now(),
    simulated: true,
    kind: 'ready',
  });
  const subject = dataSubject(key, BATCH_KIND);
  const batch = (msgs: Array<Record<string, unknown>>): Uint8Array =>
    encodeBatch(msgs.map((m) => new TextEncoder().encode(JSON.stringify(m))));
  // The agent of `own` slips a message claiming to be `victim`'s into the middle of a batch.
  const forged = [ready(own.id, 1), ready(victim.id, 2), ready(own.id, 3)];
  await bus.publish(subject, batch(forged), { msgId: `${ref.uid}/${victim.id}/0/0/1-3` });
  const genuine = [ready(own.id, 1), ready(own.id, 2), ready(own.id, 3)];
  await bus.publish(subject, batch(genuine), {
    msgId: batchMessageId(genuine[0] as Parameters<typeof batchMessageId>[0], 3),
  });
  await until(() => seen.length >= 3);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    seen,
    [
      [own.id, 1],
      [own.id, 2],
      [own.id, 3],
    ],
    'only the genuine batch is applied, every member of it',
  );
  assert.equal(bus.deadLettered(), 1);
  assert.equal(feed.judge.verdict(own.id)?.readyReplicas, 1, 'the batch reached the Aggregator');
  await streams.stopAll();
  await bus.close();
});
