// Supervises the backend server as a child process group: it runs detached (its own group), so
// stopping it reaches every process it spawned (vLLM's engine workers, torch compile workers...).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../lib/log.ts';

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
   * Start the backend as this user (and group) instead of ours: an agent running as root to change GPU
   * settings (ADR 0024) gives the inference server no root and, as a non-root uid, no capabilities.
   */
  uid?: number | undefined;
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
      // The leader is gone; make sure nothing it left in its group lingers.
      signalGroup('SIGKILL');
      return exit;
    },
  };
}
