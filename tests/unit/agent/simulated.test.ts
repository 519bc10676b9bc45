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
