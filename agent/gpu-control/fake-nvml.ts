// A fake NVML for the GPU-settings code: the simulated GPU's control side. Its device state can live
// in a JSON file (LLEM_SIMULATED_GPU_STATE), so it outlives the process like a real GPU's does:
// that is how tests kill an agent with SIGKILL and see the next one restore what it left. A shared
// cell (simulatedSettingsCell) carries the limit and locked SM clock to the simulated power model.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../lib/atomic-file.ts';
import type { NvmlResult } from '../telemetry/nvml-api.ts';
import { NVML_ERROR_INVALID_ARGUMENT, NVML_ERROR_NO_PERMISSION, type NvmlControlApi } from './nvml-control.ts';

export interface FakeDevice {
  uuid: string;
  powerLimitMw: number;
  defaultPowerLimitMw: number;
  minPowerLimitMw: number;
  maxPowerLimitMw: number;
  smLocked: { min: number; max: number } | null;
  memLocked: { min: number; max: number } | null;
  supportedSmMhz: number[];
  supportedMemMhz: number[];
}

export interface FakeNvmlOptions {
  uuids: string[];
  /** JSON file holding the devices' state across processes; absent: in memory. */
  stateFile?: string | undefined;
  /** false: every set call answers NVML_ERROR_NO_PERMISSION (not root). */
  permitted?: boolean;
  /** Shared with the simulated sampler: [power limit W, locked SM min MHz (0: none)]. */
  cell?: Int32Array | undefined;
  /** Calls made, in order (tests assert on them). */
  log?: string[];
}

/** An H100 SXM's envelope: 200-700 W, SM clocks 210-1980 MHz. */
export function fakeDevice(uuid: string): FakeDevice {
  const sm: number[] = [];
  for (let c = 1980; c >= 210; c -= 15) sm.push(c);
  return {
    uuid,
    powerLimitMw: 700_000,
    defaultPowerLimitMw: 700_000,
    minPowerLimitMw: 200_000,
    maxPowerLimitMw: 700_000,
    smLocked: null,
    memLocked: null,
    supportedSmMhz: sm,
    supportedMemMhz: [2619],
  };
}

/** [power limit W, locked SM min MHz]: read by the simulated GPU in its worker thread. */
export function simulatedSettingsCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(8));
}

export class FakeNvml implements NvmlControlApi {
  private devices: Map<string, FakeDevice>;
  readonly calls: string[];

  constructor(private readonly opts: FakeNvmlOptions) {
    this.calls = opts.log ?? [];
    this.devices = new Map(opts.uuids.map((u) => [u, fakeDevice(u)]));
    const file = opts.stateFile;
    if (file !== undefined && existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as FakeDevice[];
      for (const d of saved) this.devices.set(d.uuid, d);
    }
    this.sync();
  }

  /** Test hook: the device as the "driver" holds it now. */
  device(uuid: string): FakeDevice | undefined {
    const d = this.devices.get(uuid);
    return d === undefined ? undefined : structuredClone(d);
  }

  private sync(): void {
    if (this.opts.stateFile !== undefined)
      writeFileAtomic(this.opts.stateFile, JSON.stringify([...this.devices.values()], null, 2));
    const first = [...this.devices.values()][0];
    if (this.opts.cell !== undefined && first !== undefined) {
      Atomics.store(this.opts.cell, 0, Math.round(first.powerLimitMw / 1000));
      Atomics.store(this.opts.cell, 1, first.smLocked?.min ?? 0);
    }
  }

  private get<T>(uuid: string, pick: (d: FakeDevice) => T): NvmlResult<T> {
    const d = this.devices.get(uuid);
    return d === undefined ? { rc: 6 } : { rc: 0, value: pick(d) };
  }

  private change(uuid: string, what: string, apply: (d: FakeDevice) => boolean): number {
    this.calls.push(`${what} ${uuid}`);
    const d = this.devices.get(uuid);
    if (d === undefined) return 6;
    if (this.opts.permitted === false) return NVML_ERROR_NO_PERMISSION;
    if (!apply(d)) return NVML_ERROR_INVALID_ARGUMENT;
    this.sync();
    return 0;
  }

  deviceUuids(): string[] {
    return [...this.devices.keys()];
  }
  powerLimitMw(uuid: string): NvmlResult<number> {
    return this.get(uuid, (d) => d.powerLimitMw);
  }
  enforcedPowerLimitMw(uuid: string): NvmlResult<number> {
    return this.get(uuid, (d) => d.powerLimitMw);
  }
  defaultPowerLimitMw(uuid: string): NvmlResult<number> {
    return this.get(uuid, (d) => d.defaultPowerLimitMw);
  }
  powerLimitConstraintsMw(uuid: string): NvmlResult<{ min: number; max: number }> {
    return this.get(uuid, (d) => ({ min: d.minPowerLimitMw, max: d.maxPowerLimitMw }));
  }
  setPowerLimitMw(uuid: string, mw: number): number {
    return this.change(uuid, `setPowerLimit ${mw}`, (d) => {
      if (mw < d.minPowerLimitMw || mw > d.maxPowerLimitMw) return false;
      d.powerLimitMw = mw;
      return true;
    });
  }
  supportedSmClocksMhz(uuid: string): NvmlResult<number[]> {
    return this.get(uuid, (d) => [...d.supportedSmMhz]);
  }
  supportedMemClocksMhz(uuid: string): NvmlResult<number[]> {
    return this.get(uuid, (d) => [...d.supportedMemMhz]);
  }
  clockMhz(uuid: string, clock: 1 | 2): NvmlResult<number> {
    // A locked clock runs at its lower end when idle; unlocked, the idle clocks of an H100.
    return this.get(uuid, (d) => (clock === 1 ? (d.smLocked?.min ?? 345) : (d.memLocked?.min ?? 2619)));
  }
  setSmLockedClocks(uuid: string, min: number, max: number): number {
    return this.change(uuid, `lockSm ${min}-${max}`, (d) => {
      d.smLocked = { min, max };
      return min <= max;
    });
  }
  resetSmLockedClocks(uuid: string): number {
    return this.change(uuid, 'resetSm', (d) => {
      d.smLocked = null;
      return true;
    });
  }
  setMemLockedClocks(uuid: string, min: number, max: number): number {
    return this.change(uuid, `lockMem ${min}-${max}`, (d) => {
      d.memLocked = { min, max };
      return min <= max;
    });
  }
  resetMemLockedClocks(uuid: string): number {
    return this.change(uuid, 'resetMem', (d) => {
      d.memLocked = null;
      return true;
    });
  }
  errorString(rc: number): string {
    return rc === NVML_ERROR_NO_PERMISSION ? 'Insufficient Permissions' : `fake NVML error ${rc}`;
  }
  close(): void {}
}
