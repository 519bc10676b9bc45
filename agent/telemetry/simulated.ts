// A simulated GPU: a power model driven by the requests in flight. Everything it produces says
// "simulated" (the source, the GPU name, the UUID) so it can never pass for a measurement.
import type { GpuSample, Mark } from '../../api/protocol.ts';
import { preciseNowMs } from './clock.ts';
import type { ListedProcess } from './processes.ts';
import type { CounterReading } from './ticks.ts';
import type { DeviceReader, TelemetryEnvironment } from './types.ts';

export interface SimulatedGpuOptions {
  gpuCount?: number | undefined;
  /**
   * The machine-wide index of this reader's first GPU: replica r of a run with g GPUs each reads GPUs
   * [r*g, (r+1)*g), so every replica's simulated GPUs have their own UUIDs, as separate real GPUs do.
   */
  firstDevice?: number | undefined;
  /**
   * Constant board power per simulated GPU, by machine-wide index (W): each device then draws its own power,
   * idle or busy, so per-GPU sums can be checked against what each device produced. Absent: the load model.
   */
  deviceWatts?: number[] | undefined;
  idleWatts?: number | undefined;
  maxWatts?: number | undefined;
  /** Requests in flight at which the simulated GPU is fully busy. */
  saturationInFlight?: number | undefined;
  /** Busy-wait this long per read, standing in for NVML's blocking energy call (benchmarks). */
  readCostMs?: number | undefined;
  /** The counter steps this often, like NVML's (~100 ms on H100/H200); 0: it moves on every read. */
  counterTickMs?: number | undefined;
  /** Throttle reasons every sample reports (NVML bit mask), and the SM clock under load. */
  throttleReasons?: number | undefined;
  smClockMhz?: number | undefined;
  /** Processes the simulated driver lists on every GPU (tests of the exclusivity check). */
  processes?: Array<{ pid: number; usedMemoryMiB?: number | undefined }> | undefined;
  /**
   * Shared with the fake NVML control (agent/gpu-control/fake-nvml.ts): [power limit W, locked SM MHz],
   * 0 = not set. The power model never draws above the limit; a locked clock is the clock reported.
   */
  settings?: Int32Array | undefined;
  /** Block the sampler thread this long at this mark: a hung NVML call, for tests of the mark timeout. */
  stallAtMark?: { mark: Mark; ms: number } | undefined;
}

export const SIMULATED_DEFAULTS = {
  gpuCount: 1,
  firstDevice: 0,
  idleWatts: 70,
  maxWatts: 700,
  saturationInFlight: 64,
  readCostMs: 0,
  counterTickMs: 100,
  throttleReasons: 0,
  smClockMhz: 1980,
};
type SimulatedSettings = typeof SIMULATED_DEFAULTS &
  Pick<SimulatedGpuOptions, 'processes' | 'stallAtMark' | 'settings' | 'deviceWatts'>;

/** Shared between the main thread (writes in-flight count) and the sampler worker (reads it). */
export function createLoadCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/** Steady-state power at a load fraction in [0, 1]: idle plus a concave rise to the cap. */
export function simulatedPowerWatts(load: number, idleWatts: number, maxWatts: number): number {
  const x = Math.min(1, Math.max(0, load));
  return idleWatts + (maxWatts - idleWatts) * Math.sqrt(x);
}

export class SimulatedReader implements DeviceReader {
  private readonly opts: SimulatedSettings;
  private readonly load: Int32Array;
  private energyMj: number[] = [];
  /** What the counter shows: energyMj as of its last step. */
  private shownMj: number[] = [];
  private nextStepMs = 0;
  private powerW: number[] = [];
  private lastMs = 0;
  private lastWallMs = 0;

  constructor(load: Int32Array, opts: SimulatedGpuOptions = {}) {
    this.load = load;
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...SIMULATED_DEFAULTS, ...given };
  }

  open(): TelemetryEnvironment {
    const n = this.opts.gpuCount;
    this.energyMj = new Array<number>(n).fill(1_000_000);
    this.shownMj = [...this.energyMj];
    this.nextStepMs = preciseNowMs() + this.opts.counterTickMs;
    this.powerW = Array.from({ length: n }, (_, i) => this.fixedWatts(i) ?? this.opts.idleWatts);
    this.lastMs = performance.now();
    this.lastWallMs = preciseNowMs();
    const gpus = Array.from({ length: n }, (_, index) => ({
      index,
      uuid: this.uuid(index),
      name: 'Simulated GPU (simulated)',
      memoryTotalMiB: 81559,
      powerLimitWatts: this.opts.maxWatts,
      smClockMaxMhz: 1980,
    }));
    return { source: 'simulated', gpus, driverVersion: 'simulated', nvmlVersion: 'simulated', cudaVersion: null };
  }

  /**
   * Advance the power model to now; the counter shows the energy as of its last step edge, as NVML's does:
   * interpolated to the edge's moment, so a reader that comes late (a descheduled thread) still sees the
   * value the counter took when it stepped.
   */
  private advance(): number {
    const now = performance.now();
    const wall = preciseNowMs();
    const dtMs = Math.max(0, now - this.lastMs);
    this.lastMs = now;
    const before = [...this.energyMj];
    const load = Atomics.load(this.load, 0) / this.opts.saturationInFlight;
    const target = simulatedPowerWatts(load, this.opts.idleWatts, this.capWatts());
    // First-order lag (~300 ms): board power does not jump with the load.
    const alpha = 1 - Math.exp(-dtMs / 300);
    this.powerW = this.powerW.map((p, i) => {
      const next = this.fixedWatts(i) ?? p + (target - p) * alpha;
      this.energyMj[i] = (this.energyMj[i] ?? 0) + ((p + next) / 2) * dtMs; // W x ms = mJ
      return next;
    });
    const tick = this.opts.counterTickMs;
    if (tick <= 0) this.shownMj = this.energyMj.map((e) => Math.round(e));
    else if (wall >= this.nextStepMs) {
      const stepAtMs = this.nextStepMs + Math.floor((wall - this.nextStepMs) / tick) * tick;
      const span = wall - this.lastWallMs;
      const f = span > 0 ? Math.min(1, Math.max(0, (stepAtMs - this.lastWallMs) / span)) : 1;
      this.shownMj = this.energyMj.map((e, i) => Math.round((before[i] ?? e) + (e - (before[i] ?? e)) * f));
      this.nextStepMs = stepAtMs + tick;
    }
    this.lastWallMs = wall;
    if (this.opts.readCostMs > 0) busyWait(this.opts.readCostMs);
    return load;
  }

  /** Device i's constant power (deviceWatts), or undefined: it follows the load model. */
  private fixedWatts(i: number): number | undefined {
    return this.opts.deviceWatts?.[this.opts.firstDevice + i];
  }

  private uuid(i: number): string {
    return simulatedUuid(this.opts.firstDevice + i);
  }

  /** maxWatts, or the power limit the fake NVML set when lower. */
  private capWatts(): number {
    const cap = this.opts.settings === undefined ? 0 : Atomics.load(this.opts.settings, 0);
    return cap > 0 ? Math.min(this.opts.maxWatts, Math.max(this.opts.idleWatts, cap)) : this.opts.maxWatts;
  }

  private lockedSmMhz(): number {
    return this.opts.settings === undefined ? 0 : Atomics.load(this.opts.settings, 1);
  }

  read(): GpuSample[] {
    const load = this.advance();
    const locked = this.lockedSmMhz();
    const tMs = Date.now();
    return this.powerW.map((p, i) => ({
      gpuUuid: this.uuid(i),
      tMs,
      energyMillijoules: this.shownMj[i] ?? null,
      powerWatts: p,
      utilizationGpuPct: Math.round(Math.min(1, load) * 100),
      memoryUsedMiB: 70000,
      smClockMhz: locked > 0 ? locked : load > 0 ? this.opts.smClockMhz : 345,
      memClockMhz: 2619,
      temperatureC: 30 + Math.round(p / 20),
      throttleReasons: load > 0 ? this.opts.throttleReasons : 0x1,
    }));
  }

  readCounters(): CounterReading[] {
    const before = preciseNowMs();
    this.advance();
    const tMs = (before + preciseNowMs()) / 2;
    return this.shownMj.map((e, i) => ({ gpuUuid: this.uuid(i), tMs, energyMillijoules: e }));
  }

  listProcesses(): ListedProcess[] {
    const procs = this.opts.processes ?? [];
    return this.powerW.flatMap((_, i) =>
      procs.map((p) => ({
        gpuUuid: this.uuid(i),
        pid: p.pid,
        kind: 'compute',
        usedMemoryMiB: p.usedMemoryMiB ?? null,
      })),
    );
  }

  get knownTickPeriodMs(): number | undefined {
    return this.opts.counterTickMs > 0 ? this.opts.counterTickMs : undefined;
  }

  beforeMark(mark: Mark | undefined): void {
    const stall = this.opts.stallAtMark;
    if (stall !== undefined && stall.mark === mark) busyWait(stall.ms);
  }

  close(): void {}
}

export const simulatedUuid = (i: number): string => `GPU-simulated-${String(i).padStart(4, '0')}`;

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin: this is exactly the cost the worker thread exists to absorb
  }
}
