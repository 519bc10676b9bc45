// Backend servers that outlived their `llem run`. The pool records every server process group it
// starts in <out>/.llem/backends.json and removes it once stopped; a SIGKILLed run cannot stop its
// server, which would keep holding the GPU and drawing power into the next run's energy. The next
// `llem run` on the same output directory stops what is still listed, but only when
//  - the `llem run` that started it is gone (a second run on the same directory never touches a
//    live run's server),
//  - the machine has not rebooted since (same boot id), and
//  - the pid is still the same process (same start time since boot: pids are reused).
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import type { Logger } from '../lib/log.ts';

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  startTicks: number;
}

export interface LedgerEntry extends ProcessIdentity {
  /** The `llem run` that started it. */
  owner: ProcessIdentity;
  /** /proc/sys/kernel/random/boot_id when it started. */
  bootId: string;
  /** For the log line only. */
  command: string;
}

/** A live process's start time in clock ticks since boot, or null when it is gone or a zombie (Linux /proc). */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z') return null;
    const ticks = Number(rest[22 - 3]);
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** This process, as the owner of the servers it starts. */
export function selfIdentity(): ProcessIdentity {
  return { pid: process.pid, startTicks: processStartTicks(process.pid) ?? -1 };
}

const alive = (p: ProcessIdentity): boolean => processStartTicks(p.pid) === p.startTicks;

const isIdentity = (p: unknown): p is ProcessIdentity =>
  typeof p === 'object' &&
  p !== null &&
  Number.isInteger((p as ProcessIdentity).pid) &&
  Number.isInteger((p as ProcessIdentity).startTicks);

export class BackendLedger {
  private entries: LedgerEntry[];

  constructor(private readonly file: string) {
    this.entries = BackendLedger.read(file);
  }

  private static read(file: string): LedgerEntry[] {
    if (!existsSync(file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { backends?: unknown };
      if (!Array.isArray(parsed.backends)) return [];
      return (parsed.backends as LedgerEntry[]).filter(
        (e) =>
          isIdentity(e) && e.pid > 1 && e.pid !== process.pid && isIdentity(e.owner) && typeof e.bootId === 'string',
      );
    } catch {
      return []; // a torn or foreign file holds nothing we could safely act on
    }
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify({ backends: this.entries }, null, 2) + '\n');
  }

  add(e: Omit<LedgerEntry, 'owner' | 'bootId'>): void {
    this.entries.push({ ...e, owner: selfIdentity(), bootId: bootId() });
    this.save();
  }

  remove(pid: number): void {
    this.entries = this.entries.filter((e) => e.pid !== pid);
    this.save();
  }

  /**
   * Stop every listed server whose `llem run` is gone and which is still the process it was; keep
   * the entries of a live run (another `llem run` on this directory). Returns the pids stopped.
   */
  async reap(log: Logger, graceMs = 10_000): Promise<number[]> {
    const stopped: number[] = [];
    const kept: LedgerEntry[] = [];
    const boot = bootId();
    for (const e of this.entries) {
      if (alive(e.owner)) {
        kept.push(e);
        continue;
      }
      if (e.bootId !== boot || !alive(e)) continue;
      log.warn(
        { backendPid: e.pid, command: e.command },
        'stopping a backend server left running by an earlier llem run on this output directory',
      );
      await stopGroup(e, graceMs);
      stopped.push(e.pid);
    }
    if (kept.length !== this.entries.length) {
      this.entries = kept;
      this.save();
    }
    return stopped;
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is gone (or it never was one)
  }
}

/** SIGTERM the group, wait for its leader, then SIGKILL the group: children (engine workers) too. */
async function stopGroup(e: ProcessIdentity, graceMs: number): Promise<void> {
  signalGroup(e.pid, 'SIGTERM');
  const end = Date.now() + graceMs;
  while (alive(e) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  signalGroup(e.pid, 'SIGKILL');
}
