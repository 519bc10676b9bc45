import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessages, type WireMessage } from '../../../api/protocol.ts';
import type { Bus } from '../../../lib/bus/types.ts';
import { BusError } from '../../../lib/errors.ts';
import { DEFAULT_MAX_IN_FLIGHT, Publisher } from '../../../agent/publisher.ts';

const key = { namespace: 'ns', experimentUid: 'uid', runId: 'run', attempt: 1, replica: 0 };

/**
 * A bus that stores and acks the first `reversed` publishes in reverse order of hand-over, once all of
 * them are pending (deterministic: no timer race under load), to prove the publisher serialises;
 * later publishes are acked on the next turn. Publish number `fail` throws.
 */
function slowBus(opts: { fail?: number; reversed?: number } = {}): {
  bus: Bus;
  stored: WireMessage[];
  ids: string[];
} {
  const stored: WireMessage[] = [];
  const ids: string[] = [];
  const held: Array<() => void> = [];
  let n = 0;
  const bus = {
    publish: async (_s: string, data: Uint8Array, o: { msgId: string }) => {
      const i = ++n;
      if (i <= (opts.reversed ?? 0)) {
        await new Promise<void>((r) => {
          held.push(r);
          // Released once this publish awaits too, so every release resumes a waiting publish in turn.
          if (held.length === opts.reversed) queueMicrotask(() => held.reverse().forEach((release) => release()));
        });
      } else {
        await new Promise((r) => setImmediate(r));
      }
      if (i === opts.fail) throw new Error('broker gone');
      const d = decodeMessages(data);
      if (d.ok) stored.push(...d.messages);
      ids.push(o.msgId);
      return { streamSeq: i, duplicate: false };
    },
  } as unknown as Bus;
  return { bus, stored, ids };
}

void test('messages are handed to the bus in seq order with contiguous seq and per-kind counts, acks in any order', async () => {
  const { bus, stored, ids } = slowBus({ reversed: 3 });
  // One wire message per hand-over (batching has its own tests below).
  const p = new Publisher(bus, key, true, DEFAULT_MAX_IN_FLIGHT, 1);
  void p.publish('hello', {
    environment: {
      hostname: 'h',
      gpus: [],
      driverVersion: null,
      nvmlVersion: null,
      cudaVersion: null,
      backend: 'b',
      backendVersion: null,
      configHash: '',
      agentVersion: '0',
      telemetrySource: 'simulated',
    },
  });
  void p.publish('ready', {});
  void p.publish('telemetry', { phase: 'ready', samples: [] });
  await p.publish('aborted', { phase: 'ready', reason: 'x' });
  // The fake acks later publishes first; the aborted marker still lands last (it waits for every ack).
  assert.deepEqual(
    stored.map((m) => m.seq),
    [3, 2, 1, 4],
  );
  assert.deepEqual(
    stored.map((m) => m.kind),
    ['telemetry', 'ready', 'hello', 'aborted'],
  );
  assert.ok(stored.every((m) => m.simulated && m.attempt === 1));
  assert.equal(ids[3], 'uid/run/1/0/4');
  assert.deepEqual(p.counts, { hello: 1, ready: 1, sketch: 0, telemetry: 1 });
  assert.equal(p.sent, 4);
});

/** A bus that records the order of publish calls and the most acks outstanding at once. */
function countingBus(ackAfterMs: number): { bus: Bus; calls: number[]; maxOutstanding: () => number } {
  const calls: number[] = [];
  let outstanding = 0;
  let most = 0;
  const bus = {
    publish: async (_s: string, data: Uint8Array) => {
      const d = decodeMessages(data);
      if (d.ok) calls.push(...d.messages.map((m) => m.seq));
      most = Math.max(most, ++outstanding);
      await new Promise((r) => setTimeout(r, ackAfterMs));
      outstanding--;
      return { streamSeq: calls.length, duplicate: false };
    },
  } as unknown as Bus;
  return { bus, calls, maxOutstanding: () => most };
}

void test('publishes are pipelined up to the in-flight bound, never past it, and the summary goes last', async () => {
  const { bus, calls, maxOutstanding } = countingBus(5);
  const p = new Publisher(bus, key, false, 8);
  for (let i = 0; i < 100; i++) void p.publish('telemetry', { phase: 'measuring', samples: [] });
  await p.publish('aborted', { phase: 'measuring', reason: 'x' });
  await p.drain();
  assert.deepEqual(
    calls,
    Array.from({ length: 101 }, (_, i) => i + 1),
    'handed over in seq order',
  );
  assert.ok(maxOutstanding() > 1, `pipelined (at most ${maxOutstanding()} outstanding)`);
  assert.ok(maxOutstanding() <= 8, `bounded: ${maxOutstanding()} outstanding`);
});

void test('without batching every message is its own publish, pipelined up to the in-flight bound', async () => {
  const { bus, calls, maxOutstanding } = countingBus(5);
  const p = new Publisher(bus, key, false, 8, 1);
  for (let i = 0; i < 40; i++) void p.publish('telemetry', { phase: 'measuring', samples: [] });
  await p.drain();
  assert.deepEqual(
    calls,
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
  assert.equal(maxOutstanding(), 8);
});

/** A bus that records every hand-over (subject, msgId, the seqs it holds) and acks it on the next turn. */
function recordingBus(): { bus: Bus; publishes: Array<{ subject: string; msgId: string; seqs: number[] }> } {
  const publishes: Array<{ subject: string; msgId: string; seqs: number[] }> = [];
  const bus = {
    publish: async (subject: string, data: Uint8Array, o: { msgId: string }) => {
      const d = decodeMessages(data);
      if (!d.ok) throw new Error(d.error);
      publishes.push({ subject, msgId: o.msgId, seqs: d.messages.map((m) => m.seq) });
      await new Promise((r) => setImmediate(r));
      return { streamSeq: publishes.length, duplicate: false };
    },
  } as unknown as Bus;
  return { bus, publishes };
}

void test('messages published in one turn leave as one batch with one msg id, each with its own seq, even with nothing in flight', async () => {
  const { bus, publishes } = recordingBus();
  const p = new Publisher(bus, key, true);
  const all = Array.from({ length: 6 }, () => p.publish('telemetry', { phase: 'measuring', samples: [] }));
  all.push(p.publish('summary', summaryBody(p)));
  await Promise.all(all);
  assert.deepEqual(
    publishes.map((x) => [x.subject.split('.').at(-1), x.msgId, x.seqs]),
    [
      ['batch', 'uid/run/1/0/1-6', [1, 2, 3, 4, 5, 6]],
      ['summary', 'uid/run/1/0/7', [7]],
    ],
    'the burst shares one bus message (ADR 0036: the first no longer leaves alone), the summary goes alone last',
  );
});

void test('messages published while one awaits its ack leave as one batch after it', async () => {
  const { bus, publishes } = recordingBus();
  const p = new Publisher(bus, key, true);
  const first = p.publish('telemetry', { phase: 'measuring', samples: [] });
  await new Promise((r) => setImmediate(r));
  assert.equal(publishes.length, 1, 'a lone message leaves by the end of the turn it was published in');
  const rest = Array.from({ length: 5 }, () => p.publish('telemetry', { phase: 'measuring', samples: [] }));
  await Promise.all([first, ...rest]);
  assert.deepEqual(
    publishes.map((x) => [x.subject.split('.').at(-1), x.msgId, x.seqs]),
    [
      // The default (binary) publisher sends a lone message as a batch of one (ADR 0036, amended).
      ['batch', 'uid/run/1/0/1-1', [1]],
      ['batch', 'uid/run/1/0/2-6', [2, 3, 4, 5, 6]],
    ],
  );
});

void test('a batch holds at most maxBatch messages and the in-flight bound counts bus messages', async () => {
  const { bus, publishes } = recordingBus();
  const p = new Publisher(bus, key, true, 2, 4);
  for (let i = 0; i < 20; i++) void p.publish('ready', {});
  await p.drain();
  assert.deepEqual(
    publishes.flatMap((x) => x.seqs),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.ok(
    publishes.every((x) => x.seqs.length <= 4),
    JSON.stringify(publishes.map((x) => x.seqs.length)),
  );
  assert.ok(publishes.some((x) => x.seqs.length > 1));
});

void test('a failed batch rejects every message in it and every later one', async () => {
  let n = 0;
  const bus = {
    publish: async () => {
      await new Promise((r) => setImmediate(r));
      if (++n === 2) throw new Error('broker gone');
      return { streamSeq: n, duplicate: false };
    },
  } as unknown as Bus;
  const p = new Publisher(bus, key, true);
  const publish = (): Promise<string> =>
    p.publish('ready', {}).then(
      () => 'ok',
      () => 'failed',
    );
  // The first leaves alone (its own turn); the four published while it is in flight share the next bus message.
  const outcomes = [publish()];
  await new Promise((r) => setImmediate(r));
  outcomes.push(...Array.from({ length: 4 }, publish));
  await assert.rejects(p.drain(), BusError);
  assert.deepEqual(await Promise.all(outcomes), ['ok', 'failed', 'failed', 'failed', 'failed']);
});

function summaryBody(p: Publisher): Parameters<Publisher['publish']>[1] {
  return {
    messagesBefore: p.sent,
    countsByKind: { ...p.counts },
    requestsOk: 0,
    requestsFailed: 0,
    inputTokens: 0,
    outputTokens: 0,
    baselineStartMs: null,
    baselineEndMs: null,
    windowStartMs: 0,
    windowEndMs: 0,
    warnings: [],
  } as Parameters<Publisher['publish']>[1];
}

void test('a failed publish fails every later one and drain, as a BusError', async () => {
  const { bus, stored } = slowBus({ fail: 2 });
  const p = new Publisher(bus, key, false, 1);
  await p.publish('ready', {});
  await assert.rejects(p.publish('ready', {}), BusError);
  await assert.rejects(p.publish('ready', {}), BusError);
  await assert.rejects(p.drain(), /broker gone/);
  assert.equal(stored.length, 1);
});

void test('nothing is published after the summary or an aborted marker', async () => {
  const { bus, stored } = slowBus();
  const p = new Publisher(bus, key, false);
  await p.publish('aborted', { phase: 'measuring', reason: 'x' });
  await p.publish('telemetry', { phase: 'measuring', samples: [] });
  assert.deepEqual(
    stored.map((m) => m.kind),
    ['aborted'],
  );
  assert.equal(p.sent, 1);
});

void test(
  'batches leave in the binary envelope by default and as JSON arrays for format json, ' +
    'the same members either way',
  async () => {
    const seen: Record<string, { first: number[]; seqs: number[][]; lone: number[] }> = {};
    for (const format of ['binary', 'json', 'default'] as const) {
      const out = { first: [] as number[], seqs: [] as number[][], lone: [] as number[] };
      const bus = {
        publish: async (subject: string, data: Uint8Array) => {
          const d = decodeMessages(data);
          if (!d.ok) throw new Error(d.error);
          if (subject.endsWith('.batch')) {
            out.first.push(data[0] as number);
            out.seqs.push(d.messages.map((m) => m.seq));
          } else out.lone.push(data[0] as number);
          await new Promise((r) => setImmediate(r));
          return { streamSeq: 1, duplicate: false };
        },
      } as unknown as Bus;
      const p = new Publisher(bus, key, true, undefined, format === 'default' ? {} : { format });
      const all = Array.from({ length: 6 }, () => p.publish('telemetry', { phase: 'measuring', samples: [] }));
      await Promise.all(all);
      await p.publish('telemetry', { phase: 'measuring', samples: [] }); // alone: nothing else in its turn
      seen[format] = out;
    }
    assert.deepEqual(seen['json']?.seqs, [[1, 2, 3, 4, 5, 6]]);
    assert.deepEqual(seen['binary']?.first.slice(0, 1), [0x4c], "binary: the envelope's magic");
    assert.deepEqual(seen['json']?.first, [0x5b], 'json: an array');
    assert.deepEqual(seen['binary']?.lone, [], "binary: a lone message is a batch of one, the publisher's format");
    assert.deepEqual(seen['binary']?.first, [0x4c, 0x4c]);
    assert.deepEqual(seen['binary']?.seqs, [[1, 2, 3, 4, 5, 6], [7]]);
    assert.deepEqual(seen['json']?.lone, [0x7b], 'json: a lone message is a plain JSON message');
    assert.deepEqual(seen['default'], seen['binary'], 'the default is the binary envelope (ADR 0036, amended)');
  },
);

void test(
  'a binary publisher encodes every message once, alone or in a batch, ' + 'and a lone one leaves as a batch of one',
  async () => {
    // JSON.stringify calls toJSON once per encoding of the message that carries it.
    let encodings = 0;
    const counted = (): { toJSON: () => unknown[] } => ({
      toJSON: () => {
        encodings++;
        return [];
      },
    });
    const sent: Array<{ subject: string; id: string; bytes: string }> = [];
    const bus = {
      publish: async (subject: string, data: Uint8Array, o: { msgId: string }) => {
        sent.push({ subject, id: o.msgId, bytes: Buffer.from(data).toString('hex') });
        await new Promise((r) => setImmediate(r));
        return { streamSeq: sent.length, duplicate: false };
      },
    } as unknown as Bus;
    const p = new Publisher(bus, key, true, undefined, { format: 'binary' });
    await p.publish('telemetry', { phase: 'measuring', samples: counted() as never });
    assert.equal(encodings, 1, 'a lone message: encoded once');
    await Promise.all([1, 2, 3].map(() => p.publish('telemetry', { phase: 'measuring', samples: counted() as never })));
    assert.equal(encodings, 4, 'three batch members: once each');
    const lone = sent[0];
    assert.ok(lone !== undefined && lone.subject.endsWith('.batch'), 'the lone message is a binary batch of one');
    assert.equal(lone.id, 'uid/run/1/0/1-1');
    const d = decodeMessages(Buffer.from(lone.bytes, 'hex'));
    assert.ok(d.ok && d.batch);
    assert.deepEqual(
      d.messages.map((m) => [m.kind, m.seq]),
      [['telemetry', 1]],
    );
    assert.deepEqual(
      sent.slice(1).map((s) => s.id),
      ['uid/run/1/0/2-4'],
    );
  },
);
