// Backend servers for local runs: one server per data-parallel replica, each on its own GPUs (replica r
// gets GPUs [r*g, (r+1)*g) of llem run's, as its own pod would in a cluster). Configurations whose rendered
// server command is identical share their servers (a concurrency sweep reloads nothing); a server that died
// is started again.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderBackendLaunch, type BackendLaunch } from '../lib/backends/index.ts';
import { awaitBackendReady } from '../agent/readiness.ts';
import { describeExit, startBackend, type BackendProcess } from '../agent/supervisor.ts';
import { watchGroup, type GroupWatch } from '../agent/process-tree.ts';
import type { Configuration } from '../api/matrix.ts';
import { BackendError, InterruptedError, isAddressInUse } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { backendEnvironment } from './backend-env.ts';
import { BackendLedger, processStartTicks } from './orphans.ts';

export interface RunningBackend {
  /** The data-parallel replica this server serves (its agent measures exactly its GPUs). */
  replica: number;
  /** The CUDA_VISIBLE_DEVICES it was started with (GPU or MIG UUIDs); null with --simulate. */
  cudaVisibleDevices: string | null;
  baseUrl: string;
  /** The server's own metrics endpoint, scraped by the agent over each window; null for the mock. */
  metrics: BackendLaunch['metrics'];
  servedModelName: string;
  simulated: boolean;
  /** Human-readable command line (or "mock server"), for the report. */
  description: string;
  /** Resolves when the server process exits on its own. */
  exited: Promise<string>;
}

interface Entry {
  backend: RunningBackend;
  stop: () => Promise<void>;
  alive: () => boolean;
}

export interface BackendPoolOptions {
  simulate: boolean;
  /** Replace the rendered server command (argv, shell-free): bring your own OpenAI-compatible server. */
  serverCommand?: readonly string[];
  /**
   * `llem mock-server` options for --simulate (latencies, batch): the mock runs as its own process,
   * as on a cluster, so its work never shares the load generator's event loop.
   */
  mockArgs?: readonly string[];
  scratchDir: string;
  /** Where started server process groups are listed until stopped (see orphans.ts). */
  ledgerFile: string;
  logger: Logger;
  signal: AbortSignal;
  /** CUDA_VISIBLE_DEVICES entries (GPU or MIG UUIDs) for the servers: replica r's are [r*g, (r+1)*g). */
  gpuEntries?: readonly string[];
  /** Resolves when the GPUs' memory is back at its level before any server started (gpu-check.ts). */
  awaitGpuReleased?: () => Promise<void>;
  /** Names of the user's environment variables a server also gets (--pass-env); see backend-env.ts. */
  passEnv?: readonly string[];
}

/** images/pytorch beside the sources, or (bundled CLI) under the working directory; LLEM_PYTORCH_SERVER_ROOT wins. */
function pytorchServerRoot(): string {
  const fromEnv = process.env['LLEM_PYTORCH_SERVER_ROOT'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const beside = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'images', 'pytorch');
  return existsSync(beside) ? beside : resolve('images', 'pytorch');
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Latencies of the simulated server unless --mock-args says otherwise (a small model on a fast GPU). */
export const DEFAULT_MOCK_ARGS = ['--ttft-ms', '40', '--itl-ms', '8', '--max-batch', '256'] as const;

/**
 * A load-ladder step's simulated server decodes at most the backend's own batch limit at once (pytorch
 * maxBatchSize, vllm maxNumSeqs), so a simulated ladder saturates as a real server would; other
 * configurations keep the historical defaults.
 */
function mockArgsFor(c: Configuration): readonly string[] {
  if (c.ladder === undefined) return DEFAULT_MOCK_ARGS;
  const p = c.backend.params as { maxBatchSize?: number; maxNumSeqs?: number };
  const batch = p.maxBatchSize ?? p.maxNumSeqs;
  return batch === undefined ? DEFAULT_MOCK_ARGS : [...DEFAULT_MOCK_ARGS.slice(0, 4), '--max-batch', String(batch)];
}

/**
 * `node <llem entry> mock-server`: this CLI's own entry (the bundle is one file, so it is this
 * module's file; from source it is cli/main.ts, loaded through tsx like this process).
 */
function mockServerArgv(): string[] {
  const self = fileURLToPath(import.meta.url);
  // Bundled, this code sits in a chunk beside the CLI's entry file (scripts/bundle.mjs): run that entry.
  if (!self.endsWith('.ts'))
    return [process.execPath, fileURLToPath(new URL('./llem.mjs', import.meta.url)), 'mock-server'];
  const entry = resolve(dirname(self), '..', 'cli', 'main.ts');
  return [process.execPath, '--import', import.meta.resolve('tsx'), entry, 'mock-server'];
}

const MOCK_READINESS = { path: '/health', timeoutSeconds: 60 };

interface Started {
  replica: number;
  cudaVisibleDevices: string | null;
  port: number;
  argv: string[];
  launch: BackendLaunch | null;
  exited: Promise<string>;
}

function runningBackend(c: Configuration, s: Started): RunningBackend {
  const { argv, launch, exited } = s;
  const baseUrl = `http://127.0.0.1:${s.port}`;
  const where = { replica: s.replica, cudaVisibleDevices: s.cudaVisibleDevices };
  if (launch === null) {
    const description = `mock server (simulated, own process): llem ${argv.slice(argv.indexOf('mock-server')).join(' ')}`;
    return { ...where, baseUrl, metrics: null, servedModelName: c.model.name, simulated: true, description, exited };
  }
  return {
    ...where,
    baseUrl,
    metrics: launch.metrics,
    servedModelName: launch.servedModelName,
    simulated: false,
    description: argv.join(' '),
    exited,
  };
}

/** SIGTERM -> SIGKILL grace for a local server's process group unless backends[].shutdownGraceSeconds says. */
export const DEFAULT_SHUTDOWN_GRACE_SECONDS = 10;

/** The server could not bind the port it was given. */
class PortTakenError extends BackendError {}

/** The GPUs replica r uses: [r*g, (r+1)*g) of those llem run may use, by UUID (see gpu-check.ts). */
export function replicaGpus(gpuUuids: readonly string[], replica: number, gpusPerRun: number): string[] {
  return gpuUuids.slice(replica * gpusPerRun, (replica + 1) * gpusPerRun);
}

export class BackendPool {
  /** Per server key, one entry per replica (index = replica). */
  private readonly entries = new Map<string, Entry[]>();
  private readonly ledger: BackendLedger;
  constructor(private readonly opts: BackendPoolOptions) {
    this.ledger = new BackendLedger(opts.ledgerFile);
  }

  private keyOf(c: Configuration): string {
    if (this.opts.simulate && this.opts.serverCommand === undefined) return `mock x${c.replicas}`;
    return JSON.stringify({ backend: c.backend, model: c.model, gpus: c.gpusPerRun, replicas: c.replicas });
  }

  /**
   * One set of servers resident at a time (one per replica): consecutive runs of the same servers reuse
   * them; any other run first stops them and waits for the GPUs' memory to come back, so no configuration
   * is measured (baseline included) beside another's loaded model. Index r of the result is replica r's.
   */
  async ensure(c: Configuration): Promise<RunningBackend[]> {
    const key = this.keyOf(c);
    const existing = this.entries.get(key);
    if (existing !== undefined && existing.every((e) => e.alive())) return existing.map((e) => e.backend);
    if (this.entries.size > 0) {
      await this.stopAll();
      await this.opts.awaitGpuReleased?.();
    }
    const replicas = Array.from({ length: c.replicas }, (_, r) => r);
    // Together: N models load in the time of one. One that fails stops the others before the error surfaces.
    const started = await Promise.allSettled(replicas.map((r) => this.startProcess(c, r)));
    const group = started.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
    const failed = started.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed !== undefined) {
      await Promise.allSettled(group.map((e) => e.stop()));
      throw failed.reason;
    }
    this.entries.set(key, group);
    return group.map((e) => e.backend);
  }

  private get mock(): boolean {
    return this.opts.simulate && this.opts.serverCommand === undefined;
  }

  /** What to start (the simulated server, the user's command, or the backend's rendered launch), its files written. */
  private commandFor(
    c: Configuration,
    port: number,
  ): { argv: string[]; launch: BackendLaunch | null; env: Record<string, string> } {
    if (this.mock) {
      const args = [
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--model',
        c.model.name,
        ...(this.opts.mockArgs ?? mockArgsFor(c)),
      ];
      return { argv: [...mockServerArgv(), ...args], launch: null, env: {} };
    }
    const launch = this.launchFor(c, port);
    for (const f of launch.files) {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content);
    }
    const argv =
      this.opts.serverCommand !== undefined
        ? this.opts.serverCommand.map((a) => a.replaceAll('{port}', String(port)))
        : [launch.command, ...launch.args];
    return { argv, launch, env: launch.env };
  }

  private launchFor(c: Configuration, port: number): BackendLaunch {
    const { type, params, name, image, extraArgs, readinessTimeoutSeconds, shutdownGraceSeconds } = c.backend;
    const spec = {
      type,
      name,
      extraArgs,
      [type]: params,
      ...(image !== undefined ? { image } : {}),
      ...(readinessTimeoutSeconds !== undefined ? { readinessTimeoutSeconds } : {}),
      ...(shutdownGraceSeconds !== undefined ? { shutdownGraceSeconds } : {}),
    } as Parameters<typeof renderBackendLaunch>[0];
    return renderBackendLaunch(spec, c.model, {
      host: '127.0.0.1',
      port,
      gpusPerRun: c.gpusPerRun,
      modelMountPath: '/models',
      seed: 0,
      pytorchServerRoot: pytorchServerRoot(),
      scratchDir: this.opts.scratchDir,
    });
  }

  /** A port picked free can be taken by another process before the server binds it: try a new one (twice). */
  private async startProcess(c: Configuration, replica: number): Promise<Entry> {
    for (let attempt = 1; ; attempt += 1) {
      const port = await freePort();
      try {
        return await this.startOn(c, port, replica);
      } catch (err) {
        if (!(err instanceof PortTakenError) || attempt >= 3) throw err;
        this.opts.logger.warn(
          { backend: c.backend.name, port },
          'the port was taken before the backend could bind it; starting it again on another',
        );
      }
    }
  }

  private async startOn(c: Configuration, port: number, replica: number): Promise<Entry> {
    const { argv, launch, env } = this.commandFor(c, port);
    const devices = this.deviceEnv(c, replica);
    const [command, ...args] = argv;
    if (command === undefined) throw new BackendError('the server command is empty');
    const graceMs = (c.backend.shutdownGraceSeconds ?? DEFAULT_SHUTDOWN_GRACE_SECONDS) * 1000;
    const proc: BackendProcess = startBackend(command, args, {
      env: backendEnvironment(process.env, { ...env, ...devices, LLEM_PORT: String(port) }, this.opts.passEnv ?? []),
      logger: this.opts.logger,
      orphanGuard: { graceMs },
    });
    const pid = proc.pid;
    const startTicks = pid === undefined ? null : processStartTicks(pid);
    // Listed until it exits: a killed `llem run` leaves the entry for the next one to act on.
    if (pid !== undefined && startTicks !== null) this.ledger.add({ pid, startTicks, command: argv.join(' ') });
    let exitText: string | null = null;
    const exited = proc.exited.then((e) => {
      if (pid !== undefined) this.ledger.remove(pid);
      return (exitText = describeExit(e));
    });
    // Stop polling as soon as the race is decided: a dead server must not keep the process alive.
    const polling = new AbortController();
    const readiness = launch?.readiness ?? MOCK_READINESS;
    const ready = awaitBackendReady({
      url: `http://127.0.0.1:${port}${readiness.path}`,
      timeoutMs: readiness.timeoutSeconds * 1000,
      pollMs: 500,
      signal: AbortSignal.any([this.opts.signal, polling.signal]),
    });
    let first: string | null;
    try {
      first = await Promise.race([ready.then(() => null), exited]).finally(() => polling.abort());
    } catch (err) {
      // Not ready in time: the server runs in its own process group and would outlive us holding the GPU.
      await proc.terminate(graceMs);
      throw err;
    }
    if (this.opts.signal.aborted) {
      await proc.terminate(graceMs);
      throw new InterruptedError('interrupted while the backend was starting');
    }
    if (first !== null) {
      const tail = proc.tail().slice(-10).join('\n  ');
      const Failure = isAddressInUse(tail) ? PortTakenError : BackendError;
      throw new Failure(
        `backend ${c.backend.name} failed to start: ${first} (command: ${argv.join(' ')})${tail === '' ? '' : `\n  ${tail}`}`,
      );
    }
    const { tree, treeDied } = this.watchTree(c, proc, graceMs, (why) => (exitText ??= why));
    void exited.then(() => tree?.stop());
    const cudaVisibleDevices = devices['CUDA_VISIBLE_DEVICES'] ?? null;
    const backend = runningBackend(c, {
      replica,
      cudaVisibleDevices,
      port,
      argv,
      launch,
      exited: Promise.race([exited, treeDied]),
    });
    return {
      backend,
      stop: async () => {
        tree?.stop();
        const t0 = performance.now();
        const exit = await proc.terminate(graceMs);
        // Every process of the tree is gone (terminate waits for the group): its GPU memory is free.
        this.opts.logger.info(
          { backend: c.backend.name, exit: describeExit(exit), releasedMs: Math.round(performance.now() - t0) },
          'backend stopped',
        );
      },
      alive: () => exitText === null,
    };
  }

  /**
   * Ready: the server's process tree (front process, one worker per GPU, helpers) is complete; a member dying
   * from now on stops the server and fails the run at once instead of leaving a half-served window (ADR 0025).
   */
  private watchTree(
    c: Configuration,
    proc: BackendProcess,
    graceMs: number,
    onDeath: (why: string) => void,
  ): { tree: GroupWatch | null; treeDied: Promise<string> } {
    const tree = proc.pid === undefined ? null : watchGroup(proc.pid);
    if (tree === null) return { tree, treeDied: new Promise<string>(() => undefined) };
    const treeDied = tree.died.then(async (why) => {
      onDeath(why);
      this.opts.logger.warn({ backend: c.backend.name, why }, 'a backend process died; stopping the server');
      await proc.terminate(graceMs);
      return why;
    });
    return { tree, treeDied };
  }

  /** Exactly the GPUs the sampler reads, by UUID: an index would be renumbered by the user's own list. */
  private deviceEnv(c: Configuration, replica: number): Record<string, string> {
    const entries = this.opts.gpuEntries;
    if (entries === undefined) return {};
    const mine = replicaGpus(entries, replica, c.gpusPerRun);
    // gpu-check.ts refuses too few GPUs before any run: reaching this is a bug, never a shared GPU.
    if (mine.length !== c.gpusPerRun)
      throw new BackendError(`replica ${replica} needs ${c.gpusPerRun} GPU(s) but only ${mine.length} are left`);
    return { CUDA_VISIBLE_DEVICES: mine.join(',') };
  }

  /** Server sets started so far that are still listed (tests watch eviction through it). */
  get resident(): number {
    return this.entries.size;
  }

  async stopAll(): Promise<void> {
    const all = [...this.entries.values()].flat();
    this.entries.clear();
    await Promise.allSettled(all.map((e) => e.stop()));
  }
}
