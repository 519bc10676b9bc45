// Applying a configuration's GPU settings (power limit, locked SM / memory clocks), reading back
// what the driver made of them, and restoring what was there before, on every exit path
// (docs/adr/0024):
//   - before anything changes, a marker file per GPU records the previous values (atomic write);
//   - success, failure and SIGTERM restore in runAgent's `finally`; a crash restores in a
//     synchronous process 'exit' hook (NVML calls through koffi are synchronous);
//   - SIGKILL runs nothing: the marker stays, and the next agent or `llem run` that touches that
//     GPU restores from it before it applies anything (restoreFromMarkers).
// NVML has no getter for locked clocks, so "previous" for clocks is "unlocked": a restore resets
// them. Power limits are restored to the exact previous value, and read back to prove it.
import { mkdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import type { RequestedGpuSettings } from '../../api/spec-gpu.ts';
import { writeFileAtomic } from '../../lib/atomic-file.ts';
import { GpuSettingsError, GpuSettingsRefusedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { markerFile, readMarker, restoreFromMarkers, restoreOne, value, watts, type Marker } from './markers.ts';
import { NVML_ERROR_NO_PERMISSION, NVML_ERROR_NOT_SUPPORTED, type NvmlControlApi } from './nvml-control.ts';

export { restoreFromMarkers };

/** Where markers live unless LLEM_GPU_STATE_DIR says otherwise: a host path, so it outlives the agent. */
export const DEFAULT_MARKER_DIR = '/var/lib/llem/gpu-state';

export interface ClockRange {
  min: number;
  max: number;
}

/** One GPU's settings as requested and as the driver reports them after applying (results carry this). */
export interface AppliedGpuSettings {
  gpuUuid: string;
  requested: RequestedGpuSettings;
  previous: { powerLimitWatts: number | null };
  effective: {
    /** nvmlDeviceGetPowerManagementLimit after the set. */
    powerLimitWatts: number | null;
    /** nvmlDeviceGetEnforcedPowerLimit: the lowest limit in force (another may be lower than ours). */
    enforcedPowerLimitWatts: number | null;
    /** The locked range as set (NVML cannot read it back), snapped to supported clocks. */
    smClockMHz: ClockRange | null;
    memClockMHz: ClockRange | null;
    /** SM / memory clock read right after locking (idle: the lower end of a locked range). */
    smClockNowMHz: number | null;
    memClockNowMHz: number | null;
  };
  constraints: { minPowerLimitWatts: number; maxPowerLimitWatts: number } | null;
  notes: string[];
}

function check(api: NvmlControlApi, rc: number, what: string, uuid: string): void {
  if (rc === 0) return;
  const why = api.errorString(rc);
  if (rc === NVML_ERROR_NO_PERMISSION)
    throw new GpuSettingsRefusedError(
      `${what} on ${uuid}: NVML says ${why}: changing GPU settings needs root (or CAP_SYS_ADMIN); run llem as root, or drop spec.gpu`,
    );
  if (rc === NVML_ERROR_NOT_SUPPORTED)
    throw new GpuSettingsRefusedError(
      `${what} on ${uuid}: NVML says ${why}: this GPU does not support it (an H100 refuses locked memory clocks); remove the field`,
    );
  throw new GpuSettingsError(`${what} on ${uuid} failed: ${why} (NVML ${rc})`);
}

function clockProblem(field: string, want: ClockRange, supported: number[] | null, uuid: string): string | null {
  if (supported === null || supported.length === 0) return null;
  const lo = Math.min(...supported);
  const hi = Math.max(...supported);
  if (want.min >= lo && want.max <= hi) return null;
  return `${field}: ${want.min === want.max ? want.min : `${want.min}-${want.max}`} MHz is outside ${uuid}'s supported range ${lo}-${hi} MHz`;
}

/**
 * Problems with the requested settings on these GPUs, one line each naming the field (empty: fine).
 * Unknown constraints (NVML cannot tell) are no problem here: the set call is the last judge.
 */
export function constraintProblems(api: NvmlControlApi, uuids: readonly string[], req: RequestedGpuSettings): string[] {
  const out: string[] = [];
  for (const u of uuids) {
    if (req.powerLimitWatts !== undefined) {
      const c = value(api.powerLimitConstraintsMw(u));
      const mw = req.powerLimitWatts * 1000;
      if (c !== null && (mw < c.min || mw > c.max))
        out.push(
          `gpu.powerLimitWatts: ${req.powerLimitWatts} W is outside ${u}'s range ${watts(c.min)}-${watts(c.max)} W (nvmlDeviceGetPowerManagementLimitConstraints)`,
        );
    }
    if (req.smClockMHz !== undefined) {
      const p = clockProblem('gpu.smClockMHz', req.smClockMHz, value(api.supportedSmClocksMhz(u)), u);
      if (p !== null) out.push(p);
    }
    if (req.memClockMHz !== undefined) {
      const p = clockProblem('gpu.memClockMHz', req.memClockMHz, value(api.supportedMemClocksMhz(u)), u);
      if (p !== null) out.push(p);
    }
  }
  return out;
}

/** The supported clock nearest `mhz` (the driver snaps a lock to one of these). */
function snap(mhz: number, supported: number[] | null): number {
  if (supported === null || supported.length === 0) return mhz;
  return supported.reduce((best, c) => (Math.abs(c - mhz) < Math.abs(best - mhz) ? c : best), supported[0] as number);
}

export interface GpuSettingsOptions {
  markerDir: string;
  logger?: Logger | undefined;
}

/** Settings applied to a set of GPUs, until restore(). */
export class GpuSettingsSession {
  readonly applied: AppliedGpuSettings[] = [];
  /** What this process changed, per GPU: a session restores only that (a marker restores all it names). */
  private readonly changed = new Map<string, { powerLimitSet: boolean; smLocked: boolean; memLocked: boolean }>();
  /** Lines about markers of killed agents restored before applying. */
  readonly restoredBefore: string[];
  private restored = false;
  private readonly exitHook = (): void => {
    try {
      this.restore();
    } catch {
      // The marker stays: the next agent on this GPU restores from it.
    }
  };

  private constructor(
    private readonly api: NvmlControlApi,
    private readonly opts: GpuSettingsOptions,
    restoredBefore: string[],
  ) {
    this.restoredBefore = restoredBefore;
  }

  /**
   * Validate against the device's constraints, restore what a killed agent left, write markers, apply,
   * read back. Any failure restores what was already applied and throws: GpuSettingsRefusedError
   * (exit 2) for settings this GPU or this process may not take, GpuSettingsError otherwise.
   */
  static apply(
    api: NvmlControlApi,
    uuids: readonly string[],
    req: RequestedGpuSettings,
    opts: GpuSettingsOptions,
  ): GpuSettingsSession {
    const problems = constraintProblems(api, uuids, req);
    if (problems.length > 0) throw new GpuSettingsRefusedError(problems.join('; '));
    const before = restoreFromMarkers(api, opts.markerDir, uuids, opts.logger);
    const session = new GpuSettingsSession(api, opts, before);
    try {
      mkdirSync(opts.markerDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new GpuSettingsRefusedError(
        `cannot create the GPU settings marker directory ${opts.markerDir} (${(err as NodeJS.ErrnoException).code ?? String(err)}); ` +
          'set LLEM_GPU_STATE_DIR to a writable directory that outlives the agent',
        { cause: err },
      );
    }
    process.on('exit', session.exitHook);
    try {
      for (const u of uuids) session.applyOne(u, req);
    } catch (err) {
      try {
        session.restore();
      } catch (restoreErr) {
        opts.logger?.error({ err: restoreErr }, 'GPU settings not restored after a failed apply (marker kept)');
      }
      throw err;
    }
    return session;
  }

  private applyOne(u: string, req: RequestedGpuSettings): void {
    const api = this.api;
    const previous = value(api.powerLimitMw(u));
    const marker: Marker = {
      version: 1,
      gpuUuid: u,
      hostname: hostname(),
      pid: process.pid,
      startedAt: new Date().toISOString(),
      previousPowerLimitMw: previous,
      powerLimitSet: req.powerLimitWatts !== undefined,
      smLocked: req.smClockMHz !== undefined,
      memLocked: req.memClockMHz !== undefined,
    };
    // The marker first: a SIGKILL between a set call and the next line must still be undone.
    writeFileAtomic(markerFile(this.opts.markerDir, u), JSON.stringify(marker, null, 2) + '\n');
    const c = value(api.powerLimitConstraintsMw(u));
    const applied: AppliedGpuSettings = {
      gpuUuid: u,
      requested: req,
      previous: { powerLimitWatts: previous === null ? null : watts(previous) },
      effective: {
        powerLimitWatts: null,
        enforcedPowerLimitWatts: null,
        smClockMHz: null,
        memClockMHz: null,
        smClockNowMHz: null,
        memClockNowMHz: null,
      },
      constraints: c === null ? null : { minPowerLimitWatts: watts(c.min), maxPowerLimitWatts: watts(c.max) },
      notes: [],
    };
    this.applied.push(applied);
    const changed = { powerLimitSet: false, smLocked: false, memLocked: false };
    this.changed.set(u, changed);
    if (req.powerLimitWatts !== undefined) {
      check(api, api.setPowerLimitMw(u, req.powerLimitWatts * 1000), `set power limit ${req.powerLimitWatts} W`, u);
      changed.powerLimitSet = true;
    }
    if (req.smClockMHz !== undefined) {
      const r = req.smClockMHz;
      check(api, api.setSmLockedClocks(u, r.min, r.max), `lock SM clocks ${r.min}-${r.max} MHz`, u);
      changed.smLocked = true;
      const sup = value(api.supportedSmClocksMhz(u));
      applied.effective.smClockMHz = { min: snap(r.min, sup), max: snap(r.max, sup) };
    }
    if (req.memClockMHz !== undefined) {
      const r = req.memClockMHz;
      check(api, api.setMemLockedClocks(u, r.min, r.max), `lock memory clocks ${r.min}-${r.max} MHz`, u);
      changed.memLocked = true;
      const sup = value(api.supportedMemClocksMhz(u));
      applied.effective.memClockMHz = { min: snap(r.min, sup), max: snap(r.max, sup) };
    }
    this.readBack(applied);
  }

  private readBack(a: AppliedGpuSettings): void {
    const u = a.gpuUuid;
    const limit = value(this.api.powerLimitMw(u));
    const enforced = settledEnforcedMw(this.api, u, limit);
    a.effective.powerLimitWatts = limit === null ? null : watts(limit);
    a.effective.enforcedPowerLimitWatts = enforced === null ? null : watts(enforced);
    a.effective.smClockNowMHz = value(this.api.clockMhz(u, 1));
    a.effective.memClockNowMHz = value(this.api.clockMhz(u, 2));
    const want = a.requested.powerLimitWatts;
    if (want !== undefined && a.effective.powerLimitWatts !== want)
      throw new GpuSettingsError(
        `power limit on ${u} reads ${a.effective.powerLimitWatts ?? 'nothing'} W after setting ${want} W`,
      );
    if (want !== undefined && enforced !== null && a.effective.enforcedPowerLimitWatts! < want)
      a.notes.push(
        `the enforced power limit is ${a.effective.enforcedPowerLimitWatts} W, below the ${want} W asked for (another limit is in force)`,
      );
    for (const [name, req, eff] of [
      ['SM', a.requested.smClockMHz, a.effective.smClockMHz],
      ['memory', a.requested.memClockMHz, a.effective.memClockMHz],
    ] as const) {
      if (req !== undefined && eff !== null && (req.min !== eff.min || req.max !== eff.max))
        a.notes.push(`${name} clock lock ${req.min}-${req.max} MHz snaps to supported ${eff.min}-${eff.max} MHz`);
    }
  }

  /** Undo everything this session applied (idempotent, synchronous). Throws when a GPU could not be restored. */
  restore(): void {
    if (this.restored) return;
    this.restored = true;
    process.off('exit', this.exitHook);
    const failures: string[] = [];
    for (const a of this.applied) {
      const path = markerFile(this.opts.markerDir, a.gpuUuid);
      const m = readMarker(path);
      const done = this.changed.get(a.gpuUuid);
      if (m === null || done === undefined) continue;
      const problems = restoreOne(this.api, { ...m, ...done }, this.opts.logger);
      if (problems.length === 0) rmSync(path, { force: true });
      else failures.push(`${a.gpuUuid}: ${problems.join('; ')} (marker kept: the next agent retries)`);
    }
    if (failures.length > 0) throw new GpuSettingsError(`restoring GPU settings failed: ${failures.join('; ')}`);
  }
}

/** How long the enforced limit may lag a new limit (an H100 took under a second; it never lags a run). */
const ENFORCE_SETTLE_MS = 3000;

/**
 * The enforced limit once it has caught up with `limitMw`: the driver applies a new limit
 * asynchronously (on an H100 it read the old 700 W right after setting 250 W). Blocks the thread
 * for at most ENFORCE_SETTLE_MS, before the baseline; returns the last reading either way.
 */
function settledEnforcedMw(api: NvmlControlApi, u: string, limitMw: number | null): number | null {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + ENFORCE_SETTLE_MS;
  let enforced = value(api.enforcedPowerLimitMw(u));
  while (limitMw !== null && enforced !== null && enforced > limitMw && Date.now() < until) {
    Atomics.wait(pause, 0, 0, 50);
    enforced = value(api.enforcedPowerLimitMw(u));
  }
  return enforced;
}

/** LLEM_GPU_STATE_DIR, else the host-wide default. */
export function markerDirFrom(env: NodeJS.ProcessEnv): string {
  const dir = env['LLEM_GPU_STATE_DIR'];
  return dir !== undefined && dir.trim() !== '' ? dir : DEFAULT_MARKER_DIR;
}
