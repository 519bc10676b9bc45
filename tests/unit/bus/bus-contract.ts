// The Bus contract: one suite, run against the in-process bus (unit) and the NATS bus (integration).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dataSubject, experimentSubjectFilter, startSubject, type PublisherKey } from '../../../api/protocol.ts';
import { experimentCheckpointKey } from '../../../lib/bus/subjects.ts';
import type { Bus, DeliveredMessage, Disposition } from '../../../lib/bus/types.ts';

export interface BusFixture {
  bus: Bus;
  /** A second bus on the same backing store (another process's view); may be the same object. */
  peer(): Promise<Bus>;
  close(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
let uniq = 0;

function experiment(): { ns: string; uid: string; key: PublisherKey; durable: string } {
  uniq++;
  const uid = `uid-${process.pid}-${uniq}`;
  return {
    ns: 'team-a',
    uid,
    key: { namespace: 'team-a', experimentUid: uid, runId: 'r1', attempt: 0, replica: 0 },
    durable: `agg-${uid}`,
  };
}

async function publishN(bus: Bus, key: PublisherKey, n: number, from = 1): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = from; i < from + n; i++) {
    const ack = await bus.publish(dataSubject(key, 'sketch'), enc.encode(`m${i}`), {
      msgId: `${key.experimentUid}/${i}`,
    });
    seqs.push(ack.streamSeq);
  }
  return seqs;
}

type Handler = (m: DeliveredMessage) => Promise<Disposition>;

async function collect(
  bus: Bus,
  filter: string,
  durable: string,
  afterStreamSeq = 0,
  handler?: Handler,
): Promise<DeliveredMessage[]> {
  const got: DeliveredMessage[] = [];
  const c = await bus.consume({
    durable,
    filterSubject: filter,
    afterStreamSeq,
    handler:
      handler ??
      (async (m) => {
        got.push(m);
        return 'ack';
      }),
  });
  await c.idle();
  await c.stop();
  return got;
}

export function busContract(name: string, open: () => Promise<BusFixture>): void {
  void describe(`Bus contract: ${name}`, () => {
    let fx: BusFixture;
    const setup = async (): Promise<Bus> => {
      fx = await open();
      await fx.bus.ensureLayout();
      return fx.bus;
    };
    const teardown = async (): Promise<void> => fx.close();

    void it('creates its layout idempotently', async () => {
      const bus = await setup();
      try {
        await bus.ensureLayout();
        await bus.ensureLayout();
      } finally {
        await teardown();
      }
    });

    void it('assigns increasing stream sequences and de-duplicates a repeated msgId', async () => {
      const bus = await setup();
      try {
        const { key } = experiment();
        const subject = dataSubject(key, 'hello');
        const a = await bus.publish(subject, enc.encode('a'), { msgId: `${key.experimentUid}/1` });
        const b = await bus.publish(subject, enc.encode('b'), { msgId: `${key.experimentUid}/2` });
        const again = await bus.publish(subject, enc.encode('a'), { msgId: `${key.experimentUid}/1` });
        assert.ok(b.streamSeq > a.streamSeq);
        assert.equal(a.duplicate, false);
        assert.deepEqual(again, { streamSeq: a.streamSeq, duplicate: true });
      } finally {
        await teardown();
      }
    });

    void it('rejects publishing outside llem.v1 or with wildcards', async () => {
      const bus = await setup();
      try {
        await assert.rejects(bus.publish('other.subject', enc.encode('x'), { msgId: 'x1' }), { name: 'BusError' });
        await assert.rejects(bus.publish('llem.v1.a.*.c', enc.encode('x'), { msgId: 'x2' }), { name: 'BusError' });
        await assert.rejects(bus.publish('llem.control.v1.a.b.c.start', enc.encode('x'), { msgId: 'x3' }), {
          name: 'BusError',
        });
      } finally {
        await teardown();
      }
    });

    void it('delivers only the filtered experiment, in stream order, once each', async () => {
      const bus = await setup();
      try {
        const mine = experiment();
        const other = experiment();
        const seqs = await publishN(bus, mine.key, 5);
        await publishN(bus, other.key, 3);
        await publishN(bus, mine.key, 2, 6);
        const got = await collect(bus, experimentSubjectFilter(mine.ns, mine.uid), mine.durable);
        assert.deepEqual(
          got.map((m) => dec.decode(m.data)),
          ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'],
        );
        assert.deepEqual(
          got.slice(0, 5).map((m) => m.streamSeq),
          seqs,
        );
        assert.ok(got.every((m) => m.deliveryCount === 1));
      } finally {
        await teardown();
      }
    });

    void it('resumes after the checkpointed stream sequence without re-delivering', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const seqs = await publishN(bus, e.key, 6);
        const filter = experimentSubjectFilter(e.ns, e.uid);
        const first = await collect(bus, filter, e.durable);
        assert.equal(first.length, 6);
        const resumed = await collect(bus, filter, e.durable, seqs[3]);
        assert.deepEqual(
          resumed.map((m) => dec.decode(m.data)),
          ['m5', 'm6'],
        );
      } finally {
        await teardown();
      }
    });

    void it('delivers messages published while consuming', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const got: string[] = [];
        const c = await bus.consume({
          durable: e.durable,
          filterSubject: experimentSubjectFilter(e.ns, e.uid),
          afterStreamSeq: 0,
          handler: async (m) => {
            got.push(dec.decode(m.data));
            return 'ack';
          },
        });
        await publishN(bus, e.key, 4);
        await waitFor(() => got.length === 4);
        await c.idle();
        await c.stop();
        assert.deepEqual(got, ['m1', 'm2', 'm3', 'm4']);
      } finally {
        await teardown();
      }
    });

    void it('redelivers a message whose handler threw before delivering the next one', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        await publishN(bus, e.key, 3);
        const seen: string[] = [];
        let failures = 0;
        const got = await collect(bus, experimentSubjectFilter(e.ns, e.uid), e.durable, 0, async (m) => {
          const body = dec.decode(m.data);
          seen.push(`${body}#${m.deliveryCount}`);
          if (body === 'm2' && failures < 2) {
            failures++;
            throw new Error('not applied');
          }
          return 'ack';
        });
        assert.equal(got.length, 0);
        assert.deepEqual(seen, ['m1#1', 'm2#1', 'm2#2', 'm2#3', 'm3#1']);
      } finally {
        await teardown();
      }
    });

    void it('moves a dead-lettered message aside, counts it, and keeps going', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        await publishN(bus, e.key, 4);
        const before = bus.deadLettered();
        const applied: string[] = [];
        await collect(bus, experimentSubjectFilter(e.ns, e.uid), e.durable, 0, async (m) => {
          const body = dec.decode(m.data);
          if (body === 'm2' || body === 'm3') return 'dead-letter';
          applied.push(body);
          return 'ack';
        });
        assert.deepEqual(applied, ['m1', 'm4']);
        assert.equal(bus.deadLettered() - before, 2);
        const again = await collect(bus, experimentSubjectFilter(e.ns, e.uid), e.durable, 0);
        assert.equal(again.length, 4, 'dead-lettering does not delete the original from the stream');
      } finally {
        await teardown();
      }
    });

    void it('waits for the in-flight handler when stopped', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        await publishN(bus, e.key, 1);
        let entered!: () => void;
        const inHandler = new Promise<void>((r) => (entered = r));
        let finished = false;
        const c = await bus.consume({
          durable: e.durable,
          filterSubject: experimentSubjectFilter(e.ns, e.uid),
          afterStreamSeq: 0,
          handler: async () => {
            entered();
            await new Promise((r) => setTimeout(r, 100));
            finished = true;
            return 'ack';
          },
        });
        await inHandler;
        await c.stop();
        assert.equal(finished, true);
      } finally {
        await teardown();
      }
    });

    void it('stores, overwrites and returns checkpoints, and null for a missing one', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const key = experimentCheckpointKey(e.ns, e.uid);
        assert.equal(await bus.getCheckpoint(key), null);
        await bus.putCheckpoint(key, { state: enc.encode('one'), lastStreamSeq: 7 });
        await bus.putCheckpoint(key, { state: enc.encode('two'), lastStreamSeq: 9 });
        const peer = await fx.peer();
        const got = await peer.getCheckpoint(key);
        assert.equal(got?.lastStreamSeq, 9);
        assert.equal(dec.decode(got?.state), 'two');
        await assert.rejects(bus.putCheckpoint('bad key!', { state: enc.encode(''), lastStreamSeq: 0 }), {
          name: 'BusError',
        });
      } finally {
        await teardown();
      }
    });

    void it('stores a checkpoint larger than one NATS message, replaces it, and deletes it with the experiment', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const key = experimentCheckpointKey(e.ns, e.uid);
        const big = new Uint8Array(3_000_000).map((_, i) => (i * 7) % 253);
        await bus.putCheckpoint(key, { state: big, lastStreamSeq: 11 });
        const peer = await fx.peer();
        assert.deepEqual(await peer.getCheckpoint(key), { state: big, lastStreamSeq: 11 });
        const bigger = new Uint8Array(4_000_000).map((_, i) => (i * 11) % 251);
        await bus.putCheckpoint(key, { state: bigger, lastStreamSeq: 12 });
        assert.deepEqual(await peer.getCheckpoint(key), { state: bigger, lastStreamSeq: 12 });
        await bus.putCheckpoint(key, { state: enc.encode('small again'), lastStreamSeq: 13 });
        const small = await peer.getCheckpoint(key);
        assert.equal(dec.decode(small?.state), 'small again');
        await bus.putCheckpoint(key, { state: big, lastStreamSeq: 14 });
        await bus.deleteExperiment({ namespace: e.ns, experimentUid: e.uid, durable: e.durable, purgeMessages: false });
        assert.equal(await peer.getCheckpoint(key), null);
      } finally {
        await teardown();
      }
    });

    void it('stores artifacts byte for byte, including large ones', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const big = new Uint8Array(1_500_000).map((_, i) => (i * 31) % 251);
        await bus.putArtifact(`${e.uid}/results.json`, big);
        const got = await (await fx.peer()).getArtifact(`${e.uid}/results.json`);
        assert.deepEqual(got, big);
        assert.equal(await bus.getArtifact(`${e.uid}/missing`), null);
      } finally {
        await teardown();
      }
    });

    void it('fans control messages out to subscribers and never stores them in the data stream', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const peer = await fx.peer();
        const got: string[] = [];
        const sub = await peer.subscribeControl(startSubject(e.ns, e.uid, 'r1').replace('.r1.', '.*.'), (d) =>
          got.push(dec.decode(d)),
        );
        await bus.publishControl(startSubject(e.ns, e.uid, 'r1'), enc.encode('go'));
        await waitFor(() => got.length === 1);
        await sub.unsubscribe();
        await bus.publishControl(startSubject(e.ns, e.uid, 'r1'), enc.encode('late'));
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(got, ['go']);
        const stored = await collect(bus, 'llem.v1.>', `all-${e.uid}`);
        assert.ok(stored.every((m) => !m.subject.startsWith('llem.control')));
        await assert.rejects(bus.publishControl('llem.v1.x.y', enc.encode('x')), { name: 'BusError' });
      } finally {
        await teardown();
      }
    });

    void it('deletes an experiment: its checkpoints, its consumer position and, when asked, its messages', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        const other = experiment();
        await publishN(bus, e.key, 3);
        await publishN(bus, other.key, 2);
        const key = experimentCheckpointKey(e.ns, e.uid);
        await bus.putCheckpoint(key, { state: enc.encode('s'), lastStreamSeq: 3 });
        await bus.putCheckpoint(`${key}.run-1`, { state: enc.encode('s'), lastStreamSeq: 3 });
        await bus.putCheckpoint(experimentCheckpointKey(other.ns, other.uid), {
          state: enc.encode('keep'),
          lastStreamSeq: 1,
        });
        await bus.deleteExperiment({ namespace: e.ns, experimentUid: e.uid, durable: e.durable, purgeMessages: true });
        assert.equal(await bus.getCheckpoint(key), null);
        assert.equal(await bus.getCheckpoint(`${key}.run-1`), null);
        assert.notEqual(await bus.getCheckpoint(experimentCheckpointKey(other.ns, other.uid)), null);
        assert.equal((await collect(bus, experimentSubjectFilter(e.ns, e.uid), e.durable)).length, 0);
        assert.equal((await collect(bus, experimentSubjectFilter(other.ns, other.uid), other.durable)).length, 2);
      } finally {
        await teardown();
      }
    });

    void it('keeps the messages of a deleted experiment unless purging is asked for', async () => {
      const bus = await setup();
      try {
        const e = experiment();
        await publishN(bus, e.key, 2);
        await bus.deleteExperiment({ namespace: e.ns, experimentUid: e.uid, durable: e.durable, purgeMessages: false });
        assert.equal((await collect(bus, experimentSubjectFilter(e.ns, e.uid), e.durable)).length, 2);
      } finally {
        await teardown();
      }
    });
  });
}

export async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
