import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GpuSample } from '../../../api/protocol.ts';
import { createSimulatedGpu } from '../../../agent/telemetry/sampler.ts';
import { createLoadCell, SimulatedReader, simulatedPowerWatts } from '../../../agent/telemetry/simulated.ts';

void test('simulated power rises with load from idle to the cap', () => {
  const levels = [0, 0.1, 0.5, 1, 2].map((l) => simulatedPowerWatts(l, 70, 700));
  assert.equal(levels[0], 70);
  assert.equal(levels[3], 700);
  assert.equal(levels[4], 700);
  for (let i = 1; i < levels.length - 1; i++) assert.ok((levels[i] ?? 0) > (levels[i - 1] ?? 0));
});

void test('the simulated GPU labels itself simulated everywhere', () => {
  const env = new SimulatedReader(createLoadCell()).open();
  assert.equal(env.source, 'simulated');
  assert.match(env.gpus[0]?.name ?? '', /simulated/);
  assert.match(env.gpus[0]?.uuid ?? '', /simulated/);
});

void test('the energy counter grows faster under load than idle', async () => {
  const load = createLoadCell();
  const reader = new SimulatedReader(load, { gpuCount: 2 });
  reader.open();
  const energy = (): number => reader.read()[0]?.energyMillijoules ?? NaN;
  const wait = (): Promise<void> => new Promise((r) => setTimeout(r, 150));
  const e0 = energy();
  await wait();
  const idle = energy() - e0;
  Atomics.store(load, 0, 64);
  for (let i = 0; i < 6; i++) {
    reader.read();
    await wait();
  }
  const e1 = energy();
  await wait();
  const busy = energy() - e1;
  assert.ok(busy > idle * 3, `busy ${busy} mJ vs idle ${idle} mJ`);
  assert.equal(reader.read().length, 2);
});

void test('a mark resolves only after every earlier periodic sample was delivered', async () => {
  const telemetry = createSimulatedGpu({ sampleIntervalMs: 10, batchIntervalMs: 10_000 });
  const batches: GpuSample[][] = [];
  await telemetry.start((b) => batches.push(b));
  await new Promise((r) => setTimeout(r, 500));
  const [mark] = await telemetry.mark();
  const periodic = batches.flat(); // before stop(), which flushes samples taken after the mark
  await telemetry.stop();
  assert.ok(periodic.length > 0, 'the mark flushed the pending batch first');
  assert.ok(periodic.every((s) => s.tMs <= (mark?.tMs ?? 0)));
  assert.ok((mark?.energyMillijoules ?? 0) >= (periodic.at(-1)?.energyMillijoules ?? Infinity));
});

void test('simulated GPUs from firstDevice on have their own UUIDs, and each draws its deviceWatts', async () => {
  const reader = new SimulatedReader(createLoadCell(), {
    gpuCount: 2,
    firstDevice: 2,
    deviceWatts: [100, 200, 300, 400],
    counterTickMs: 0,
  });
  const env = reader.open();
  assert.deepEqual(
    env.gpus.map((g) => g.uuid),
    ['GPU-simulated-0002', 'GPU-simulated-0003'],
  );
  const t0 = performance.now();
  const [a0, b0] = reader.readCounters();
  await new Promise((r) => setTimeout(r, 300));
  const [a1, b1] = reader.readCounters();
  const ms = performance.now() - t0;
  const joules = (x?: { energyMillijoules: number | null }, y?: { energyMillijoules: number | null }): number =>
    ((y?.energyMillijoules ?? NaN) - (x?.energyMillijoules ?? NaN)) / 1000;
  // Device 2 draws 300 W, device 3 400 W, whatever the load: energy = watts x elapsed.
  assert.ok(Math.abs(joules(a0, a1) - (300 * ms) / 1000) < 0.05 * 300 * (ms / 1000), `${joules(a0, a1)} J`);
  assert.ok(Math.abs(joules(b0, b1) / joules(a0, a1) - 4 / 3) < 0.01);
  assert.deepEqual(
    reader.read().map((s) => s.powerWatts),
    [300, 400],
  );
});

void test('a counter step holds the energy at the step, even when the reader comes long after it', async () => {
  const reader = new SimulatedReader(createLoadCell(), { deviceWatts: [500], counterTickMs: 100 });
  reader.open();
  const first = reader.readCounters()[0]?.energyMillijoules ?? NaN;
  // Read again 350 ms later: the counter stepped 3 times; it shows the energy as of the last step (<= 300 ms of it).
  await new Promise((r) => setTimeout(r, 350));
  const later = reader.readCounters()[0]?.energyMillijoules ?? NaN;
  const steppedMs = (later - first) / 500;
  assert.ok(steppedMs <= 300 + 5 && steppedMs >= 200 - 5, `shows ${steppedMs} ms of energy`);
  assert.ok(Math.abs(steppedMs - Math.round(steppedMs / 100) * 100) < 20, `${steppedMs} ms is a whole number of ticks`);
});
