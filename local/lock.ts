// One writer per results directory: `llem run` holds <dir>/.llem.lock (its PID, host and the
// process's start time) while it writes. A second run exits 2 naming the holder; a lock whose
// process is gone (killed run) or whose PID now belongs to another process is taken over.
// Outside .llem/ so that --fresh, which clears .llem/, keeps it.
import { closeSync, existsSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LlemError } from '../lib/errors.ts';
import { bootId, processStartTicks } from './orphans.ts';

export const LOCK_FILE = '.llem.lock';

export interface LockHolder {
  pid: number;
  host: string;
  /** /proc/<pid>/stat start time (clock ticks since boot) and the boot's id; null where /proc is not there. */
  procStart: number | null;
  bootId: string | null;
  startedAt: string;
}

/** The results directory is being written by another live `llem run`. Exit code 2. */
export class ResultsLockedError extends LlemError {
  override name = 'ResultsLockedError';
  constructor(
    readonly dir: string,
    readonly holder: LockHolder,
  ) {
    const elsewhere = holder.host === hostname() ? '' : `; if that run is gone, delete ${join(dir, LOCK_FILE)}`;
    super(
      'LLEM_E_LOCKED',
      `${dir} is being written by another llem run (PID ${holder.pid} on ${holder.host}, since ${holder.startedAt}); ` +
        `wait for it to finish or stop it, or choose another --out${elsewhere}`,
      { exitCode: 2 },
    );
  }
}

/** Whether the lock's process still runs (same host only; another host's lock counts as held). */
export function holderAlive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true;
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A reboot since, a zombie, or the PID reused by an unrelated process: the run is gone.
  if (h.bootId !== null && bootId() !== 'unknown' && h.bootId !== bootId()) return false;
  if (!existsSync('/proc/self/stat')) return true;
  const now = processStartTicks(h.pid);
  return now !== null && (h.procStart === null || now === h.procStart);
}

function readHolder(file: string): LockHolder | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string') return null;
    return {
      pid: v.pid,
      host: v.host,
      procStart: v.procStart ?? null,
      bootId: v.bootId ?? null,
      startedAt: v.startedAt ?? 'unknown',
    };
  } catch {
    return null;
  }
}

export interface ResultsLock {
  /** Set when a stale lock was taken over: the dead holder. */
  readonly tookOverFrom: LockHolder | null;
  release(): void;
}

/** Takes the lock of `dir` (which exists) or throws ResultsLockedError. */
export function lockResultsDirectory(dir: string): ResultsLock {
  const file = join(dir, LOCK_FILE);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    procStart: processStartTicks(process.pid),
    bootId: bootId() === 'unknown' ? null : bootId(),
    startedAt: new Date().toISOString(),
  };
  let tookOverFrom: LockHolder | null = null;
  for (let attempt = 0; attempt < 5; attempt += 1) {
    // Written whole to a private file, then linked into place: the lock never exists half-written.
    const mine = `${file}.${process.pid}`;
    const fd = openSync(mine, 'w');
    writeSync(fd, JSON.stringify(me) + '\n');
    closeSync(fd);
    try {
      linkSync(mine, file);
      rmSync(mine, { force: true });
      return lockHandle(file, me, tookOverFrom);
    } catch (err) {
      rmSync(mine, { force: true });
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    if (holder !== null && holderAlive(holder)) throw new ResultsLockedError(dir, holder);
    // Stale (or unreadable): move it aside atomically; only one contender moves a given file.
    const aside = `${file}.stale-${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      continue; // someone else moved it first
    }
    const moved = readHolder(aside);
    if (moved !== null && holderAlive(moved)) {
      // A contender took the stale lock over between our read and our move: give theirs back.
      try {
        linkSync(aside, file);
      } catch {
        /* a third one holds it now */
      }
      rmSync(aside, { force: true });
      throw new ResultsLockedError(dir, moved);
    }
    rmSync(aside, { force: true });
    tookOverFrom = moved ?? holder;
  }
  throw new LlemError('LLEM_E_LOCKED', `${dir}: could not take the lock ${file} after 5 tries; retry`, { exitCode: 2 });
}

function lockHandle(file: string, me: LockHolder, tookOverFrom: LockHolder | null): ResultsLock {
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    // Only our own lock: never remove one another process took over.
    if (existsSync(file) && readHolder(file)?.pid === me.pid) rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { tookOverFrom, release };
}
