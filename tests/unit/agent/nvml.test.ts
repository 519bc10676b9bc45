import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TelemetryError } from '../../../lib/errors.ts';
import { loadNvmlApi, type NvmlApi, type NvmlResult } from '../../../agent/telemetry/nvml-api.ts';
import { NvmlReader, nvmlUnavailable } from '../../../agent/telemetry/nvml.ts';
import { createNvmlTelemetry } from '../../../agent/telemetry/sampler.ts';

const ok = <T>(value: T): NvmlResult<T> => ({ rc: 0, value });
const fail = (rc: number): NvmlResult<never> => ({ rc });

/** A fake NVML with two GPUs; `overrides` replace single calls. */
function fakeNvml(overrides: Partial<NvmlApi> = {}): NvmlApi {
  const uuids = ['GPU-1111', 'GPU-2222'];
  return {
    init: () => 0,
    shutdown: () => 0,
    errorString: () => null,
    driverVersion: () => ok('550.54'),
    nvmlVersion: () => ok('12.550.54'),
    cudaDriverVersion: () => ok(12040),
    deviceCount: () => ok(2),
    handleByIndex: (i) => ok(i),
    uuid: (h) => ok(uuids[h as number] ?? ''),
    name: () => ok('NVIDIA H200'),
    totalEnergyMillijoules: (h) => ok(1000 + (h as number)),
    powerUsageMilliwatts: () => ok(250_000),
    fieldValueUint: () => fail(3),
    utilizationGpuPct: () => ok(50),
    memoryBytes: () => ok({ total: 2 ** 30 * 141, used: 2 ** 30 }),
    clockMhz: () => ok(1980),
    maxClockMhz: () => ok(1980),
    temperatureC: () => ok(40),
    throttleReasons: () => ok(0),
    powerLimitMilliwatts: () => ok(700_000),
    processes: () => ok([]),
    migEnabled: () => fail(3),
    migParentUuid: () => fail(6),
    ...overrides,
  };
}

void test('NVML return codes become "unavailable: reason" strings', () => {
  assert.equal(nvmlUnavailable(3), 'unavailable: not supported on this GPU/driver');
  assert.equal(nvmlUnavailable(15), 'unavailable: GPU is lost (fell off the bus)');
  assert.equal(nvmlUnavailable(4242), 'unavailable: NVML error 4242');
});

void test('discovery reports visible GPUs by UUID with versions and limits', () => {
  const reader = new NvmlReader(fakeNvml(), { cudaVisibleDevices: '1' });
  const env = reader.open();
  assert.equal(env.source, 'nvml');
  assert.deepEqual(
    env.gpus.map((g) => g.uuid),
    ['GPU-2222'],
  );
  assert.equal(env.gpus[0]?.powerLimitWatts, 700);
  assert.equal(env.gpus[0]?.memoryTotalMiB, 141 * 1024);
  assert.equal(env.cudaVersion, '12.4');
  assert.equal(env.driverVersion, '550.54');
});

void test('a failing reading is null with its reason, and the other fields still arrive', () => {
  const reader = new NvmlReader(fakeNvml({ temperatureC: () => fail(3), totalEnergyMillijoules: () => fail(15) }), {});
  reader.open();
  const [sample] = reader.read();
  assert.equal(sample?.energyMillijoules, null);
  assert.equal(sample?.temperatureC, null);
  assert.equal(sample?.powerWatts, 250);
  assert.deepEqual(sample?.unavailable, { energyMillijoules: nvmlUnavailable(15), temperatureC: nvmlUnavailable(3) });
});

void test('power comes from the instant field value where the driver has it', () => {
  const reader = new NvmlReader(fakeNvml({ fieldValueUint: (_h, id) => (id === 186 ? ok(312_000) : fail(3)) }), {});
  reader.open();
  assert.equal(reader.read()[0]?.powerWatts, 312);
});

void test('an NVML init failure is a TelemetryError at open', () => {
  const reader = new NvmlReader(fakeNvml({ init: () => 9 }), {});
  assert.throws(
    () => reader.open(),
    (e: unknown) => e instanceof TelemetryError && /driver not loaded/.test(e.message),
  );
});

void test('no visible GPU is a TelemetryError that names the variables', () => {
  const reader = new NvmlReader(fakeNvml(), { nvidiaVisibleDevices: 'none' });
  assert.throws(
    () => reader.open(),
    (e: unknown) => e instanceof TelemetryError && /NVIDIA_VISIBLE_DEVICES=none/.test(e.message),
  );
});

void test('a missing NVML library is a clear TelemetryError, not a crash', () => {
  assert.throws(
    () => loadNvmlApi('/nonexistent/libnvidia-ml.so.1'),
    (e: unknown) => e instanceof TelemetryError && /cannot load/.test(e.message),
  );
});

void test('the NVML sampler worker fails at start when the library is missing', async () => {
  const telemetry = createNvmlTelemetry({ libraryPath: '/nonexistent/libnvidia-ml.so.1', visibility: {} });
  await assert.rejects(
    telemetry.start(() => undefined),
    (e: unknown) => e instanceof TelemetryError && /unavailable: cannot load/.test(e.message),
  );
  await telemetry.stop();
});
