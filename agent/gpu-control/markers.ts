// Restore markers (docs/adr/0024): one file per GPU, written before the first change, holding the
// previous power limit and what is about to change. The next agent or `llem run` on that GPU restores
// from it what a killed process left (SIGKILL runs no handler).
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { GpuSettingsError, GpuSettingsRefusedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { NvmlResult } from '../telemetry/nvml-api.ts';
import type { NvmlControlApi } from './nvml-control.ts';

export const markerFile = (dir: string, uuid: string): string =>
  join(dir, `${uuid.replace(/[^A-Za-z0-9_-]/g, '_')}.json`);
export const watts = (mw: number): number => Math.round(mw / 100) / 10;

export function value<T>(r: NvmlResult<T>): T | null {
  return r.rc === 0 ? (r.value as T) : null;
}

export interface Marker {
  version: 1;
  gpuUuid: string;
  hostname: string;
  pid: number;
  startedAt: string;
  previousPowerLimitMw: number | null;
  /** What this agent changed (and so must undo). */
  powerLimitSet: boolean;
  smLocked: boolean;
  memLocked: boolean;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readMarker(path: string): Marker | null {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as Marker;
    return m.version === 1 && typeof m.gpuUuid === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** Undo what one marker records; true when every change was undone and read back. */
export function restoreOne(api: NvmlControlApi, m: Marker, log: Logger | undefined): string[] {
  const problems: string[] = [];
  const u = m.gpuUuid;
  if (m.smLocked) {
    const rc = api.resetSmLockedClocks(u);
    if (rc !== 0) problems.push(`reset SM clocks: ${api.errorString(rc)}`);
  }
  if (m.memLocked) {
    const rc = api.resetMemLockedClocks(u);
    if (rc !== 0) problems.push(`reset memory clocks: ${api.errorString(rc)}`);
  }
  if (m.powerLimitSet) {
    const target = m.previousPowerLimitMw ?? value(api.defaultPowerLimitMw(u));
    if (target === null) problems.push('no previous or default power limit to restore');
    else if (value(api.powerLimitMw(u)) !== target) {
      const rc = api.setPowerLimitMw(u, target);
      const now = value(api.powerLimitMw(u));
      if (rc !== 0) problems.push(`set power limit ${watts(target)} W: ${api.errorString(rc)}`);
      else if (now !== target)
        problems.push(`power limit reads ${now === null ? 'nothing' : watts(now)} W after restore`);
    }
  }
  log?.info({ gpu: u, problems }, 'GPU settings restored');
  return problems;
}

function restoredLine(m: Marker): string {
  const what: string[] = [];
  if (m.powerLimitSet)
    what.push(`power limit ${m.previousPowerLimitMw === null ? 'default' : `${watts(m.previousPowerLimitMw)} W`}`);
  if (m.smLocked) what.push('SM clocks unlocked');
  if (m.memLocked) what.push('memory clocks unlocked');
  return `restored GPU ${m.gpuUuid} left by PID ${m.pid} (${m.startedAt}): ${what.join(', ')}`;
}

/**
 * Restore what agents killed before they could (SIGKILL, OOM kill, node reboot mid-run) left on these
 * GPUs, from their markers. Returns one line per GPU restored. A marker of a live process on this host
 * is another agent's, in use: that is refused rather than undone under it.
 */
export function restoreFromMarkers(
  api: NvmlControlApi,
  dir: string,
  uuids: readonly string[] | null,
  log?: Logger,
): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const known = new Set(api.deviceUuids());
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    const path = join(dir, f);
    const m = readMarker(path);
    if (m === null || !known.has(m.gpuUuid) || (uuids !== null && !uuids.includes(m.gpuUuid))) continue;
    if (m.pid === process.pid && m.hostname === hostname())
      throw new GpuSettingsRefusedError(
        `GPU ${m.gpuUuid} already has settings applied by this process (two replicas on one GPU?); give each replica its own GPU`,
      );
    if (m.pid !== process.pid && m.hostname === hostname() && pidAlive(m.pid))
      throw new GpuSettingsRefusedError(
        `GPU ${m.gpuUuid} has settings applied by a running llem agent (PID ${m.pid}, marker ${path}); wait for it to finish`,
      );
    const problems = restoreOne(api, m, log);
    if (problems.length > 0)
      throw new GpuSettingsError(`restoring ${m.gpuUuid} from ${path} failed: ${problems.join('; ')}`);
    rmSync(path, { force: true });
    out.push(restoredLine(m));
  }
  return out;
}
