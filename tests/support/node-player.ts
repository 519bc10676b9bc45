// The "kubelet player": stands in for a node. It watches pods (by label), runs each one's workload
// as a local process (or any function the test gives), and writes pod status back the way a kubelet
// would: Pending -> Running -> Succeeded / Failed, with container-status reasons such as OOMKilled.
//
//   const player = await cluster.startNodePlayer({ run: localAgentRunner({ env: { ... } }) });
//   await player.fail('ns', 'pod', { reason: 'OOMKilled', exitCode: 137 });  // kill it like the OOM killer
//   await player.evict('ns', 'pod');                                        // Failed / Evicted
//   player.podsSeen()                                                       // names in start order
//
// Pods are never scheduled (there is no scheduler): the player sets no nodeName, so deleting a pod
// removes it at once, and the player then aborts the pod's process.
//
// What it can NOT check (the real node does: tests/e2e-node, scripts/dev-cluster.sh): images. It runs
// no container, so it cannot prove that the agent image holds what the pod runs. It does not paper
// over the pod either: localAgentRunner first checks the rendered pod against the image contract
// (lib/backends/server-command.ts: the init container copies the agent payload into the volume the
// backend container runs AGENT_LLEM_ARGV from) and fails the pod the way a kubelet would when that
// does not hold; only then does it run this checkout's CLI in place of exactly AGENT_LLEM_ARGV.
// Its other limit is the network: pods share this host, so each gets its own port (see below).
import { expandContainerEnv, kubeletExpand } from './kubelet-expansion.ts';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  makeInformer,
  setHeaderOptions,
  PatchStrategy,
  type V1Pod,
  type Informer,
  type ObjectCache,
} from '@kubernetes/client-node';
import { freePort } from './ports.ts';
import { agentPodContractProblems } from './pod-contract.ts';
import { AGENT_LLEM_ARGV } from '../../lib/backends/server-command.ts';
import { makeApiClient } from '../../controller/api-client.ts';

const REPO = resolve(import.meta.dirname, '..', '..');

export interface PodRun {
  pod: V1Pod;
  /** The backend container's env: literal values plus `env` from the options (options win). */
  env: Record<string, string>;
  /** The backend container's command + args. */
  argv: string[];
}

export interface PodOutcome {
  exitCode: number;
  /** Container termination reason: Completed, Error, OOMKilled ... */
  reason?: string;
  message?: string;
  /** Pod-level reason (Evicted, NodeLost ...); makes the pod Failed whatever the exit code. */
  podReason?: string;
}

export interface NodePlayerOptions {
  /** Runs the pod's workload; resolves when it exits. Aborted when the pod is deleted or failed. */
  run: (run: PodRun, signal: AbortSignal) => Promise<PodOutcome>;
  namespace?: string;
  /** Default `llem.dev/run` (every agent pod). */
  labelSelector?: string;
  env?: Record<string, string>;
  /** Milliseconds between "Pending" and "Running" (image pull stand-in); default 0. */
  startDelayMs?: number;
}

interface Tracked {
  abort: AbortController;
  forced?: PodOutcome;
  /** The pod's process has ended (a later fail() would change nothing). */
  exited?: boolean;
  done: Promise<void>;
}

function key(ns: string, name: string): string {
  return `${ns}/${name}`;
}

export class NodePlayer {
  private informer?: Informer<V1Pod> & ObjectCache<V1Pod>;
  private readonly core: CoreV1Api;
  private readonly tracked = new Map<string, Tracked>();
  private readonly seen: string[] = [];
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly opts: NodePlayerOptions,
  ) {
    // Shared keep-alive connections (controller/api-client.ts): a TLS handshake per pod update would
    // load the API server the controller under test talks to.
    this.core = makeApiClient(kc, CoreV1Api);
  }

  async start(): Promise<void> {
    const ns = this.opts.namespace;
    const selector = this.opts.labelSelector ?? 'llem.dev/run';
    const path = ns === undefined ? '/api/v1/pods' : `/api/v1/namespaces/${ns}/pods`;
    const list = (): Promise<{ items: V1Pod[] }> =>
      ns === undefined
        ? this.core.listPodForAllNamespaces({ labelSelector: selector })
        : this.core.listNamespacedPod({ namespace: ns, labelSelector: selector });
    this.informer = makeInformer(this.kc, path, list as never, selector);
    this.informer.on('add', (pod) => this.onPod(pod));
    this.informer.on('update', (pod) => this.onPod(pod));
    this.informer.on('delete', (pod) => this.onDelete(pod));
    this.informer.on('error', () => {
      if (!this.stopped) setTimeout(() => void this.informer?.start().catch(() => undefined), 500);
    });
    await this.informer.start();
  }

  podsSeen(): string[] {
    return [...this.seen];
  }

  /** Kills the pod's process and reports the given outcome (e.g. OOMKilled, exit 137). */
  async fail(namespace: string, name: string, outcome: PodOutcome): Promise<void> {
    const t = this.tracked.get(key(namespace, name));
    if (t === undefined) throw new Error(`node player: pod ${namespace}/${name} is not running here`);
    if (t.exited === true)
      throw new Error(`node player: pod ${namespace}/${name} has already finished; fail() came too late`);
    t.forced = outcome;
    // The OOM killer and an eviction past its grace period send SIGKILL: the agent gets no chance to say goodbye.
    t.abort.abort(outcome.exitCode === 137 ? 'SIGKILL' : 'SIGTERM');
    await t.done;
  }

  evict(namespace: string, name: string): Promise<void> {
    return this.fail(namespace, name, {
      exitCode: 137,
      reason: 'Error',
      podReason: 'Evicted',
      message: 'The node was low on resource: memory.',
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
    for (const t of this.tracked.values()) t.abort.abort();
    await Promise.allSettled([...this.tracked.values()].map((t) => t.done));
  }

  private onPod(pod: V1Pod): void {
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    const k = key(ns, name);
    if (this.stopped || this.tracked.has(k) || pod.metadata?.deletionTimestamp !== undefined) return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    this.seen.push(name);
    const abort = new AbortController();
    const t: Tracked = { abort, done: Promise.resolve() };
    this.tracked.set(k, t);
    t.done = this.play(pod, t).catch(() => undefined);
  }

  private onDelete(pod: V1Pod): void {
    const t = this.tracked.get(key(pod.metadata?.namespace ?? 'default', pod.metadata?.name ?? ''));
    t?.abort.abort();
  }

  private async play(pod: V1Pod, t: Tracked): Promise<void> {
    const container = pod.spec?.containers[0];
    // As a kubelet would: `$(VAR)` and `$$` expanded in env values, then in command and args.
    const env = expandContainerEnv(container?.env ?? []);
    Object.assign(env, this.opts.env ?? {});
    const argv = [...(container?.command ?? []), ...(container?.args ?? [])].map((a) => kubeletExpand(a, env));
    const started = new Date().toISOString();
    if ((this.opts.startDelayMs ?? 0) > 0) await new Promise((r) => setTimeout(r, this.opts.startDelayMs));
    if (t.abort.signal.aborted && t.forced === undefined) return;
    await this.writeStatus(pod, running(pod, started));
    let outcome: PodOutcome;
    try {
      outcome = await this.opts.run({ pod, env, argv }, t.abort.signal);
    } catch (err) {
      outcome = { exitCode: 1, reason: 'Error', message: err instanceof Error ? err.message : String(err) };
    }
    t.exited = true;
    if (t.forced !== undefined) outcome = t.forced;
    else if (t.abort.signal.aborted) return; // deleted: nothing to report
    await this.writeStatus(pod, terminated(pod, started, outcome));
  }

  private async writeStatus(pod: V1Pod, status: object): Promise<void> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? 'default';
    try {
      await this.core.patchNamespacedPodStatus(
        { name, namespace, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch {
      // The pod may be gone already; a kubelet would not care either.
    }
  }
}

function containerName(pod: V1Pod): string {
  return pod.spec?.containers[0]?.name ?? 'main';
}

function running(pod: V1Pod, startedAt: string): object {
  return {
    phase: 'Running',
    startTime: startedAt,
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: startedAt }],
    containerStatuses: [
      {
        name: containerName(pod),
        ready: true,
        restartCount: 0,
        image: pod.spec?.containers[0]?.image ?? '',
        imageID: '',
        started: true,
        state: { running: { startedAt } },
      },
    ],
  };
}

function terminated(pod: V1Pod, startedAt: string, o: PodOutcome): object {
  const ok = o.exitCode === 0 && o.podReason === undefined;
  const finishedAt = new Date().toISOString();
  const reason = o.reason ?? (ok ? 'Completed' : 'Error');
  return {
    phase: ok ? 'Succeeded' : 'Failed',
    ...(o.podReason !== undefined ? { reason: o.podReason, message: o.message ?? o.podReason } : {}),
    conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: finishedAt, reason: 'PodCompleted' }],
    containerStatuses: [
      {
        name: containerName(pod),
        ready: false,
        restartCount: 0,
        image: pod.spec?.containers[0]?.image ?? '',
        imageID: '',
        started: false,
        state: {
          terminated: {
            exitCode: o.exitCode,
            reason,
            startedAt,
            finishedAt,
            ...(o.message !== undefined ? { message: o.message } : {}),
          },
        },
      },
    ],
  };
}

const LOCAL_LLEM = [process.execPath, '--import', 'tsx', resolve(REPO, 'cli', 'main.ts')];

/** Exactly AGENT_LLEM_ARGV (llem from the agent volume) becomes this checkout's llem; nothing else is touched. */
function localLlem(argv: string[]): string[] {
  const prefix = AGENT_LLEM_ARGV.length;
  return AGENT_LLEM_ARGV.every((a, i) => argv[i] === a) ? [...LOCAL_LLEM, ...argv.slice(prefix)] : argv;
}

/**
 * Runs the pod's `llem agent -- <server>` locally from this checkout once the pod passes the image
 * contract check (see the top of this file), as a kubelet would run the container, except for the network: every pod
 * gets its own free port (pods share this host), so
 * `--port` in the server command and backend.baseUrl in LLEM_AGENT_CONFIG are rewritten to it.
 * `serverCommand` replaces the pod's server command. SIGTERM on abort, SIGKILL 5 s later.
 */
export function localAgentRunner(opts: { serverCommand?: string[]; env?: Record<string, string> } = {}) {
  return async (run: PodRun, signal: AbortSignal): Promise<PodOutcome> => {
    const problems = agentPodContractProblems(run.pod);
    if (problems.length > 0) return { exitCode: 127, reason: 'ContainerCannotRun', message: problems.join('; ') };
    const port = await freePort();
    const at = AGENT_LLEM_ARGV.length;
    const rest = run.argv.slice(at + 1);
    const sep = rest.indexOf('--');
    const agentArgs = sep < 0 ? rest : rest.slice(0, sep);
    const server = localLlem(opts.serverCommand ?? (sep < 0 ? [] : rest.slice(sep + 1)));
    const p = server.indexOf('--port');
    if (p >= 0) server[p + 1] = String(port);
    const env: Record<string, string> = { ...run.env, ...(opts.env ?? {}) };
    const cfgText = env['LLEM_AGENT_CONFIG'];
    if (cfgText !== undefined) {
      const cfg = JSON.parse(cfgText) as { backend?: Record<string, unknown> };
      cfg.backend = { ...(cfg.backend ?? {}), baseUrl: `http://127.0.0.1:${port}` };
      env['LLEM_AGENT_CONFIG'] = JSON.stringify(cfg);
    }
    const [bin = process.execPath, ...pre] = LOCAL_LLEM;
    const args = [...pre, 'agent', ...agentArgs, ...(server.length > 0 ? ['--', ...server] : [])];
    return spawnOutcome(bin, args, { ...process.env, ...env, LLEM_CLI_ENTRY: '1' }, signal);
  };
}

function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // gone already
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    for (const [child, pp] of parent)
      if (pp === pid) {
        out.push(child);
        walk(child);
      }
  };
  walk(root);
  return out;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function spawnOutcome(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<PodOutcome> {
  return new Promise((res) => {
    const child = spawn(bin, args, { env, cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const onAbort = (): void => {
      if (signal.reason === 'SIGKILL' && child.pid !== undefined) {
        // A container killed outright takes every process in it along: the backend too.
        for (const pid of descendants(child.pid)) killQuietly(pid);
      }
      child.kill(signal.reason === 'SIGKILL' ? 'SIGKILL' : 'SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    // Aborted while the runner was still preparing (e.g. picking a port): the listener would never fire.
    if (signal.aborted) onAbort();
    child.on('exit', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      const exitCode = code ?? (sig === 'SIGKILL' ? 137 : 143);
      res({
        exitCode,
        reason: exitCode === 0 ? 'Completed' : 'Error',
        ...(exitCode === 0 ? {} : { message: stderr.slice(-500) }),
      });
    });
    child.on('error', (err) => res({ exitCode: 127, reason: 'ContainerCannotRun', message: err.message }));
  });
}
