// NVML-backed DeviceReader: discovery by UUID, one sample per visible GPU per read.
import type { GpuInfo, GpuSample } from '../../api/protocol.ts';
import { TelemetryError } from '../../lib/errors.ts';
import {
  NVML_CLOCK_MEM, NVML_CLOCK_SM, NVML_FI_DEV_POWER_AVERAGE, NVML_FI_DEV_POWER_INSTANT, NVML_SUCCESS,
  type DeviceHandle, type NvmlApi, type NvmlResult,
} from './nvml-api.ts';
import type { DeviceReader, TelemetryEnvironment } from './types.ts';
import { selectVisibleDevices, type VisibleDevicesEnv } from './visible-devices.ts';

const NVML_REASONS: Record<number, string> = {
  1: 'NVML not initialised', 2: 'invalid argument', 3: 'not supported on this GPU/driver',
  4: 'no permission', 6: 'not found', 7: 'buffer too small', 8: 'insufficient external power',
  9: 'NVIDIA driver not loaded', 10: 'timeout', 12: 'NVML library not found',
  13: 'function not in this NVML version', 14: 'corrupted infoROM', 15: 'GPU is lost (fell off the bus)',
  16: 'GPU reset required', 17: 'operating system call failed', 18: 'driver/library version mismatch',
  19: 'GPU in use', 20: 'out of memory', 21: 'no data yet', 27: 'not ready', 999: 'unknown NVML error',
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

  constructor(api: NvmlApi, visibility: VisibleDevicesEnv) {
    this.api = api;
    this.visibility = visibility;
  }

  open(): TelemetryEnvironment {
    const rc = this.api.init();
    if (rc !== NVML_SUCCESS) throw new TelemetryError(`NVML init failed: ${nvmlUnavailable(rc)}`);
    this.initialised = true;
    const count = this.api.deviceCount();
    if (count.rc !== NVML_SUCCESS) throw new TelemetryError(`NVML device count failed: ${nvmlUnavailable(count.rc)}`);
    const all = this.enumerate(count.value ?? 0);
    const visible = selectVisibleDevices(all.map((d) => ({ index: d.info.index, uuid: d.info.uuid })), this.visibility);
    this.devices = visible.map((v) => all.find((d) => d.info.uuid === v.uuid)).filter((d): d is OpenDevice => d !== undefined);
    if (this.devices.length === 0) {
      throw new TelemetryError(
        `no visible GPU: NVML sees ${all.length} device(s) but CUDA_VISIBLE_DEVICES=${this.visibility.cudaVisibleDevices ?? '(unset)'} ` +
          `NVIDIA_VISIBLE_DEVICES=${this.visibility.nvidiaVisibleDevices ?? '(unset)'} select none`,
      );
    }
    const cuda = this.api.cudaDriverVersion();
    return {
      source: 'nvml',
      gpus: this.devices.map((d) => d.info),
      driverVersion: this.api.driverVersion().value ?? null,
      nvmlVersion: this.api.nvmlVersion().value ?? null,
      cudaVersion: cuda.value === undefined ? null : `${Math.floor(cuda.value / 1000)}.${(cuda.value % 1000) / 10}`,
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
    const powerMw = take('powerWatts', d.powerField === null ? this.api.powerUsageMilliwatts(h) : this.api.fieldValueUint(h, d.powerField));
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
