// A fake NVML for tests: four GPUs GPU-0000-0000 .. GPU-3333-0000; MIG-aaaa and MIG-bbbb are slices
// of GPU 2, MIG-cccc of GPU 3. `overrides` replace single calls.
import type { NvmlApi, NvmlResult } from '../../agent/telemetry/nvml-api.ts';

const ok = <T>(value: T): NvmlResult<T> => ({ rc: 0, value });
const fail = (rc: number): NvmlResult<never> => ({ rc });
const all = [0, 1, 2, 3].map((index) => ({ index, uuid: `GPU-${index}${index}${index}${index}-0000` }));
export const MIG: Record<string, string> = {
  'MIG-aaaa': 'GPU-2222-0000',
  'MIG-bbbb': 'GPU-2222-0000',
  'MIG-cccc': 'GPU-3333-0000',
};

export function fakeNvml4(overrides: Partial<NvmlApi> = {}): NvmlApi {
  return {
    init: () => 0,
    shutdown: () => 0,
    errorString: () => null,
    driverVersion: () => ok('550.54'),
    nvmlVersion: () => ok('12.550.54'),
    cudaDriverVersion: () => ok(12040),
    deviceCount: () => ok(4),
    handleByIndex: (i) => ok(i),
    uuid: (h) => ok(all[h as number]?.uuid ?? ''),
    name: () => ok('NVIDIA H100'),
    totalEnergyMillijoules: () => ok(1000),
    powerUsageMilliwatts: () => ok(250_000),
    fieldValueUint: () => fail(3),
    utilizationGpuPct: () => ok(50),
    memoryBytes: () => ok({ total: 2 ** 30 * 80, used: 2 ** 30 }),
    clockMhz: () => ok(1980),
    maxClockMhz: () => ok(1980),
    temperatureC: () => ok(40),
    throttleReasons: () => ok(0),
    powerLimitMilliwatts: () => ok(700_000),
    processes: () => ok([]),
    migEnabled: () => ok(false),
    migParentUuid: (u) => (MIG[u] === undefined ? fail(6) : ok(MIG[u] as string)),
    ...overrides,
  };
}
