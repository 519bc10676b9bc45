import assert from 'node:assert/strict';
import { test } from 'node:test';
import { awaitTickEdges, measureTickPeriodMs, type CounterReading } from '../../../agent/telemetry/ticks.ts';

/**
 * A fake NVML counter on a fake clock: power `watts` integrated continuously, but the counter shows
 * the integral only as of its last step (every `tickMs`, phase `phaseMs`); each read costs `readMs`.
 */
function fakeCounter(o: {
  tickMs: number;
  phaseMs: number;
  readMs: number;
  watts: number;
  startMs: number;
  frozen?: boolean;
}): {
  read: () => CounterReading[];
  now: () => number;
  energyAt: (t: number) => number;
} {
  let now = o.startMs;
  const energyAt = (t: number): number => Math.round(o.watts * t); // W x ms = mJ
  const shown = (t: number): number =>
    o.frozen === true ? 5 : energyAt(Math.floor((t - o.phaseMs) / o.tickMs) * o.tickMs + o.phaseMs);
  return {
    now: () => now,
    energyAt,
    read: () => {
      const mid = now + o.readMs / 2;
      // The driver samples its counter somewhere inside the call: take the middle.
      const reading = { gpuUuid: 'GPU-a', tMs: mid, energyMillijoules: shown(mid) };
      now += o.readMs;
      return [reading];
    },
  };
}

void test('the edge found is the counter step, to within half the read spacing, with the value just after it', () => {
  const c = fakeCounter({ tickMs: 100, phaseMs: 37, readMs: 4, watts: 300, startMs: 10_000 });
  const [edge] = awaitTickEdges(c.read, { maxWaitMs: 300 });
  assert.ok(edge?.aligned);
  // The first step after 10 000 ms is at 10 037 ms.
  assert.ok(
    Math.abs(edge.edgeMs - 10_037) <= edge.uncertaintyMs + 1e-9,
    `edge at ${edge.edgeMs} ± ${edge.uncertaintyMs}`,
  );
  assert.ok(edge.uncertaintyMs <= 2 + 1e-9);
  assert.equal(edge.energyMillijoules, c.energyAt(10_037));
  assert.ok(edge.waitedMs > 30 && edge.waitedMs < 45);
});

void test('a window between two edges holds exactly the energy of whole ticks, wherever the boundaries fell', () => {
  for (const phaseMs of [0, 13, 50, 99]) {
    const c = fakeCounter({ tickMs: 100, phaseMs, readMs: 4, watts: 250, startMs: 20_003 });
    const [start] = awaitTickEdges(c.read, { maxWaitMs: 300 });
    for (let i = 0; i < 1234; i++) c.read(); // the window: ~4.9 s of other reads
    const [end] = awaitTickEdges(c.read, { maxWaitMs: 300 });
    assert.ok(start?.aligned && end?.aligned);
    const ticks = Math.round((end.edgeMs - start.edgeMs) / 100);
    assert.equal((end.energyMillijoules ?? 0) - (start.energyMillijoules ?? 0), 250 * 100 * ticks, `phase ${phaseMs}`);
  }
});

void test('a counter that never steps gives an unaligned edge after the wait limit instead of blocking', () => {
  const c = fakeCounter({ tickMs: 100, phaseMs: 0, readMs: 4, watts: 0, startMs: 0, frozen: true });
  const [edge] = awaitTickEdges(c.read, { maxWaitMs: 250 });
  assert.equal(edge?.aligned, false);
  assert.ok(c.now() >= 250 && c.now() < 270, `gave up at ${c.now()} ms`);
});

void test('the step period is measured from two consecutive edges', () => {
  const c = fakeCounter({ tickMs: 100, phaseMs: 61, readMs: 3, watts: 100, startMs: 5_000 });
  const period = measureTickPeriodMs(c.read, { maxWaitMs: 300 }).get('GPU-a');
  assert.ok(period !== null && period !== undefined && Math.abs(period - 100) <= 3, `period ${period}`);
});

void test('several GPUs each get their own edge from one polling loop', () => {
  let now = 0;
  const read = (): CounterReading[] => {
    now += 5;
    return [
      { gpuUuid: 'GPU-a', tMs: now, energyMillijoules: Math.floor(now / 100) },
      { gpuUuid: 'GPU-b', tMs: now, energyMillijoules: Math.floor((now + 40) / 100) },
    ];
  };
  const edges = awaitTickEdges(read, { maxWaitMs: 300 });
  assert.deepEqual(
    edges.map((e) => e.gpuUuid),
    ['GPU-a', 'GPU-b'],
  );
  assert.ok(edges.every((e) => e.aligned));
  assert.ok(Math.abs((edges[0]?.edgeMs ?? 0) - 100) <= 2.5 && Math.abs((edges[1]?.edgeMs ?? 0) - 60) <= 2.5);
});
