// bench/bus's measurement (ADR 0041): the window opens after the warm-up, the figures cover it, exactly
// once is checked over the whole run, and a warm-up the phase cannot have is refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeMessages } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/aggregator.ts';
import { measure, type ConsumerImpl, type Phase } from '../../../bench/bus/measure.ts';
import { appliedCounters, publishAll, waitingOn, type PublishPlan } from '../../../bench/bus/publish.ts';
import { slicePool } from '../../../bench/bus/slices.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';

const IMPL: ConsumerImpl = { name: 'current', decodeMessages, aggregator: (plan) => new Aggregator(plan) };
const SLICES = slicePool().slice(0, 8);

function plan(uid: string, publishers: number, perPublisher: number): PublishPlan {
  return {
    uid,
    publishers: Array.from({ length: publishers }, (_, p) => p),
    perPublisher,
    inFlight: 4,
    maxBatch: 64,
    kind: 'sketch',
    batchFormat: 'binary',
    unapplied: 4,
  };
}

async function phase(uid: string, warm: number, perPublisher = 30): Promise<Phase> {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const p = plan(uid, 3, perPublisher);
  const applied = appliedCounters(3);
  const publishers = {
    where: 'consumer_thread' as const,
    go: () => publishAll([bus], p, SLICES, applied),
    close: async () => {},
  };
  return { consumerBus: bus, plan: p, publishers, impl: IMPL, applied, warm, serverCpuS: () => Number.NaN };
}

/** IMPL, but the slices it decodes before `warm` are dated a minute earlier and cost 20 ms a bus message. */
function slowWarmUp(warm: number): ConsumerImpl {
  let decoded = 0;
  return {
    name: 'slow warm-up',
    decodeMessages: (data) => {
      const d = decodeMessages(data);
      if (!d.ok) return d;
      if (decoded < warm) {
        for (const m of d.messages) m.sentAtMs -= 60_000;
        const until = performance.now() + 20;
        while (performance.now() < until);
      }
      decoded += d.messages.length;
      return d;
    },
    aggregator: IMPL.aggregator,
  };
}

test('bench/bus measures a window after the warm-up and checks exactly once over the whole run', async () => {
  const ph = { ...(await phase('measure-warm', 45)), impl: slowWarmUp(45) };
  try {
    const r = await measure(ph);
    assert.equal(r.expected, 90);
    assert.equal(r.applied, 90);
    assert.equal(r.missing, 0);
    assert.equal(r.duplicatesApplied, 0);
    // The window opens at the first bus message applied once 45 are: it holds the other 45 less at most
    // one bus message's worth (a publisher has at most 4 unapplied, so a batch holds at most 4).
    assert.ok(r.measured <= 45 && r.measured >= 41, `measured ${r.measured}`);
    // Latency and throughput cover the window only; the whole run keeps the slow, minute-old warm-up.
    assert.ok(r.p99Ms < 60_000 && r.p50Ms < 60_000, `window p50 ${r.p50Ms} p99 ${r.p99Ms}`);
    assert.ok(r.wholeP99Ms >= 60_000, `whole-run p99 ${r.wholeP99Ms}`);
    assert.ok(r.msgsPerSecond > r.wholeMsgsPerSecond, `window ${r.msgsPerSecond}/s, whole ${r.wholeMsgsPerSecond}/s`);
    assert.ok(Number.isNaN(r.serverCpuS), 'no server in process');
  } finally {
    await ph.consumerBus.close();
  }
});

test('bench/bus refuses a warm-up that leaves no window instead of reporting the whole run as one', async () => {
  const ph = await phase('measure-nowindow', 30, 60);
  // One publisher that sends all 60 in one turn: one bus message, which completes the warm-up and the phase.
  const p: PublishPlan = { ...plan('measure-nowindow', 1, 60), inFlight: 64, unapplied: 0 };
  const applied = appliedCounters(1);
  const bus = ph.consumerBus;
  const publishers = { ...ph.publishers, go: () => publishAll([bus], p, SLICES, applied) };
  try {
    await assert.rejects(
      measure({ ...ph, plan: p, applied, publishers }),
      /a warm-up of 30 slices left no window: the bus message that completed it was the phase's last/,
    );
  } finally {
    await bus.close();
  }
});

test('bench/bus publishers stop waiting for the consumer once their phase has failed', async () => {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  // run-1's first publish fails, and its loop throws at the ack it awaits; run-0 has sent its one message
  // (1 in flight, 1 unapplied at most) and waits for a consumer that never comes.
  const failing = new Proxy(bus, {
    get(target, prop, receiver): unknown {
      if (prop !== 'publish') return Reflect.get(target, prop, receiver) as unknown;
      return (subject: string, ...rest: unknown[]) =>
        subject.includes('run-1')
          ? Promise.reject(new Error('refused'))
          : (target.publish as (...a: unknown[]) => Promise<unknown>).call(target, subject, ...rest);
    },
  });
  const p = { ...plan('measure-fail', 2, 10), inFlight: 1, unapplied: 1 };
  const applied = appliedCounters(2);
  try {
    await assert.rejects(publishAll([failing], p, SLICES, applied), /refused/);
    assert.equal(waitingOn(applied), 0, 'no publisher of the failed phase is left polling');
    // run-0's ack lands after the failure: it must not start waiting then (this test's process would not end).
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(waitingOn(applied), 0, 'no publisher of the failed phase waits after it settled');
  } finally {
    await bus.close();
  }
});

test('bench/bus without a warm-up measures the whole run', async () => {
  const ph = await phase('measure-cold', 0);
  try {
    const r = await measure(ph);
    assert.equal(r.measured, 90);
    assert.equal(r.applied, 90);
  } finally {
    await ph.consumerBus.close();
  }
});

test('bench/bus refuses a warm-up that is negative, fractional or not below the phase', async () => {
  for (const warm of [-1, 2.5, 90, 91, Number.NaN]) {
    const ph = await phase(`measure-bad-${String(warm).replace('.', '_')}`, warm);
    try {
      await assert.rejects(measure(ph), /warm-up must be a whole number of slices below the phase's 90/);
    } finally {
      await ph.consumerBus.close();
    }
  }
});

test('bench/bus refuses a bad BENCH_BUS_MESSAGES or BENCH_BUS_WARMUP with exit 2 before it starts anything', () => {
  const bench = fileURLToPath(new URL('../../../bench/bus.ts', import.meta.url));
  for (const env of [
    { BENCH_BUS_WARMUP: '-3' },
    { BENCH_BUS_WARMUP: 'many' },
    { BENCH_BUS_MESSAGES: '15' },
    { BENCH_BUS_MESSAGES: '30' },
  ]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', bench], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /BENCH_BUS_MESSAGES .* must be a multiple of 10, at least 40, and BENCH_BUS_WARMUP .* a whole number >= 0/,
    );
    assert.doesNotMatch(r.stdout, /RESULT/);
  }
});
