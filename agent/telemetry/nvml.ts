// NVML-backed DeviceReader: discovery by UUID, one sample per visible GPU per read.
import type { GpuInfo, GpuSample } from '../../api/protocol.ts';
import { GpuAttributionError, TelemetryError } from '../../lib/errors.ts';
import {
  NVML_CLOCK_MEM,
  NVML_CLOCK_SM,
  NVML_FI_DEV_POWER_AVERAGE,
  NVML_FI_DEV_POWER_INSTANT,
  NVML_SUCCESS,
  type DeviceHandle,
  type NvmlApi,
  type NvmlResult,
} from './nvml-api.ts';
import { preciseNowMs } from './clock.ts';
import type { ListedProcess } from './processes.ts';
import type { CounterReading } from './ticks.ts';
import type { DeviceReader, GpuAttribution, TelemetryEnvironment } from './types.ts';
import { resolveVisibleDevices, type MigEntry, type VisibleDevicesEnv } from './visible-devices.ts';

/** Why a MIG setup is refused, and what to do instead. */
export function migRefusal(mig: readonly MigEntry[], partitioned: readonly string[]): string {
  const what =
    mig.length > 0
      ? `MIG instance(s) ${mig.map((m) => `${m.entry}${m.parentUuid === null ? '' : ` (on ${m.parentUuid})`}`).join(', ')}`
      : `GPU(s) ${partitioned.join(', ')} with MIG mode enabled`;
  return (
    `${what} selected: NVML has no energy counter per MIG slice, only for the whole GPU, so this run would be charged ` +
    "every slice's energy. Measure on a whole GPU, or set measurement.gpuAttribution: wholeDevice to measure the whole " +
    'parent GPU (every result then carries that warning).'
  );
}

const NVML_REASONS: Record<number, string> = {
  1: 'NVML not initialised',
  2: 'invalid argument',
  3: 'not supported on this GPU/driver',
  4: 'no permission',
  6: 'not found',
  7: 'buffer too small',
  8: 'insufficient external power',
  9: 'NVIDIA driver not loaded',
  10: 'timeout',
  12: 'NVML library not found',
  13: 'function not in this NVML version',
  14: 'corrupted infoROM',
  15: 'GPU is lost (fell off the bus)',
  16: 'GPU reset required',
  17: 'operating system call failed',
  18: 'driver/library version mismatch',
  19: 'GPU in use',
  20: 'out of memory',
  21: 'no data yet',
  27: 'not ready',
  999: 'unknown NVML error',
};

/** "unavailable: reason" for one NVML return code. */
export function nvmlUnavailable(rc: number): string {
  return `unavailable: ${NVML_REASONS[rc] ?? `NVML error ${rc}`}`;
}

interface OpenDevice {
  info: GpuInfo;
  handle: DeviceHandle;
  /** Which power reading works on this GPU, probed once at open. */
  powerField: number | null;
}

function probePowerField(api: NvmlApi, h: DeviceHandle): number | null {
  for (const field of [NVML_FI_DEV_POWER_INSTANT, NVML_FI_DEV_POWER_AVERAGE]) {
    if (api.fieldValueUint(h, field).rc === NVML_SUCCESS) return field;
  }
  return null;
}

export class NvmlReader implements DeviceReader {
  private devices: OpenDevice[] = [];
  private initialised = false;
  private readonly api: NvmlApi;
  private readonly visibility: VisibleDevicesEnv;
  private readonly attribution: GpuAttribution;

  constructor(api: NvmlApi, visibility: VisibleDevicesEnv, attribution: GpuAttribution = 'exclusive') {
    this.api = api;
    this.visibility = visibility;
    this.attribution = attribution;
  }

  open(): TelemetryEnvironment {
    const rc = this.api.init();
    if (rc !== NVML_SUCCESS) throw new TelemetryError(`NVML init failed: ${nvmlUnavailable(rc)}`);
    this.initialised = true;
    const count = this.api.deviceCount();
    if (count.rc !== NVML_SUCCESS) throw new TelemetryError(`NVML device count failed: ${nvmlUnavailable(count.rc)}`);
    const all = this.enumerate(count.value ?? 0);
    const selection = resolveVisibleDevices(
      all.map((d) => ({ index: d.info.index, uuid: d.info.uuid })),
      this.visibility,
      (entry) => this.api.migParentUuid(entry).value ?? null,
    );
    this.devices = selection.devices
      .map((v) => all.find((d) => d.info.uuid === v.uuid))
      .filter((d): d is OpenDevice => d !== undefined);
    if (this.devices.length === 0) {
      throw new TelemetryError(
        `no visible GPU: NVML sees ${all.length} device(s) but CUDA_VISIBLE_DEVICES=${this.visibility.cudaVisibleDevices ?? '(unset)'} ` +
          `NVIDIA_VISIBLE_DEVICES=${this.visibility.nvidiaVisibleDevices ?? '(unset)'} select none${selection.problems.map((p) => `; ${p}`).join('')}`,
      );
    }
    const partitioned = this.devices
      .filter((d) => this.api.migEnabled(d.handle).value === true)
      .map((d) => d.info.uuid);
    const mig = selection.mig.length > 0 || partitioned.length > 0;
    if (mig && this.attribution !== 'wholeDevice')
      throw new GpuAttributionError(migRefusal(selection.mig, partitioned));
    const cuda = this.api.cudaDriverVersion();
    return {
      source: 'nvml',
      gpus: this.devices.map((d) => d.info),
      driverVersion: this.api.driverVersion().value ?? null,
      nvmlVersion: this.api.nvmlVersion().value ?? null,
      cudaVersion: cuda.value === undefined ? null : `${Math.floor(cuda.value / 1000)}.${(cuda.value % 1000) / 10}`,
      ...(mig
        ? {
            mig:
              selection.mig.length > 0
                ? selection.mig
                : partitioned.map((u) => ({ entry: `MIG mode on ${u}`, parentUuid: u })),
          }
        : {}),
    };
  }

  private enumerate(count: number): OpenDevice[] {
    const out: OpenDevice[] = [];
    for (let index = 0; index < count; index++) {
      const h = this.api.handleByIndex(index);
      if (h.rc !== NVML_SUCCESS) throw new TelemetryError(`NVML device ${index}: ${nvmlUnavailable(h.rc)}`);
      const uuid = this.api.uuid(h.value);
      if (uuid.rc !== NVML_SUCCESS) throw new TelemetryError(`NVML device ${index} UUID: ${nvmlUnavailable(uuid.rc)}`);
      const mem = this.api.memoryBytes(h.value).value;
      const limit = this.api.powerLimitMilliwatts(h.value).value;
      out.push({
        handle: h.value,
        powerField: probePowerField(this.api, h.value),
        info: {
          index,
          uuid: uuid.value ?? '',
          name: this.api.name(h.value).value ?? 'unknown',
          memoryTotalMiB: mem === undefined ? null : mem.total / 1048576,
          powerLimitWatts: limit === undefined ? null : limit / 1000,
          smClockMaxMhz: this.api.maxClockMhz(h.value, NVML_CLOCK_SM).value ?? null,
        },
      });
    }
    return out;
  }

  read(): GpuSample[] {
    return this.devices.map((d) => this.readDevice(d));
  }

  readCounters(): CounterReading[] {
    return this.devices.map((d) => {
      const before = preciseNowMs();
      const r = this.api.totalEnergyMillijoules(d.handle);
      const mj = r.rc === NVML_SUCCESS && r.value !== undefined ? r.value : null;
      const after = preciseNowMs();
      return { gpuUuid: d.info.uuid, tMs: (before + after) / 2, energyMillijoules: mj };
    });
  }

  listProcesses(): ListedProcess[] {
    const out: ListedProcess[] = [];
    for (const d of this.devices) {
      for (const kind of ['compute', 'graphics', 'mps'] as const) {
        for (const p of this.api.processes(d.handle, kind).value ?? []) {
          out.push({
            gpuUuid: d.info.uuid,
            pid: p.pid,
            kind,
            usedMemoryMiB: p.usedGpuMemoryBytes === null ? null : p.usedGpuMemoryBytes / 1048576,
          });
        }
      }
    }
    return out;
  }

  private readDevice(d: OpenDevice): GpuSample {
    const unavailable: Record<string, string> = {};
    const take = <T>(field: string, r: NvmlResult<T>): T | null => {
      if (r.rc === NVML_SUCCESS && r.value !== undefined) return r.value;
      unavailable[field] = nvmlUnavailable(r.rc);
      return null;
    };
    const h = d.handle;
    // Energy first: the protocol's numbers hang on this counter, the rest is context.
    const tMs = Date.now();
    const energy = take('energyMillijoules', this.api.totalEnergyMillijoules(h));
    const powerMw = take(
      'powerWatts',
      d.powerField === null ? this.api.powerUsageMilliwatts(h) : this.api.fieldValueUint(h, d.powerField),
    );
    const mem = take('memoryUsedMiB', this.api.memoryBytes(h));
    const sample: GpuSample = {
      gpuUuid: d.info.uuid,
      tMs,
      energyMillijoules: energy,
      powerWatts: powerMw === null ? null : powerMw / 1000,
      utilizationGpuPct: take('utilizationGpuPct', this.api.utilizationGpuPct(h)),
      memoryUsedMiB: mem === null ? null : mem.used / 1048576,
      smClockMhz: take('smClockMhz', this.api.clockMhz(h, NVML_CLOCK_SM)),
      memClockMhz: take('memClockMhz', this.api.clockMhz(h, NVML_CLOCK_MEM)),
      temperatureC: take('temperatureC', this.api.temperatureC(h)),
      throttleReasons: take('throttleReasons', this.api.throttleReasons(h)),
    };
    if (Object.keys(unavailable).length > 0) sample.unavailable = unavailable;
    return sample;
  }

  close(): void {
    if (this.initialised) this.api.shutdown();
    this.initialised = false;
  }
}
