// bench/bus's measurement (ADR 0041): the window opens after the warm-up, the figures cover it, exactly
// once is checked over the whole run, and a warm-up the phase cannot have is refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeMessages } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/aggregator.ts';
import { measure, type ConsumerImpl, type Phase } from '../../../bench/bus/measure.ts';
import { appliedCounters, publishAll, type PublishPlan } from '../../../bench/bus/publish.ts';
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

test('bench/bus measures a window after the warm-up and checks exactly once over the whole run', async () => {
  const ph = await phase('measure-warm', 45);
  try {
    const r = await measure(ph);
    assert.equal(r.expected, 90);
    assert.equal(r.applied, 90);
    assert.equal(r.missing, 0);
    assert.equal(r.duplicatesApplied, 0);
    // The window opens at the first bus message applied once 45 are: it holds the other 45 less at most
    // one bus message's worth (a publisher has at most 4 unapplied, so a batch holds at most 4).
    assert.ok(r.measured <= 45 && r.measured >= 41, `measured ${r.measured}`);
    assert.ok(r.msgsPerSecond > 0 && Number.isFinite(r.msgsPerSecond));
    assert.ok(r.wholeMsgsPerSecond > 0 && Number.isFinite(r.wholeMsgsPerSecond));
    assert.ok(r.p99Ms >= r.p50Ms && r.wholeP99Ms >= 0);
    assert.ok(Number.isNaN(r.serverCpuS), 'no server in process');
  } finally {
    await ph.consumerBus.close();
  }
});

test('bench/bus without a warm-up measures the whole run', async () => {
  const ph = await phase('measure-cold', 0);
  try {
    const r = await measure(ph);
    assert.equal(r.measured, 90);
    assert.equal(r.applied, 90);
    assert.equal(r.p99Ms, r.wholeP99Ms);
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

test('bench/bus refuses a bad BENCH_BUS_MESSAGES or BENCH_BUS_WARMUP with exit code 2 before it starts anything', () => {
  const bench = fileURLToPath(new URL('../../../bench/bus.ts', import.meta.url));
  for (const env of [{ BENCH_BUS_WARMUP: '-3' }, { BENCH_BUS_WARMUP: 'many' }, { BENCH_BUS_MESSAGES: '15' }]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', bench], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /BENCH_BUS_MESSAGES .* must be a positive multiple of 10 and BENCH_BUS_WARMUP .* a whole number >= 0/,
    );
    assert.doesNotMatch(r.stdout, /RESULT/);
  }
});
