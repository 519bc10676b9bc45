// bench/agent's process placement (issue #25, ADR 0040): the mock server and the load client on separate
// cores, as in a real deployment where the inference server runs on its own GPU node. Bench-only: the
// product (agent, `llem run`) never sets CPU affinity.
//
// Why: on loopback, a socket write wakes the reader with a "sync" wake-up, and the scheduler's wake-affine
// rule then tends to queue the reader on the writer's core. The mock writing 128 streams' tokens every
// 20 ms and the client reading them end up sharing one core and waiting for each other while the other
// core runs something else; pinning one event loop to each core stops that. Only the main threads (the
// event loops) are pinned: V8's GC helper threads stay free to use both cores, since a young-generation
// GC squeezed onto the loop's one core took 18.8 ms at 512 streams where unpinned ones took under 6.
// Other processes on the host (not ours, never touched) still run on either core.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Placement {
  /** CPU list (taskset -c syntax) for the load client's process, every thread. */
  client: string;
  /** CPU list for the mock server's process. */
  server: string;
}

/**
 * Where the bench's two processes go, or null to leave placement to the scheduler: fewer than two cores,
 * no `taskset`, or `LLEM_BENCH_PIN=0`. Two cores: client on CPU 0, server on CPU 1; more: the server on the
 * last core, the client on the others (its stream threads spread there).
 */
export function planPlacement(cores: number, hasTaskset: boolean, pinEnv: string | undefined): Placement | null {
  if (pinEnv === '0' || !hasTaskset || !Number.isInteger(cores) || cores < 2) return null;
  const last = cores - 1;
  return { client: last === 1 ? '0' : `0-${last - 1}`, server: String(last) };
}

/** Whether `taskset` runs here (util-linux); false on hosts without it, where the bench leaves placement alone. */
export function hasTaskset(): boolean {
  const r = spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

/**
 * Sets the CPU list of `pid`'s main thread (its event loop), or of every thread with `allThreads`; threads
 * made later inherit their creator's. Throws if taskset fails.
 */
export function pinProcess(pid: number, cpus: string, allThreads = false): void {
  runOrThrow('taskset', [...(allThreads ? ['-a'] : []), '-p', '-c', cpus, String(pid)]);
}

/** Runs a scheduling tool, throwing with its command line and error when it fails. */
function runOrThrow(command: string, args: string[]): void {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
  }
}

/** The CPU list the kernel allows `pid`'s main thread ("0-1", "1"), from /proc; undefined off Linux. */
export function allowedCpus(pid: number | 'self'): string | undefined {
  try {
    const main = pid === 'self' ? process.pid : pid;
    const status = readFileSync(`/proc/${main}/task/${main}/status`, 'utf8');
    return /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Opt-in (`LLEM_BENCH_RT=1`, bench only, root): `pid`'s main thread to SCHED_FIFO priority 1, so that on a
 * shared host it preempts other tenants' work as soon as it wakes instead of waiting out their time slice,
 * as if the client had its machine to itself. The kernel's RT throttling (95% of each second) still bounds it.
 */
export function realtimeMainThread(pid: number): void {
  runOrThrow('chrt', ['-f', '-p', '1', String(pid)]);
}

/** The scheduling policy of `pid`'s main thread from /proc (field 41 of stat: 0 other, 1 fifo, 2 rr). */
export function schedPolicy(pid: number | 'self'): number | undefined {
  try {
    const main = pid === 'self' ? process.pid : pid;
    const stat = readFileSync(`/proc/${main}/task/${main}/stat`, 'utf8');
    // Fields after the command (in parentheses, which may hold spaces): state is field 3, policy field 41.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[41 - 3]);
    return Number.isInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
