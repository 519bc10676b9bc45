// Delivery guarantees against a real nats-server: exactly-once application under load, across a
// broker crash, across a consumer crash (resume from checkpoint), and with poison messages.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { dataSubject, encodeMessage, experimentSubjectFilter, messageId } from '../../../api/protocol.ts';
import { DEAD_LETTER_HEADERS, openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import { experimentCheckpointKey } from '../../../lib/bus/subjects.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { DeterministicFold, publishAll, publisherKey, until } from './fold.ts';

const NS = 'team-a';
const FOLD_CONSUMER = fileURLToPath(new URL('./fold-consumer.ts', import.meta.url));

async function openBuses(url: string, n: number): Promise<NatsBus[]> {
  return await Promise.all(Array.from({ length: n }, () => openNatsBus({ servers: url, reconnectWaitMs: 100 })));
}

function assertExactlyOnce(fold: DeterministicFold, publishers: number, perPublisher: number): void {
  assert.equal(fold.state.duplicates, 0, 'no message applied twice');
  assert.equal(fold.state.gaps, 0, 'no message skipped');
  assert.equal(fold.state.applied, publishers * perPublisher);
  const lastSeqs = Object.values(fold.state.lastSeq);
  assert.equal(lastSeqs.length, publishers);
  assert.ok(lastSeqs.every((s) => s === perPublisher));
}

void describe('NATS bus delivery', () => {
  let server: NatsServerHandle;
  void before(async () => {
    server = await startNatsServer();
    const admin = await openNatsBus({ servers: server.url });
    await admin.ensureLayout();
    await admin.close();
  });
  void after(async () => {
    await server.cleanup();
  });

  void it('applies every message of 50 publishers x 2,000 exactly once', async () => {
    const uid = 'load';
    // 50 publishers (distinct agents, each with its own seq) over 10 connections: 50 connections
    // measure the machine's syscall rate more than the bus.
    const connections = await openBuses(server.url, 10);
    const consumerBus = await openNatsBus({ servers: server.url });
    const fold = new DeterministicFold();
    const c = await consumerBus.consume({
      durable: 'agg-load',
      filterSubject: experimentSubjectFilter(NS, uid),
      afterStreamSeq: 0,
      handler: fold.handle,
    });
    try {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          publishAll(connections[i % 10] as NatsBus, publisherKey(NS, uid, i), 2000),
        ),
      );
      await until(() => fold.state.applied >= 100_000, 120_000, '100,000 applied messages');
      await c.idle();
      assertExactlyOnce(fold, 50, 2000);
    } finally {
      await c.stop();
      await consumerBus.close();
      await Promise.all(connections.map((b) => b.close()));
    }
  });

  void it('loses and duplicates nothing when nats-server is killed and restarted mid-stream', async () => {
    const uid = 'broker-crash';
    const publishers = await openBuses(server.url, 8);
    const consumerBus = await openNatsBus({ servers: server.url, reconnectWaitMs: 100 });
    const fold = new DeterministicFold();
    const c = await consumerBus.consume({
      durable: 'agg-crash',
      filterSubject: experimentSubjectFilter(NS, uid),
      afterStreamSeq: 0,
      handler: fold.handle,
    });
    let published = 0;
    try {
      const publishing = Promise.all(
        publishers.map((bus, i) => publishAll(bus, publisherKey(NS, uid, i), 1500, () => published++)),
      );
      await until(() => fold.state.applied >= 2000, 60_000, 'the first 2,000 applied messages');
      await server.kill();
      const atCrash = published;
      await new Promise((r) => setTimeout(r, 300));
      await server.restart();
      await publishing;
      assert.ok(atCrash < 8 * 1500, 'the broker died while publishers were still sending');
      await until(() => fold.state.applied >= 8 * 1500, 60_000, 'all messages applied after the restart');
      await c.idle();
      assertExactlyOnce(fold, 8, 1500);
    } finally {
      await c.stop();
      await consumerBus.close();
      await Promise.all(publishers.map((b) => b.close()));
    }
  });

  void it('resumes a killed consumer from its checkpoint with results identical to an uninterrupted run', async () => {
    const uid = 'consumer-crash';
    const filter = experimentSubjectFilter(NS, uid);
    const key = experimentCheckpointKey(NS, uid);
    const [pub] = await openBuses(server.url, 1);
    assert.ok(pub);
    await Promise.all([0, 1, 2, 3].map((i) => publishAll(pub, publisherKey(NS, uid, i), 2000)));

    const child = spawn(
      process.execPath,
      ['--import', 'tsx', FOLD_CONSUMER, server.url, NS, uid, 'agg-cc', key, '700'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, LLEM_LOG_LEVEL: 'error' },
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    for await (const line of createInterface({ input: child.stdout })) {
      if (Number(line.split(' ')[1]) >= 3000) break;
    }
    child.kill('SIGKILL');
    await exited;

    const checkpoint = await pub.getCheckpoint(key);
    assert.ok(checkpoint !== null && checkpoint.lastStreamSeq > 0, 'the killed consumer left a checkpoint');
    const resumed = DeterministicFold.restore(checkpoint.state);
    assert.ok(resumed.state.applied < 8000, 'it was killed mid-stream');
    const c1 = await pub.consume({
      durable: 'agg-cc',
      filterSubject: filter,
      afterStreamSeq: checkpoint.lastStreamSeq,
      handler: resumed.handle,
    });
    await c1.idle();
    await c1.stop();

    const reference = new DeterministicFold();
    const c2 = await pub.consume({
      durable: 'agg-cc-reference',
      filterSubject: filter,
      afterStreamSeq: 0,
      handler: reference.handle,
    });
    await c2.idle();
    await c2.stop();
    await pub.close();

    assertExactlyOnce(reference, 4, 2000);
    assert.deepEqual(resumed.serialize(), reference.serialize());
  });

  void it('moves malformed and wrong-schema messages to dead letters, counts them, and keeps going', async () => {
    const uid = 'poison';
    const bus = await openNatsBus({ servers: server.url });
    const key = publisherKey(NS, uid, 0);
    const subject = dataSubject(key, 'sketch');
    const good = (seq: number): Uint8Array =>
      encodeMessage({ v: 1, ...key, seq, sentAtMs: 0, simulated: true, kind: 'ready' });
    await bus.publish(subject, good(1), { msgId: messageId({ ...key, seq: 1 }) });
    await bus.publish(subject, new Uint8Array([0xff, 0x7b, 0x00]), { msgId: 'garbage-1' });
    await bus.publish(subject, good(2), { msgId: messageId({ ...key, seq: 2 }) });
    await bus.publish(subject, new TextEncoder().encode(JSON.stringify({ v: 2, kind: 'ready', seq: 3 })), {
      msgId: 'wrong-schema-1',
    });
    await bus.publish(subject, good(3), { msgId: messageId({ ...key, seq: 3 }) });

    try {
      const fold = new DeterministicFold();
      const c = await bus.consume({
        durable: 'agg-poison',
        filterSubject: experimentSubjectFilter(NS, uid),
        afterStreamSeq: 0,
        handler: fold.handle,
      });
      await c.idle();
      await c.stop();
      assert.equal(fold.state.applied, 3, 'the good messages around the bad ones were all applied');
      assert.equal(bus.deadLettered(), 2);

      const jsm = await jetstreamManager(bus.connection);
      const dlqSubject = `llem.dlq.v1.${NS}.${uid}.run-0.0.0.sketch`;
      const info = await jsm.streams.info('LLEM_DLQ', { subjects_filter: dlqSubject });
      assert.equal(info.state.subjects?.[dlqSubject], 2);
      const last = await jsm.streams.getMessage('LLEM_DLQ', { last_by_subj: dlqSubject });
      assert.equal(last?.header.get(DEAD_LETTER_HEADERS.subject), subject);
      assert.equal(last?.json<{ v: number }>().v, 2, 'the copy keeps the original bytes');
    } finally {
      await bus.close();
    }
  });
});
