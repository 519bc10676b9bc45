// GPU operating conditions over the measurement window: throttle reasons, SM clock, temperature.
// A window that ran throttled (thermal or power) or at a clock well below the GPU's maximum
// measured a different machine than the one the configuration names: the run says so.
import type { GpuInfo, GpuSample } from '../../api/protocol.ts';

/** nvmlClocksEventReasons bits (nvml.h). */
export const THROTTLE_REASONS: ReadonlyArray<[number, string]> = [
  [0x1, 'gpu idle'],
  [0x2, 'applications clocks setting'],
  [0x4, 'software power cap'],
  [0x8, 'hardware slowdown'],
  [0x10, 'sync boost'],
  [0x20, 'software thermal slowdown'],
  [0x40, 'hardware thermal slowdown'],
  [0x80, 'hardware power brake slowdown'],
  [0x100, 'display clock setting'],
];
const IDLE = 0x1;
/** Thermal or power limits: the reasons that change what a configuration costs. */
export const THERMAL_POWER_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80;

export function throttleReasonNames(mask: number): string[] {
  return THROTTLE_REASONS.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
}

interface PerGpu {
  samples: number;
  throttled: number;
  throttleMask: number;
  lowClock: number;
  busy: number;
  minClockMhz: number | null;
  maxTemperatureC: number | null;
}

export interface ConditionsOptions {
  /** A non-idle sample whose SM clock is below this fraction of the GPU's maximum counts as slow. */
  minClockFraction: number;
  /** Slow samples above this share of the busy samples make a warning (a single dip does not). */
  lowClockShare?: number;
}

export class WindowConditions {
  private readonly gpus = new Map<string, PerGpu>();
  private startMs: number | null = null;
  private endMs: number | null = null;
  constructor(
    private readonly info: readonly GpuInfo[],
    private readonly opts: ConditionsOptions,
  ) {}

  open(startMs: number): void {
    this.startMs = startMs;
  }

  close(endMs: number): void {
    this.endMs = endMs;
  }

  /** Batches arrive up to a second late: samples count by their own time, not by arrival. */
  add(samples: readonly GpuSample[]): void {
    if (this.startMs === null) return;
    for (const s of samples) {
      if (s.tMs < this.startMs || (this.endMs !== null && s.tMs > this.endMs)) continue;
      this.addSample(s);
    }
  }

  private addSample(s: GpuSample): void {
    const g = this.gpus.get(s.gpuUuid) ?? {
      samples: 0,
      throttled: 0,
      throttleMask: 0,
      lowClock: 0,
      busy: 0,
      minClockMhz: null,
      maxTemperatureC: null,
    };
    this.gpus.set(s.gpuUuid, g);
    g.samples++;
    const reasons = s.throttleReasons ?? 0;
    if ((reasons & THERMAL_POWER_MASK) !== 0) g.throttled++;
    g.throttleMask |= reasons;
    if (s.temperatureC !== null) g.maxTemperatureC = Math.max(g.maxTemperatureC ?? s.temperatureC, s.temperatureC);
    if ((reasons & IDLE) !== 0 || s.smClockMhz === null) return;
    g.busy++;
    g.minClockMhz = Math.min(g.minClockMhz ?? s.smClockMhz, s.smClockMhz);
    const max = this.info.find((i) => i.uuid === s.gpuUuid)?.smClockMaxMhz ?? null;
    if (max !== null && s.smClockMhz < this.opts.minClockFraction * max) g.lowClock++;
  }

  warnings(): string[] {
    const out: string[] = [];
    const share = this.opts.lowClockShare ?? 0.05;
    for (const [uuid, g] of this.gpus) {
      if (g.throttled > 0) {
        const names = throttleReasonNames(g.throttleMask & THERMAL_POWER_MASK).join(', ');
        out.push(
          `GPU ${uuid} was throttled (${names}) in ${g.throttled} of ${g.samples} window samples` +
            `${g.maxTemperatureC === null ? '' : `, up to ${g.maxTemperatureC} °C`}: energy reflects a throttled GPU`,
        );
      }
      if (g.busy > 0 && g.lowClock / g.busy > share) {
        const max = this.info.find((i) => i.uuid === uuid)?.smClockMaxMhz;
        out.push(
          `GPU ${uuid} ran its SM clock below ${Math.round(this.opts.minClockFraction * 100)}% of its ${max} MHz maximum ` +
            `in ${g.lowClock} of ${g.busy} busy window samples (lowest ${g.minClockMhz} MHz; measurement.minClockFraction)`,
        );
      }
    }
    return out;
  }
}
