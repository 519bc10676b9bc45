// Backend servers that outlived their `llem run`. The pool records every server process group it
// starts in <out>/.llem/backends.json and removes it once stopped; a SIGKILLed run cannot stop its
// server, which would keep holding the GPU and drawing power into the next run's energy. The next
// `llem run` on the same output directory stops what is still listed, after checking that the pid
// is still the same process (same start time since boot: a pid can be reused by another process).
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import type { Logger } from '../lib/log.ts';

export interface LedgerEntry {
  /** Process id of the group leader (the server runs detached: its pid is its group id). */
  pid: number;
  /** Its start time in clock ticks since boot (/proc/<pid>/stat field 22): identifies the process. */
  startTicks: number;
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

export class BackendLedger {
  private entries: LedgerEntry[];

  constructor(private readonly file: string) {
    this.entries = BackendLedger.read(file);
  }

  private static read(file: string): LedgerEntry[] {
    if (!existsSync(file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { backends?: unknown };
      return Array.isArray(parsed.backends) ? (parsed.backends as LedgerEntry[]).filter((e) => Number.isInteger(e.pid) && e.pid > 1 && e.pid !== process.pid && Number.isInteger(e.startTicks)) : [];
    } catch {
      return []; // a torn or foreign file holds nothing we could safely act on
    }
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify({ backends: this.entries }, null, 2) + '\n');
  }

  add(e: LedgerEntry): void {
    this.entries.push(e);
    this.save();
  }

  remove(pid: number): void {
    this.entries = this.entries.filter((e) => e.pid !== pid);
    this.save();
  }

  /** Stop every listed server still running its recorded command line; returns the pids stopped. */
  async reap(log: Logger, graceMs = 10_000): Promise<number[]> {
    const stopped: number[] = [];
    for (const e of this.entries) {
      if (processStartTicks(e.pid) !== e.startTicks) continue;
      log.warn({ backendPid: e.pid, command: e.command }, 'stopping a backend server left running by an earlier llem run on this output directory');
      await stopGroup(e.pid, e.startTicks, graceMs);
      stopped.push(e.pid);
    }
    if (this.entries.length > 0) {
      this.entries = [];
      this.save();
    }
    return stopped;
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig); // not a group leader after all
    } catch {
      // already gone
    }
  }
}

async function stopGroup(pid: number, startTicks: number, graceMs: number): Promise<void> {
  const running = (): boolean => processStartTicks(pid) === startTicks;
  signalGroup(pid, 'SIGTERM');
  const end = Date.now() + graceMs;
  while (running() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  if (running()) signalGroup(pid, 'SIGKILL');
}
