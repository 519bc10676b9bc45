// The slice of NVML we call, bound with koffi. Loaded only inside the sampler worker (and by the
// `llem gpu-info` probe): every call here blocks its thread, one energy read ~4 ms on an H200.
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { TelemetryError } from '../../lib/errors.ts';

export const NVML_SUCCESS = 0;
export const NVML_ERROR_FUNCTION_NOT_FOUND = 13;
/** nvmlFieldValue_t field ids (nvml.h): milliwatts, Ampere and newer (not GA100). */
export const NVML_FI_DEV_POWER_AVERAGE = 185;
export const NVML_FI_DEV_POWER_INSTANT = 186;
export const NVML_CLOCK_SM = 1;
export const NVML_CLOCK_MEM = 2;

export const NVML_ERROR_INSUFFICIENT_SIZE = 7;
/** nvmlProcessInfo_t (v2/v3 layout): pid uint, pad, usedGpuMemory ull, gpuInstanceId uint, computeInstanceId uint. */
const PROCESS_INFO_BYTES = 24;

/**
 * One process NVML lists on a GPU. usedGpuMemoryBytes null: not available (NVML says so under some drivers/containers).
 */
export interface NvmlProcess {
  pid: number;
  usedGpuMemoryBytes: number | null;
}

export type ProcessListKind = 'compute' | 'graphics' | 'mps';

export type NvmlResult<T> = { rc: 0; value: T } | { rc: number; value?: undefined };
export type DeviceHandle = unknown;

/** Functional view of NVML: each call returns its nvmlReturn_t code and, on success, the value. */
export interface NvmlApi {
  init(): number;
  shutdown(): number;
  errorString(rc: number): string | null;
  driverVersion(): NvmlResult<string>;
  nvmlVersion(): NvmlResult<string>;
  cudaDriverVersion(): NvmlResult<number>;
  deviceCount(): NvmlResult<number>;
  handleByIndex(index: number): NvmlResult<DeviceHandle>;
  uuid(h: DeviceHandle): NvmlResult<string>;
  name(h: DeviceHandle): NvmlResult<string>;
  totalEnergyMillijoules(h: DeviceHandle): NvmlResult<number>;
  powerUsageMilliwatts(h: DeviceHandle): NvmlResult<number>;
  fieldValueUint(h: DeviceHandle, fieldId: number): NvmlResult<number>;
  utilizationGpuPct(h: DeviceHandle): NvmlResult<number>;
  memoryBytes(h: DeviceHandle): NvmlResult<{ total: number; used: number }>;
  clockMhz(h: DeviceHandle, clock: number): NvmlResult<number>;
  maxClockMhz(h: DeviceHandle, clock: number): NvmlResult<number>;
  temperatureC(h: DeviceHandle): NvmlResult<number>;
  throttleReasons(h: DeviceHandle): NvmlResult<number>;
  powerLimitMilliwatts(h: DeviceHandle): NvmlResult<number>;
  /** Processes with a context on the GPU (compute, graphics, or clients of an MPS server). */
  processes(h: DeviceHandle, kind: ProcessListKind): NvmlResult<NvmlProcess[]>;
  /** Current MIG mode: true when the GPU is partitioned into MIG instances. */
  migEnabled(h: DeviceHandle): NvmlResult<boolean>;
  /** The parent GPU's UUID of a MIG instance UUID (MIG-...). */
  migParentUuid(migUuid: string): NvmlResult<string>;
}

type KoffiFn = (...args: unknown[]) => unknown;

let typesDefined: { device: TypeObject; field: TypeObject } | undefined;

// koffi type names are global per thread: define them once.
function defineTypes(): { device: TypeObject; field: TypeObject } {
  if (typesDefined !== undefined) return typesDefined;
  const device = koffi.pointer('nvmlDevice_t', koffi.opaque());
  koffi.struct('nvmlUtilization_t', { gpu: 'uint', memory: 'uint' });
  koffi.struct('nvmlMemory_t', { total: 'unsigned long long', free: 'unsigned long long', used: 'unsigned long long' });
  const field = koffi.struct('nvmlFieldValue_t', {
    fieldId: 'uint',
    scopeId: 'uint',
    timestamp: 'long long',
    latencyUsec: 'long long',
    valueType: 'int',
    nvmlReturn: 'int',
    // nvmlValue_t is an 8-byte union; power fields use its uiVal member, the low 32 bits (x86-64/arm64 LE).
    value: 'unsigned long long',
  });
  typesDefined = { device, field };
  return typesDefined;
}

function bind(lib: LibraryHandle, proto: string): KoffiFn {
  try {
    return lib.func(proto) as KoffiFn;
  } catch {
    // Older drivers lack some symbols: report the call as NVML would, not as a crash.
    return () => NVML_ERROR_FUNCTION_NOT_FOUND;
  }
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

function outNumber(fn: KoffiFn, ...args: unknown[]): NvmlResult<number> {
  const out: unknown[] = [0];
  const rc = fn(...args, out) as number;
  return rc === NVML_SUCCESS ? { rc: 0, value: Number(out[0]) } : { rc };
}

function outString(fn: KoffiFn, ...args: unknown[]): NvmlResult<string> {
  const buf = Buffer.alloc(96);
  const rc = fn(...args, buf, buf.length) as number;
  return rc === NVML_SUCCESS ? { rc: 0, value: cString(buf) } : { rc };
}

/** NVML's two-call pattern: ask with room for a few, grow to the count it reports when that is too small. */
function listProcesses(fn: KoffiFn, h: DeviceHandle): NvmlResult<NvmlProcess[]> {
  let room = 16;
  for (let tries = 0; tries < 3; tries++) {
    const count: unknown[] = [room];
    const buf = Buffer.alloc(room * PROCESS_INFO_BYTES);
    const rc = fn(h, count, buf) as number;
    const n = Number(count[0]);
    if (rc === NVML_ERROR_INSUFFICIENT_SIZE) {
      room = n + 8;
      continue;
    }
    if (rc !== NVML_SUCCESS) return { rc };
    const out: NvmlProcess[] = [];
    for (let i = 0; i < n; i++) {
      const used = buf.readBigUInt64LE(i * PROCESS_INFO_BYTES + 8);
      // NVML_VALUE_NOT_AVAILABLE is (unsigned long long)-1.
      out.push({
        pid: buf.readUInt32LE(i * PROCESS_INFO_BYTES),
        usedGpuMemoryBytes: used === 0xffffffffffffffffn ? null : Number(used),
      });
    }
    return { rc: 0, value: out };
  }
  return { rc: NVML_ERROR_INSUFFICIENT_SIZE };
}

/** Open libnvidia-ml. A missing library is a TelemetryError that says what to check. */
export function loadNvmlApi(libraryPath = 'libnvidia-ml.so.1'): NvmlApi {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(libraryPath);
  } catch (err) {
    throw new TelemetryError(
      `cannot load ${libraryPath}: no NVIDIA driver visible to this process (is the GPU runtime/driver mounted? use --simulate where no GPU exists)`,
      { cause: err },
    );
  }
  defineTypes();
  const f = (proto: string): KoffiFn => bind(lib, proto);
  const errorString = f('const char *nvmlErrorString(int result)');
  const getUuid = f('int nvmlDeviceGetUUID(nvmlDevice_t device, _Out_ char *uuid, uint length)');
  const getName = f('int nvmlDeviceGetName(nvmlDevice_t device, _Out_ char *name, uint length)');
  const energy = f('int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, _Out_ unsigned long long *energy)');
  const power = f('int nvmlDeviceGetPowerUsage(nvmlDevice_t device, _Out_ uint *power)');
  const fields = f('int nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, _Inout_ nvmlFieldValue_t *values)');
  const util = f('int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, _Out_ nvmlUtilization_t *utilization)');
  const mem = f('int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, _Out_ nvmlMemory_t *memory)');
  const clock = f('int nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, _Out_ uint *clock)');
  const maxClock = f('int nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, int type, _Out_ uint *clock)');
  const temp = f('int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, _Out_ uint *temp)');
  const events = f(
    'int nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, _Out_ unsigned long long *reasons)',
  );
  const throttle = f(
    'int nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, _Out_ unsigned long long *reasons)',
  );
  const limit = f('int nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, _Out_ uint *limit)');
  const byIndex = f('int nvmlDeviceGetHandleByIndex_v2(uint index, _Out_ nvmlDevice_t *device)');
  const count = f('int nvmlDeviceGetCount_v2(_Out_ uint *count)');
  const cuda = f('int nvmlSystemGetCudaDriverVersion_v2(_Out_ int *version)');
  const driver = f('int nvmlSystemGetDriverVersion(_Out_ char *version, uint length)');
  const nvmlVer = f('int nvmlSystemGetNVMLVersion(_Out_ char *version, uint length)');
  // _v3 since R470; _v2 has the same 24-byte record on the drivers in between.
  const procFn = (name: string, v: number): KoffiFn =>
    f(`int nvmlDevice${name}_v${v}(nvmlDevice_t device, _Inout_ uint *count, void *infos)`);
  const names: Record<ProcessListKind, string> = {
    compute: 'GetComputeRunningProcesses',
    graphics: 'GetGraphicsRunningProcesses',
    mps: 'GetMPSComputeRunningProcesses',
  };
  const procFns = Object.fromEntries(
    Object.entries(names).map(([k, n]) => [k, [procFn(n, 3), procFn(n, 2)]]),
  ) as Record<ProcessListKind, KoffiFn[]>;
  const migMode = f('int nvmlDeviceGetMigMode(nvmlDevice_t device, _Out_ uint *current, _Out_ uint *pending)');
  const byUuid = f('int nvmlDeviceGetHandleByUUID(const char *uuid, _Out_ nvmlDevice_t *device)');
  const migParent = f('int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig, _Out_ nvmlDevice_t *device)');
  const init = f('int nvmlInit_v2()');
  const shutdown = f('int nvmlShutdown()');
  return {
    init: () => init() as number,
    shutdown: () => shutdown() as number,
    errorString: (rc) => {
      const s = errorString(rc);
      return typeof s === 'string' ? s : null;
    },
    driverVersion: () => outString(driver),
    nvmlVersion: () => outString(nvmlVer),
    cudaDriverVersion: () => outNumber(cuda),
    deviceCount: () => outNumber(count),
    handleByIndex: (index) => {
      const out: unknown[] = [null];
      const rc = byIndex(index, out) as number;
      return rc === NVML_SUCCESS ? { rc: 0, value: out[0] } : { rc };
    },
    uuid: (h) => outString(getUuid, h),
    name: (h) => outString(getName, h),
    totalEnergyMillijoules: (h) => outNumber(energy, h),
    powerUsageMilliwatts: (h) => outNumber(power, h),
    fieldValueUint: (h, fieldId) => {
      const value = {
        fieldId,
        scopeId: 0,
        timestamp: 0,
        latencyUsec: 0,
        valueType: 0,
        nvmlReturn: 0,
        value: 0 as number | bigint,
      };
      const rc = fields(h, 1, value) as number;
      if (rc !== NVML_SUCCESS) return { rc };
      if (value.nvmlReturn !== NVML_SUCCESS) return { rc: value.nvmlReturn };
      return { rc: 0, value: Number(BigInt(value.value) & 0xffffffffn) };
    },
    utilizationGpuPct: (h) => {
      const out = { gpu: 0, memory: 0 };
      const rc = util(h, out) as number;
      return rc === NVML_SUCCESS ? { rc: 0, value: out.gpu } : { rc };
    },
    memoryBytes: (h) => {
      const out = { total: 0, free: 0, used: 0 };
      const rc = mem(h, out) as number;
      return rc === NVML_SUCCESS ? { rc: 0, value: { total: Number(out.total), used: Number(out.used) } } : { rc };
    },
    clockMhz: (h, type) => outNumber(clock, h, type),
    maxClockMhz: (h, type) => outNumber(maxClock, h, type),
    temperatureC: (h) => outNumber(temp, h, 0),
    throttleReasons: (h) => {
      const r = outNumber(events, h);
      return r.rc === NVML_ERROR_FUNCTION_NOT_FOUND ? outNumber(throttle, h) : r;
    },
    powerLimitMilliwatts: (h) => outNumber(limit, h),
    processes: (h, kind) => {
      const [v3, v2] = procFns[kind] as [KoffiFn, KoffiFn];
      const r = listProcesses(v3, h);
      return r.rc === NVML_ERROR_FUNCTION_NOT_FOUND ? listProcesses(v2, h) : r;
    },
    migEnabled: (h) => {
      const current: unknown[] = [0];
      const pending: unknown[] = [0];
      const rc = migMode(h, current, pending) as number;
      return rc === NVML_SUCCESS ? { rc: 0, value: Number(current[0]) === 1 } : { rc };
    },
    migParentUuid: (migUuid) => {
      const mig: unknown[] = [null];
      let rc = byUuid(migUuid, mig) as number;
      if (rc !== NVML_SUCCESS) return { rc };
      const parent: unknown[] = [null];
      rc = migParent(mig[0], parent) as number;
      return rc === NVML_SUCCESS ? outString(getUuid, parent[0]) : { rc };
    },
  };
}
