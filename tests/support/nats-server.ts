// A real `nats-server -js` for tests: free port, temp store directory, optional extra config.
//
// API (reuse it from controller / e2e tests):
//
//   const server = await startNatsServer();            // JetStream on, 127.0.0.1:<free port>
//   server.url                                         // 'nats://127.0.0.1:<port>'
//   await server.kill();                               // SIGKILL (a crash), resolves when it has exited
//   await server.restart();                            // same port, same config, same store directory
//   await server.stop();                               // SIGTERM (clean shutdown)
//   await server.cleanup();                            // stop if running, remove the temp directory
//
//   startNatsServer({ config: 'authorization { ... }' })  // text appended to the generated config
//   startNatsServer({ configFor: (port) => '...' })       // whole config file written by the caller
//
// The binary is `$LLEM_NATS_SERVER`, else `nats-server` on PATH, else /usr/sbin or /usr/bin.
// `scripts/ensure-deps.sh` installs it (Debian package) on a fresh machine.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, isAddressInUse } from './ports.ts';

export interface NatsServerOptions {
  /** Extra configuration text appended to the generated `port` + `jetstream` config. */
  config?: string;
  /** Write the whole configuration yourself (port and store directory are given). */
  configFor?: (port: number, storeDir: string) => string;
  /** Fixed port; default a free one. */
  port?: number;
  /** How long to wait for "Server is ready" (ms). */
  readyTimeoutMs?: number;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly configFile: string;
  /** PID of the current process, or null when stopped. */
  pid(): number | null;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

export function natsServerBinary(): string {
  const fromEnv = process.env['LLEM_NATS_SERVER'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const onPath = which.stdout.trim();
  if (which.status === 0 && onPath !== '') return onPath;
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server']) if (existsSync(p)) return p;
  throw new Error(
    'nats-server not found: run `bash scripts/ensure-deps.sh` (installs the Debian package) or set LLEM_NATS_SERVER',
  );
}

/** Why tests that need nats-server must skip (its absence, said how to fix), or undefined. */
export function natsServerSkipReason(): string | undefined {
  try {
    natsServerBinary();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = natsServerBinary();
  const dir = await mkdtemp(join(tmpdir(), 'llem-nats-'));
  const storeDir = join(dir, 'store');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const configFile = join(dir, 'nats.conf');
  // A port of our choosing can be taken by another test process before nats-server binds it: pick
  // another and try again (not when the caller chose the port).
  let port = 0;
  let child: ChildProcess | null = null;
  for (let attempt = 1; child === null; attempt += 1) {
    port = opts.port ?? (await freePort());
    const text = opts.configFor
      ? opts.configFor(port, storeDir)
      : `listen: "127.0.0.1:${port}"\njetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n}\n${opts.config ?? ''}\n`;
    await writeFile(configFile, text);
    try {
      child = await launch(binary, configFile, readyTimeoutMs);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 5 || !isAddressInUse(String(err))) throw err;
    }
  }

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    await exited;
  };

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    configFile,
    pid: () => child?.pid ?? null,
    stop: () => terminate('SIGTERM'),
    kill: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      child = await launch(binary, configFile, readyTimeoutMs);
    },
    cleanup: async () => {
      await terminate('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function launch(binary: string, configFile: string, readyTimeoutMs: number): Promise<ChildProcess> {
  const child = spawn(binary, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`nats-server not ready after ${readyTimeoutMs} ms:\n${log}`)),
      readyTimeoutMs,
    );
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    child.once('error', (err) => fail(err));
    child.once('exit', (code) => fail(new Error(`nats-server exited (${String(code)}) before ready:\n${log}`)));
    child.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-8000);
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve();
      }
    });
  });
  // Keep draining stderr so the pipe never fills up and blocks the server.
  child.stderr?.resume();
  return child;
}
