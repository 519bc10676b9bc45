// A simulated GPU: a power model driven by the requests in flight. Everything it produces says
// "simulated" (the source, the GPU name, the UUID) so it can never pass for a measurement.
import type { GpuSample } from '../../api/protocol.ts';
import type { DeviceReader, TelemetryEnvironment } from './types.ts';

export interface SimulatedGpuOptions {
  gpuCount?: number | undefined;
  idleWatts?: number | undefined;
  maxWatts?: number | undefined;
  /** Requests in flight at which the simulated GPU is fully busy. */
  saturationInFlight?: number | undefined;
  /** Busy-wait this long per read, standing in for NVML's blocking energy call (benchmarks). */
  readCostMs?: number | undefined;
}

export const SIMULATED_DEFAULTS = { gpuCount: 1, idleWatts: 70, maxWatts: 700, saturationInFlight: 64, readCostMs: 0 };

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
  private readonly opts: typeof SIMULATED_DEFAULTS;
  private readonly load: Int32Array;
  private energyMj: number[] = [];
  private powerW: number[] = [];
  private lastMs = 0;

  constructor(load: Int32Array, opts: SimulatedGpuOptions = {}) {
    this.load = load;
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...SIMULATED_DEFAULTS, ...given };
  }

  open(): TelemetryEnvironment {
    const n = this.opts.gpuCount;
    this.energyMj = new Array<number>(n).fill(1_000_000);
    this.powerW = new Array<number>(n).fill(this.opts.idleWatts);
    this.lastMs = performance.now();
    const gpus = Array.from({ length: n }, (_, index) => ({
      index,
      uuid: `GPU-simulated-${String(index).padStart(4, '0')}`,
      name: 'Simulated GPU (simulated)',
      memoryTotalMiB: 81559,
      powerLimitWatts: this.opts.maxWatts,
      smClockMaxMhz: 1980,
    }));
    return { source: 'simulated', gpus, driverVersion: 'simulated', nvmlVersion: 'simulated', cudaVersion: null };
  }

  read(): GpuSample[] {
    const now = performance.now();
    const dtMs = Math.max(0, now - this.lastMs);
    this.lastMs = now;
    if (this.opts.readCostMs > 0) busyWait(this.opts.readCostMs);
    const load = Atomics.load(this.load, 0) / this.opts.saturationInFlight;
    const target = simulatedPowerWatts(load, this.opts.idleWatts, this.opts.maxWatts);
    // First-order lag (~300 ms): board power does not jump with the load.
    const alpha = 1 - Math.exp(-dtMs / 300);
    const tMs = Date.now();
    return this.powerW.map((p, i) => {
      const next = p + (target - p) * alpha;
      this.powerW[i] = next;
      this.energyMj[i] = (this.energyMj[i] ?? 0) + ((p + next) / 2) * dtMs; // W x ms = mJ
      return {
        gpuUuid: `GPU-simulated-${String(i).padStart(4, '0')}`,
        tMs,
        energyMillijoules: Math.round(this.energyMj[i] ?? 0),
        powerWatts: next,
        utilizationGpuPct: Math.round(Math.min(1, load) * 100),
        memoryUsedMiB: 70000,
        smClockMhz: load > 0 ? 1980 : 345,
        memClockMhz: 2619,
        temperatureC: 30 + Math.round(next / 20),
        throttleReasons: 0,
      };
    });
  }

  close(): void {}
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin: this is exactly the cost the worker thread exists to absorb
  }
}
