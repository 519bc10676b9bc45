// The agent's pipelined Publisher against a real nats-server (issue #16 item 7): many publishes
// await their acks at once, yet every (publisher, seq) is applied exactly once, a publish that fails
// mid-batch leaves a gap the consumer can see (never a duplicate), and acks lost while the broker
// stalls are retried with the same Nats-Msg-Id and stored once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { decodeMessages, experimentSubjectFilter, type PublisherKey } from '../../../api/protocol.ts';
import { Publisher } from '../../../agent/publisher.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import type { Bus, Consumption } from '../../../lib/bus/types.ts';
import { BusError } from '../../../lib/errors.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { until } from './fold.ts';

const NS = 'pipe';

/** What the consumer saw: per run, every seq in stream order (duplicates kept, to be counted). */
class Seen {
  readonly byRun = new Map<string, number[]>();
  total = 0;
  /** Bus messages that held more than one wire message (ADR 0021). */
  batches = 0;
  readonly handler = async (m: { data: Uint8Array }): Promise<'ack' | 'dead-letter'> => {
    const d = decodeMessages(m.data);
    if (!d.ok) return 'dead-letter';
    if (d.messages.length > 1) this.batches++;
    for (const message of d.messages) {
      const list = this.byRun.get(message.runId) ?? [];
      list.push(message.seq);
      this.byRun.set(message.runId, list);
      this.total++;
    }
    return 'ack';
  };
}

function key(uid: string, i: number): PublisherKey {
  return { namespace: NS, experimentUid: uid, runId: `run-${i}`, attempt: 0, replica: 0 };
}

async function watch(bus: NatsBus, uid: string, seen: Seen): Promise<Consumption> {
  return await bus.consume({
    durable: `c-${uid}`,
    filterSubject: experimentSubjectFilter(NS, uid),
    afterStreamSeq: 0,
    handler: seen.handler,
  });
}

void describe('pipelined agent publisher over NATS', () => {
  let server: NatsServerHandle;
  let consumerBus: NatsBus;
  void before(async () => {
    server = await startNatsServer();
    consumerBus = await openNatsBus({ servers: server.url });
    await consumerBus.ensureLayout();
  });
  void after(async () => {
    await consumerBus.close();
    await server.cleanup();
  });

  void it('stores every message of 5 pipelined publishers exactly once and in seq order per publisher', async () => {
    const uid = 'order';
    const seen = new Seen();
    const c = await watch(consumerBus, uid, seen);
    const bus = await openNatsBus({ servers: server.url });
    try {
      await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          const p = new Publisher(bus, key(uid, i), true, 64);
          for (let n = 0; n < 999; n++) void p.publish('telemetry', { phase: 'measuring', samples: [] });
          await p.publish('aborted', { phase: 'measuring', reason: 'end of test' });
          await p.drain();
        }),
      );
      await until(() => seen.total >= 5000, 60_000, '5,000 messages');
      await c.idle();
      for (let i = 0; i < 5; i++) {
        // One connection stores publishes in the order they were handed over: no retry happened here.
        assert.deepEqual(
          seen.byRun.get(`run-${i}`),
          Array.from({ length: 1000 }, (_, n) => n + 1),
          `run-${i}`,
        );
      }
      assert.equal(seen.total, 5000);
      assert.ok(seen.batches > 0, 'messages queued behind unacknowledged ones left as batches');
    } finally {
      await c.stop();
      await bus.close();
    }
  });

  void it('a publish that fails mid-batch leaves a visible gap: nothing stored twice, nothing after the failure sent', async () => {
    const uid = 'fail';
    const seen = new Seen();
    const c = await watch(consumerBus, uid, seen);
    const real = await openNatsBus({ servers: server.url });
    let calls = 0;
    // The 50th hand-over fails as a refused publish would; the real bus stores all the others.
    const failing = {
      publish: (subject: string, data: Uint8Array, o: { msgId: string }) => {
        if (++calls === 50) return Promise.reject(new BusError('publish refused (injected)'));
        return real.publish(subject, data, o);
      },
    } as unknown as Bus;
    try {
      // One wire message per hand-over (no batches), so the 50th hand-over is message 50.
      const p = new Publisher(failing, key(uid, 0), true, 16, 1);
      const results = Array.from({ length: 200 }, () =>
        p.publish('telemetry', { phase: 'measuring', samples: [] }).then(
          () => 'ok',
          () => 'failed',
        ),
      );
      await assert.rejects(p.drain(), /injected/);
      const outcome = await Promise.all(results);
      assert.equal(outcome[49], 'failed');
      const okSeqs = outcome.flatMap((o, i) => (o === 'ok' ? [i + 1] : []));
      assert.ok(okSeqs.length >= 49 && okSeqs.length < 199, `${okSeqs.length} stored`);
      await until(() => seen.total >= okSeqs.length, 30_000, 'the stored messages');
      await c.idle();
      const got = seen.byRun.get('run-0') ?? [];
      assert.deepEqual(got, okSeqs, 'exactly the acknowledged messages, each once, in order');
      assert.ok(!got.includes(50), 'the failed message is a gap the aggregator reports');
      assert.ok(
        Math.max(...got) < 50 + 16,
        'nothing is handed over after the failure beyond what was already in flight',
      );
    } finally {
      await c.stop();
      await real.close();
    }
  });

  void it('acks lost while the broker stalls are retried with the same msgId and stored once', async () => {
    const uid = 'stall';
    const seen = new Seen();
    const c = await watch(consumerBus, uid, seen);
    const bus = await openNatsBus({ servers: server.url, publishTimeoutMs: 300, reconnectWaitMs: 100 });
    const pid = server.pid();
    assert.ok(pid !== null);
    try {
      const p = new Publisher(bus, key(uid, 0), true, 64);
      for (let n = 0; n < 300; n++)
        void p.publish('telemetry', { phase: 'measuring', samples: [] }).catch(() => undefined);
      // Stop the broker mid-batch for longer than the publish timeout: acks in flight are lost.
      process.kill(pid, 'SIGSTOP');
      await new Promise((r) => setTimeout(r, 800));
      process.kill(pid, 'SIGCONT');
      for (let n = 300; n < 600; n++)
        void p.publish('telemetry', { phase: 'measuring', samples: [] }).catch(() => undefined);
      await p.drain();
      await until(() => seen.total >= 600, 60_000, '600 messages');
      await c.idle();
      const got = [...(seen.byRun.get('run-0') ?? [])].sort((a, b) => a - b);
      assert.deepEqual(
        got,
        Array.from({ length: 600 }, (_, n) => n + 1),
        'every seq exactly once',
      );
      assert.ok(seen.batches > 0, 'batches were retried as they were first sent, and stored once');
    } finally {
      process.kill(pid, 'SIGCONT');
      await c.stop();
      await bus.close();
    }
  });

  void it('cumulative acks cover every delivery soon after it is applied, and nothing is redelivered', async () => {
    const uid = 'acks';
    const seen = new Seen();
    const c = await watch(consumerBus, uid, seen);
    const bus = await openNatsBus({ servers: server.url });
    try {
      // One wire message per bus message, so deliveries count messages.
      const p = new Publisher(bus, key(uid, 0), true, 64, 1);
      for (let n = 0; n < 499; n++) void p.publish('telemetry', { phase: 'measuring', samples: [] });
      await p.publish('aborted', { phase: 'measuring', reason: 'end' });
      await until(() => seen.total >= 500, 30_000, '500 messages');
      // Well inside the 30 s ack wait: an ack held back (500 is not a multiple of the ack batch) shows here.
      await new Promise((r) => setTimeout(r, 500));
      const info = await (await jetstreamManager(consumerBus.connection)).consumers.info('LLEM', `c-${uid}`);
      assert.equal(info.num_ack_pending, 0, 'every delivery acknowledged');
      assert.equal(info.num_redelivered, 0);
      assert.equal(info.delivered.consumer_seq, 500, 'each message delivered once');
      assert.deepEqual(
        seen.byRun.get('run-0'),
        Array.from({ length: 500 }, (_, n) => n + 1),
      );
    } finally {
      await c.stop();
      await bus.close();
    }
  });
});
