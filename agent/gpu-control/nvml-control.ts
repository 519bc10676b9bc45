// The NVML calls that change a GPU's power limit and clocks, bound with koffi (the read-only slice
// the sampler uses is telemetry/nvml-api.ts). These run on the agent's main thread: a handful of
// calls before the baseline and at exit, never during a window. Setting needs root (or
// CAP_SYS_ADMIN): NVML answers NVML_ERROR_NO_PERMISSION otherwise, and the agent says so.
import koffi from 'koffi';
import { loadNvmlApi, NVML_ERROR_FUNCTION_NOT_FOUND, NVML_SUCCESS, type NvmlResult } from '../telemetry/nvml-api.ts';

export const NVML_ERROR_NO_PERMISSION = 4;
export const NVML_ERROR_NOT_SUPPORTED = 3;
export const NVML_ERROR_INVALID_ARGUMENT = 2;

/** Everything gpu-settings.ts needs of one GPU, by UUID. The fake (fake-nvml.ts) implements the same. */
export interface NvmlControlApi {
  /** UUIDs of every GPU NVML sees (restoring a marker needs the GPU by UUID). */
  deviceUuids(): string[];
  /** The limit set now (nvmlDeviceGetPowerManagementLimit), milliwatts. */
  powerLimitMw(uuid: string): NvmlResult<number>;
  /** The limit the driver enforces (the lowest of all limits in force), milliwatts. */
  enforcedPowerLimitMw(uuid: string): NvmlResult<number>;
  defaultPowerLimitMw(uuid: string): NvmlResult<number>;
  powerLimitConstraintsMw(uuid: string): NvmlResult<{ min: number; max: number }>;
  setPowerLimitMw(uuid: string, mw: number): number;
  /** Supported SM clocks at the highest memory clock, and the supported memory clocks, MHz. */
  supportedSmClocksMhz(uuid: string): NvmlResult<number[]>;
  supportedMemClocksMhz(uuid: string): NvmlResult<number[]>;
  /** The clock running now (nvmlDeviceGetClockInfo; NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2). */
  clockMhz(uuid: string, clock: 1 | 2): NvmlResult<number>;
  setSmLockedClocks(uuid: string, minMhz: number, maxMhz: number): number;
  resetSmLockedClocks(uuid: string): number;
  setMemLockedClocks(uuid: string, minMhz: number, maxMhz: number): number;
  resetMemLockedClocks(uuid: string): number;
  errorString(rc: number): string;
  close(): void;
}

type KoffiFn = (...args: unknown[]) => unknown;

function outUint(fn: KoffiFn, ...args: unknown[]): NvmlResult<number> {
  const out: unknown[] = [0];
  const rc = fn(...args, out) as number;
  return rc === NVML_SUCCESS ? { rc: 0, value: Number(out[0]) } : { rc };
}

/** NVML's count-then-fill list calls (supported clocks). */
function uintList(fn: KoffiFn, ...args: unknown[]): NvmlResult<number[]> {
  const room = 512;
  const count: unknown[] = [room];
  const buf = Buffer.alloc(room * 4);
  const rc = fn(...args, count, buf) as number;
  if (rc !== NVML_SUCCESS) return { rc };
  const n = Math.min(room, Number(count[0]));
  return { rc: 0, value: Array.from({ length: n }, (_, i) => buf.readUInt32LE(i * 4)) };
}

/** Opens libnvidia-ml (initialising NVML) and binds the control calls. */
export function loadNvmlControl(libraryPath = 'libnvidia-ml.so.1'): NvmlControlApi {
  const api = loadNvmlApi(libraryPath); // defines the koffi types (nvmlDevice_t) on this thread
  const rc = api.init();
  if (rc !== NVML_SUCCESS) throw new Error(`nvmlInit failed: ${api.errorString(rc) ?? rc}`);
  const lib = koffi.load(libraryPath);
  const f = (proto: string): KoffiFn => {
    try {
      return lib.func(proto) as KoffiFn;
    } catch {
      return () => NVML_ERROR_FUNCTION_NOT_FOUND;
    }
  };
  const getLimit = f('int nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, _Out_ uint *limit)');
  const getEnforced = f('int nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, _Out_ uint *limit)');
  const getDefault = f('int nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, _Out_ uint *limit)');
  const getConstraints = f(
    'int nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, _Out_ uint *minLimit, _Out_ uint *maxLimit)',
  );
  const setLimit = f('int nvmlDeviceSetPowerManagementLimit(nvmlDevice_t device, uint limit)');
  const memClocks = f('int nvmlDeviceGetSupportedMemoryClocks(nvmlDevice_t device, _Inout_ uint *count, void *clocks)');
  const smClocks = f(
    'int nvmlDeviceGetSupportedGraphicsClocks(nvmlDevice_t device, uint memoryClockMHz, _Inout_ uint *count, void *clocks)',
  );
  const clockInfo = f('int nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, _Out_ uint *clock)');
  const lockSm = f('int nvmlDeviceSetGpuLockedClocks(nvmlDevice_t device, uint minGpuClockMHz, uint maxGpuClockMHz)');
  const resetSm = f('int nvmlDeviceResetGpuLockedClocks(nvmlDevice_t device)');
  const lockMem = f(
    'int nvmlDeviceSetMemoryLockedClocks(nvmlDevice_t device, uint minMemClockMHz, uint maxMemClockMHz)',
  );
  const resetMem = f('int nvmlDeviceResetMemoryLockedClocks(nvmlDevice_t device)');

  const handles = new Map<string, unknown>();
  const n = api.deviceCount();
  const count = n.rc === 0 ? (n.value as number) : 0;
  for (let i = 0; i < count; i++) {
    const h = api.handleByIndex(i);
    if (h.rc !== 0) continue;
    const u = api.uuid(h.value);
    if (u.rc === 0) handles.set(u.value as string, h.value);
  }
  const NOT_FOUND = { rc: 6 } as const; // NVML_ERROR_NOT_FOUND
  const on = <T>(uuid: string, call: (h: unknown) => NvmlResult<T>): NvmlResult<T> => {
    const h = handles.get(uuid);
    return h === undefined ? NOT_FOUND : call(h);
  };
  const set = (uuid: string, call: (h: unknown) => number): number => {
    const h = handles.get(uuid);
    return h === undefined ? NOT_FOUND.rc : call(h);
  };
  return {
    deviceUuids: () => [...handles.keys()],
    powerLimitMw: (u) => on(u, (h) => outUint(getLimit, h)),
    enforcedPowerLimitMw: (u) => on(u, (h) => outUint(getEnforced, h)),
    defaultPowerLimitMw: (u) => on(u, (h) => outUint(getDefault, h)),
    powerLimitConstraintsMw: (u) =>
      on(u, (h) => {
        const lo: unknown[] = [0];
        const hi: unknown[] = [0];
        const r = getConstraints(h, lo, hi) as number;
        return r === NVML_SUCCESS ? { rc: 0, value: { min: Number(lo[0]), max: Number(hi[0]) } } : { rc: r };
      }),
    setPowerLimitMw: (u, mw) => set(u, (h) => setLimit(h, mw) as number),
    supportedMemClocksMhz: (u) => on(u, (h) => uintList(memClocks, h)),
    supportedSmClocksMhz: (u) =>
      on(u, (h) => {
        const mem = uintList(memClocks, h);
        if (mem.rc !== 0) return mem;
        return uintList(smClocks, h, Math.max(...(mem.value as number[])));
      }),
    clockMhz: (u, type) => on(u, (h) => outUint(clockInfo, h, type)),
    setSmLockedClocks: (u, lo, hi) => set(u, (h) => lockSm(h, lo, hi) as number),
    resetSmLockedClocks: (u) => set(u, (h) => resetSm(h) as number),
    setMemLockedClocks: (u, lo, hi) => set(u, (h) => lockMem(h, lo, hi) as number),
    resetMemLockedClocks: (u) => set(u, (h) => resetMem(h) as number),
    errorString: (r) => api.errorString(r) ?? `NVML error ${r}`,
    close: () => void api.shutdown(),
  };
}
