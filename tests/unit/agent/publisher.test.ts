import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, type WireMessage } from '../../../api/protocol.ts';
import type { Bus } from '../../../lib/bus/types.ts';
import { BusError } from '../../../lib/errors.ts';
import { Publisher } from '../../../agent/publisher.ts';

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
      const d = decodeMessage(data);
      if (d.ok) stored.push(d.message);
      ids.push(o.msgId);
      return { streamSeq: i, duplicate: false };
    },
  } as unknown as Bus;
  return { bus, stored, ids };
}

void test('messages are handed to the bus in seq order with contiguous seq and per-kind counts, acks in any order', async () => {
  const { bus, stored, ids } = slowBus({ reversed: 3 });
  const p = new Publisher(bus, key, true);
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
      const d = decodeMessage(data);
      if (d.ok) calls.push(d.message.seq);
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
