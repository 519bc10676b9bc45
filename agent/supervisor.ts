// Supervises the backend server as a child process group: it runs detached (its own group), so
// stopping it reaches every process it spawned (vLLM's engine workers, torch compile workers...).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../lib/log.ts';
import { awaitGroupGone } from './process-tree.ts';

export interface BackendExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be started at all (ENOENT...). */
  error?: string;
}

export interface BackendProcess {
  readonly pid: number | undefined;
  /** Resolves once, when the group leader exits. */
  readonly exited: Promise<BackendExit>;
  /** The last lines the backend printed (stdout and stderr interleaved). */
  tail(): string[];
  /** Send a signal to the whole group. */
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM the group, SIGKILL it after `graceMs`; resolves when the leader has exited. */
  terminate(graceMs: number): Promise<BackendExit>;
  readonly terminating: boolean;
}

export interface BackendOptions {
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  tailLines?: number;
  /**
   * Stop the backend's process group (SIGTERM, SIGKILL after graceMs) if this process dies without stopping it
   * (SIGKILL, OOM): a tiny detached shell watches this process. Without it a killed `llem run` leaves the server,
   * its workers and their GPU memory behind until the next run reaps them.
   */
  orphanGuard?: { graceMs: number };
  /**
   * Start the backend as this user (and group) instead of ours: an agent running as root to change GPU
   * settings (ADR 0024) gives the inference server no root and, as a non-root uid, no capabilities.
   */
  uid?: number | undefined;
}

// $1 the supervisor's pid, $2 the backend's process group, $3 grace in tenths of a second. Polls both every
// 0.2 s; exits when the group is gone, stops it when the supervisor is.
const ORPHAN_GUARD = [
  'while kill -0 "$1" 2>/dev/null && kill -0 -"$2" 2>/dev/null; do sleep 0.2; done',
  'kill -0 -"$2" 2>/dev/null || exit 0',
  'kill -TERM -"$2" 2>/dev/null',
  'i=0; while [ "$i" -lt "$3" ] && kill -0 -"$2" 2>/dev/null; do sleep 0.1; i=$((i+1)); done',
  'kill -KILL -"$2" 2>/dev/null',
].join('\n');

function startOrphanGuard(pgid: number, graceMs: number): void {
  try {
    const guard = spawn(
      'sh',
      ['-c', ORPHAN_GUARD, 'llem-orphan-guard', String(process.pid), String(pgid), String(Math.ceil(graceMs / 100))],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    guard.on('error', () => undefined);
    guard.unref();
  } catch {
    // No shell: the ledger of started servers still lets the next run reap them.
  }
}

export function describeExit(e: BackendExit): string {
  if (e.error !== undefined) return `could not start: ${e.error}`;
  return e.signal !== null ? `killed by ${e.signal}` : `exited with code ${e.code ?? 'unknown'}`;
}

export function startBackend(command: string, args: readonly string[], opts: BackendOptions): BackendProcess {
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
  if (opts.orphanGuard !== undefined && child.pid !== undefined) startOrphanGuard(child.pid, opts.orphanGuard.graceMs);
  const lines: string[] = [];
  const keep = opts.tailLines ?? 40;
  const log = opts.logger.child({ component: 'backend', pid: child.pid ?? -1 });
  for (const [stream, readable] of [
    ['stdout', child.stdout],
    ['stderr', child.stderr],
  ] as const) {
    createInterface({ input: readable, crlfDelay: Infinity }).on('line', (line) => {
      lines.push(line);
      if (lines.length > keep) lines.shift();
      log.info({ stream }, line);
    });
  }
  let terminating = false;
  const exited = new Promise<BackendExit>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, error: err.message }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const signalGroup = (sig: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // group already gone
    }
  };
  return {
    pid: child.pid,
    exited,
    tail: () => [...lines],
    signal: signalGroup,
    get terminating() {
      return terminating;
    },
    terminate: async (graceMs) => {
      terminating = true;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      // The leader is gone; make sure nothing it left in its group lingers (a helper ignoring SIGTERM, a
      // worker still flushing): GPU memory is free only when every process holding it is gone.
      signalGroup('SIGKILL');
      if (child.pid !== undefined) await awaitGroupGone(child.pid, 5000);
      return exit;
    },
  };
}
