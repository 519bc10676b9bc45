// The real single-node cluster (scripts/dev-cluster.sh) and the images built from images/*/Dockerfile
// (scripts/build-images.sh), for tests/e2e-node and bench/cluster.ts. One node per machine: each test
// file brings it up (`up --owner <its PID>`: a watchdog brings it down if the file's process is killed)
// and down at the end, or leaves alone a node a user started.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');
const CACHE = process.env['LLEM_CACHE'] ?? join(homedir(), '.cache', 'llem');
export const RUN_DIR = join(process.env['LLEM_CLUSTER_DIR'] ?? join(CACHE, 'dev-cluster'), 'run');
export const KUBECONFIG = join(RUN_DIR, 'admin.kubeconfig');
export const CONTAINERD_SOCK = join(RUN_DIR, 'containerd.sock');
export const NODE_NAME = process.env['LLEM_NODE_NAME'] ?? 'llem-node';

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * Why the real-node tests cannot run here, or undefined when they can: they run wherever `npm test` runs
 * as root on Linux (scripts/ensure-deps.sh sets the node up there), unless LLEM_REAL_NODE=0.
 */
export function realNodeSkipReason(): string | undefined {
  if (process.env['LLEM_REAL_NODE'] === '0') return 'LLEM_REAL_NODE=0 turns the real-node tests off';
  if (process.platform !== 'linux')
    return `the real node needs Linux (containerd, cgroups, iptables); this is ${process.platform}`;
  if (process.getuid?.() !== 0)
    return 'the real node needs root (containerd, cgroups, iptables): run the tests as root (docs/install.md)';
  return undefined;
}

/** Runs a command; stderr streams to ours when `echo` (setup steps print their times). */
export function sh(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; input?: string; echo?: boolean; timeoutMs?: number } = {},
): Promise<Result> {
  const t0 = performance.now();
  return new Promise((res) => {
    const child = spawn(cmd, args, {
      cwd: REPO,
      env: { ...process.env, ...(opts.env ?? {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.echo === true) process.stderr.write(d);
    });
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('close', (code) => {
      if (timer !== undefined) clearTimeout(timer);
      res({ code: code ?? 137, stdout, stderr, seconds: (performance.now() - t0) / 1000 });
    });
    // A command that exits without reading its input (a refusal) must not crash the test with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export async function shOk(cmd: string, args: string[], opts: Parameters<typeof sh>[2] = {}): Promise<Result> {
  const r = await sh(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${(r.stderr + r.stdout).trim().slice(-3000)}`);
  return r;
}

export function helmBin(): string {
  return process.env['LLEM_HELM_BIN'] ?? join(CACHE, 'helm', 'helm');
}

export function kubectl(args: string[], opts: { input?: string } = {}): Promise<Result> {
  return sh(KUBECTL, ['--kubeconfig', KUBECONFIG, ...args], opts);
}

export async function kubectlOk(args: string[], opts: { input?: string } = {}): Promise<string> {
  return (await shOk(KUBECTL, ['--kubeconfig', KUBECONFIG, ...args], opts)).stdout;
}

export async function kubectlJson<T>(args: string[]): Promise<T> {
  return JSON.parse(await kubectlOk([...args, '-o', 'json'])) as T;
}

const K8S_VERSION = execFileSync('bash', ['-c', 'source tests/k8s/versions.env && echo $K8S_VERSION'], {
  cwd: REPO,
  encoding: 'utf8',
}).trim();
/** The node's Kubernetes binaries (scripts/ensure-deps.d/k8s.sh). */
export const BIN_DIR = join(process.env['LLEM_K8S_BIN'] ?? join(CACHE, 'k8s'), K8S_VERSION);
const KUBECTL = join(BIN_DIR, 'kubectl');

/**
 * Brings down what a crashed node or a killed test run left behind (by their PID files), and waits
 * while another live test run on this machine holds the node (one node per machine).
 */
export async function cleanStaleNode(): Promise<void> {
  await shOk('bash', ['scripts/dev-cluster.sh', 'wait-free'], { echo: true });
}

/**
 * Starts the node, owned by this process (a watchdog brings it down if this process dies without
 * nodeDown); alreadyUp when a node a user started was running (it is used and left up).
 */
export async function nodeUp(): Promise<{ seconds: number; alreadyUp: boolean }> {
  const r = await shOk('bash', ['scripts/dev-cluster.sh', 'up', '--owner', String(process.pid)], { echo: true });
  const alreadyUp = /dev-cluster: already up/.test(r.stderr);
  return { seconds: r.seconds, alreadyUp };
}

/** Whether the node's owner file names this process (`up --owner` got as far as recording it). */
export function ownsNode(): boolean {
  try {
    return readFileSync(join(RUN_DIR, 'owner'), 'utf8').split(' ')[0] === String(process.pid);
  } catch {
    return false;
  }
}

export async function nodeDown(): Promise<Result> {
  return sh('bash', ['scripts/dev-cluster.sh', 'down'], { echo: true });
}

/** Stops only the kubelet (its containers keep running), or starts it again (fault tests). */
export async function kubelet(action: 'stop' | 'start'): Promise<void> {
  await shOk('bash', ['scripts/dev-cluster.sh', `kubelet-${action}`], { echo: true });
}

export interface BuiltImage {
  name: string;
  ref: string;
  archive: string;
  buildSeconds: number;
}

/** Builds (or finds cached) and imports the named images into the node's containerd. */
export async function buildImages(names: string[]): Promise<Record<string, BuiltImage>> {
  const r = await shOk('bash', ['scripts/build-images.sh', '--import', CONTAINERD_SOCK, ...names], {
    echo: true,
    // The fake engine needs no torch: see images/pytorch/Dockerfile's INSTALL_TORCH.
    env: { LLEM_IMAGE_ARGS_PYTORCH: process.env['LLEM_IMAGE_ARGS_PYTORCH'] ?? 'INSTALL_TORCH=0' },
  });
  const out: Record<string, BuiltImage> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [name = '', ref = '', archive = '', secs = '0'] = line.split(' ');
    out[name] = { name, ref, archive, buildSeconds: Number(secs) };
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Thrown by a waitFor probe: stop waiting now (the awaited state can no longer come). */
export class FatalError extends Error {}

/** Polls `probe` until it returns a value (not undefined) or the time is up. */
export async function waitFor<T>(what: string, seconds: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      last = err;
    }
    if (Date.now() > end)
      throw new Error(`${what}: not after ${seconds} s${last instanceof Error ? ` (${last.message})` : ''}`);
    await sleep(500);
  }
}
