// A real Kubernetes control plane for tests: etcd + kube-apiserver (built by
// scripts/ensure-deps.d/k8s.sh from tests/k8s/), no scheduler, no controller-manager, no kubelet.
//
// API (stable; other tests reuse it):
//
//   kubeBinaries(): KubeBinaries | null        where the binaries are; null = not built (skip the test)
//   startKube(opts?): Promise<KubeCluster>     etcd + apiserver on free ports, ready to serve
//     opts.users       extra static-token users { name: { token?, groups? } } (admin + controller exist)
//     opts.crds        CRD files to `kubectl apply` once ready (default: crds/*.yaml; [] = none)
//     opts.apiserverArgs extra flags, e.g. ['--feature-gates=...']
//   cluster.server, cluster.dir, cluster.tokens.{admin,controller,...}
//   cluster.kubeconfigPath                     admin kubeconfig file (system:masters)
//   cluster.kubeconfigFor(user): string        kubeconfig file for any static-token user
//   cluster.kubeConfig(user?): KubeConfig      @kubernetes/client-node config for that user
//   cluster.kubectl(args, {input?, user?})     runs kubectl; resolves {code, stdout, stderr}, never throws
//   cluster.kubectlOk(args, {input?, user?})   same, throws with stderr when the exit code is not 0
//   cluster.startNodePlayer(opts): NodePlayer  plays the kubelet for pods (see tests/support/node-player.ts)
//   cluster.stop()                             kills everything, removes the temp dir (idempotent)
//
// Users: `admin` is in system:masters; `controller` has no groups, so RBAC decides what it may do
// (bind it, or a ServiceAccount, in the test). ServiceAccount tokens work through TokenRequest
// (`kubectl create token`) since the apiserver signs with its own key. Admission is minimal:
// the ServiceAccount plugin is off so pods need no token volume. There is no garbage collector:
// owner references are stored but cascading deletion does not happen unless the code under test
// deletes dependents itself.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { NodePlayer, type NodePlayerOptions } from './node-player.ts';
import { freePort, isAddressInUse } from './ports.ts';

export { freePort } from './ports.ts';
export {
  NodePlayer,
  localAgentRunner,
  spawnOutcome,
  type NodePlayerOptions,
  type PodRun,
  type PodOutcome,
} from './node-player.ts';

const REPO = resolve(import.meta.dirname, '..', '..');

export interface KubeBinaries {
  apiserver: string;
  etcd: string;
  kubectl: string;
  version: string;
}

export interface KubeUser {
  token?: string;
  groups?: string[];
}

export interface StartKubeOptions {
  users?: Record<string, KubeUser>;
  crds?: string[];
  apiserverArgs?: string[];
  /** Milliseconds to wait for /readyz (default 180 s: two shared cores are slow). */
  readyTimeoutMs?: number;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

function readVersions(): Record<string, string> {
  const text = readFileSync(join(REPO, 'tests', 'k8s', 'versions.env'), 'utf8');
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(\S+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

/** Binaries built by scripts/ensure-deps.d/k8s.sh, or null when they are not there. */
export function kubeBinaries(): KubeBinaries | null {
  const version = readVersions()['K8S_VERSION'] ?? 'unknown';
  const root = process.env['LLEM_K8S_BIN'] ?? join(homedir(), '.cache', 'llem', 'k8s');
  for (const dir of [join(root, version), root]) {
    const apiserver = join(dir, 'kube-apiserver');
    const etcd = join(dir, 'etcd');
    if (!existsSync(apiserver) || !existsSync(etcd)) continue;
    const kubectl = existsSync(join(dir, 'kubectl')) ? join(dir, 'kubectl') : 'kubectl';
    return { apiserver, etcd, kubectl, version };
  }
  return null;
}

/** A test skip reason when the control plane is not built, else undefined. */
export function kubeSkipReason(): string | undefined {
  return kubeBinaries() === null ? 'kube-apiserver/etcd not built: run bash scripts/ensure-deps.d/k8s.sh' : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function startProcess(bin: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  const keep = (b: Buffer): void => {
    chunks.push(b.toString());
    if (chunks.length > 400) chunks.splice(0, 200);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => {
    live.delete(child);
    try {
      writeFileSync(logFile, chunks.join(''));
    } catch {
      /* the temp dir may already be gone */
    }
  });
  (child as ChildProcess & { logTail: () => string }).logTail = () => chunks.join('').slice(-4000);
  live.add(child);
  return child;
}

function logTail(child: ChildProcess): string {
  return (child as ChildProcess & { logTail?: () => string }).logTail?.() ?? '';
}

async function stopProcess(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function runKubectl(bin: string, kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((res) => {
    const child = execFile(
      bin,
      ['--kubeconfig', kubeconfig, ...args],
      { maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
        res({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

function kubeconfigYaml(server: string, user: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: test`,
    `  cluster: { server: "${server}", insecure-skip-tls-verify: true }`,
    'users:',
    `- name: ${user}`,
    `  user: { token: "${token}" }`,
    'contexts:',
    `- name: ${user}@test`,
    `  context: { cluster: test, user: ${user}, namespace: default }`,
    `current-context: ${user}@test`,
    '',
  ].join('\n');
}

export class KubeCluster {
  readonly tokens: Record<string, string>;
  readonly kubeconfigPath: string;
  private stopped = false;
  private readonly players: NodePlayer[] = [];

  constructor(
    readonly server: string,
    readonly dir: string,
    readonly binaries: KubeBinaries,
    tokens: Record<string, string>,
    private readonly procs: { etcd: ChildProcess; apiserver: ChildProcess },
  ) {
    this.tokens = tokens;
    this.kubeconfigPath = this.kubeconfigFor('admin');
  }

  kubeconfigFor(user: string): string {
    const token = this.tokens[user];
    if (token === undefined) throw new Error(`no static-token user "${user}" in this cluster`);
    const path = join(this.dir, `kubeconfig-${user}.yaml`);
    if (!existsSync(path)) writeFileSync(path, kubeconfigYaml(this.server, user, token));
    return path;
  }

  kubeConfig(user = 'admin'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigFor(user));
    return kc;
  }

  kubectl(args: string[], opts: { input?: string; user?: string } = {}): Promise<KubectlResult> {
    return runKubectl(this.binaries.kubectl, this.kubeconfigFor(opts.user ?? 'admin'), args, opts.input);
  }

  async kubectlOk(args: string[], opts: { input?: string; user?: string } = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Applies CRDs and waits until each is Established. */
  async applyCrds(files: string[]): Promise<void> {
    for (const file of files) await this.kubectlOk(['apply', '--server-side', '-f', file]);
    for (const file of files) {
      await this.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', '-f', file]);
    }
  }

  async startNodePlayer(opts: NodePlayerOptions): Promise<NodePlayer> {
    const player = new NodePlayer(this.kubeConfig('admin'), opts);
    await player.start();
    this.players.push(player);
    return player;
  }

  apiserverLog(): string {
    return logTail(this.procs.apiserver);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.players) await p.stop();
    await stopProcess(this.procs.apiserver);
    await stopProcess(this.procs.etcd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function defaultCrds(): string[] {
  const dir = join(REPO, 'crds');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f));
}

function writeAuthFiles(dir: string, users: Record<string, KubeUser>): Record<string, string> {
  const all: Record<string, KubeUser> = { admin: { groups: ['system:masters'] }, controller: { groups: [] }, ...users };
  const tokens: Record<string, string> = {};
  const lines: string[] = [];
  for (const [name, u] of Object.entries(all)) {
    const token = u.token ?? randomBytes(16).toString('hex');
    tokens[name] = token;
    lines.push(`${token},${name},${name},"${(u.groups ?? []).join(',')}"`);
  }
  writeFileSync(join(dir, 'tokens.csv'), lines.join('\n') + '\n');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  return tokens;
}

async function startEtcd(bin: string, dir: string): Promise<{ proc: ChildProcess; url: string }> {
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const proc = startProcess(
    bin,
    [
      '--name=test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=test=${peerUrl}`,
      '--unsafe-no-fsync',
      '--log-level=error',
    ],
    join(dir, 'etcd.log'),
  );
  return { proc, url };
}

function apiserverArgs(dir: string, etcdUrl: string, port: number, extra: string[]): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(dir, 'certs')}`,
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--service-cluster-ip-range=10.96.0.0/24',
    '--disable-admission-plugins=ServiceAccount,DefaultStorageClass,DefaultIngressClass,StorageObjectInUseProtection,PersistentVolumeClaimResize,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,LimitRanger,Priority',
    '--endpoint-reconciler-type=none',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=0',
    ...extra,
  ];
}

async function waitReady(
  server: string,
  token: string,
  procs: { etcd: ChildProcess; apiserver: ChildProcess },
  timeoutMs: number,
): Promise<void> {
  const proc = procs.apiserver;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  // The apiserver's certificate is self-signed; only this probe skips verification, scoped to it.
  const { Agent } = await import('node:https');
  const agent = new Agent({ rejectUnauthorized: false });
  const { get } = await import('node:https');
  while (Date.now() < deadline) {
    if (procs.etcd.exitCode !== null) throw new Error(`etcd exited (${procs.etcd.exitCode}):\n${logTail(procs.etcd)}`);
    if (proc.exitCode !== null) throw new Error(`kube-apiserver exited (${proc.exitCode}):\n${logTail(proc)}`);
    const ok = await new Promise<boolean>((res) => {
      const req = get(
        `${server}/readyz`,
        { agent, headers: { authorization: `Bearer ${token}` }, timeout: 2000 },
        (r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => {
            last = `${r.statusCode} ${body.slice(0, 300)}`;
            res(r.statusCode === 200);
          });
        },
      );
      req.on('error', (e) => {
        last = e.message;
        res(false);
      });
      req.on('timeout', () => req.destroy());
    });
    if (ok) return;
    await sleep(250);
  }
  throw new Error(`kube-apiserver not ready after ${timeoutMs} ms (last: ${last})\n${logTail(proc)}`);
}

/** Starts etcd + kube-apiserver in a fresh temp dir and applies the CRDs. Call `stop()` when done. */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeCluster> {
  const binaries = kubeBinaries();
  if (binaries === null) throw new Error(kubeSkipReason());
  const dir = mkdtempSync(join(tmpdir(), 'llem-kube-'));
  mkdirSync(join(dir, 'certs'));
  const tokens = writeAuthFiles(dir, opts.users ?? {});
  // Ports are picked free, but another test process can bind one first: then start both again on
  // new ones (a few times) rather than fail the test.
  for (let attempt = 1; ; attempt += 1) {
    rmSync(join(dir, 'etcd'), { recursive: true, force: true });
    const etcd = await startEtcd(binaries.etcd, dir);
    const port = await freePort();
    const server = `https://127.0.0.1:${port}`;
    const apiserver = startProcess(
      binaries.apiserver,
      apiserverArgs(dir, etcd.url, port, opts.apiserverArgs ?? []),
      join(dir, 'apiserver.log'),
    );
    const procs = { etcd: etcd.proc, apiserver };
    try {
      await waitReady(server, tokens['admin'] ?? '', procs, opts.readyTimeoutMs ?? 180_000);
    } catch (err) {
      await Promise.all([stopProcess(apiserver), stopProcess(etcd.proc)]);
      if (attempt < 4 && isAddressInUse(String(err))) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const cluster = new KubeCluster(server, dir, binaries, tokens, procs);
    try {
      const crds = opts.crds ?? defaultCrds();
      if (crds.length > 0) await cluster.applyCrds(crds);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }
}
