// The Deployment's contract with `llem controller`: started with exactly the arguments and
// environment the chart renders (Secret references resolved as the kubelet would), against the
// chart's own NATS configuration (operator mode, credentials signed with the issuer secret) and a real API server, the
// controller sets up
// JetStream and reports ready.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';
import { natsServerSkipReason, startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import {
  REPO,
  RELEASE_NAMESPACE,
  findObject,
  helmSkipReason,
  natsConfigForTest,
  render,
  trustedNatsConfig,
  type K8sObject,
} from './chart.ts';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}

const skip = helmSkipReason() ?? kubeSkipReason() ?? natsServerSkipReason();

function container(objs: K8sObject[]): { args: string[]; env: EnvVar[] } {
  const spec = findObject(objs, 'Deployment', '-controller')['spec'] as {
    template: { spec: { containers: { args: string[]; env: EnvVar[] }[] } };
  };
  const c = spec.template.spec.containers[0];
  assert.ok(c !== undefined);
  return c;
}

/** The environment the kubelet would give the container, with the test's NATS URL and Secret. */
function resolveEnv(vars: EnvVar[], natsUrl: string, secret: Record<string, string>): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.name': 'llem-controller-test',
    'metadata.namespace': RELEASE_NAMESPACE,
  };
  const out: Record<string, string> = {};
  for (const v of vars) {
    const ref = v.valueFrom?.secretKeyRef;
    const field = v.valueFrom?.fieldRef?.fieldPath;
    const value =
      v.name === 'LLEM_NATS_URL'
        ? natsUrl
        : ref !== undefined
          ? secret[ref.key]
          : field !== undefined
            ? fields[field]
            : v.value;
    assert.ok(value !== undefined, `cannot resolve ${v.name}`);
    out[v.name] = value;
  }
  return out;
}

function readyz(port: number): Promise<number> {
  return new Promise((res) => {
    const req = get({ host: '127.0.0.1', port, path: '/readyz', timeout: 1000 }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('error', () => res(0));
    req.on('timeout', () => req.destroy());
  });
}

void describe('llem controller as the chart runs it', { skip, timeout: 240_000 }, () => {
  let kube: KubeCluster;
  let nats: NatsServerHandle;
  let child: ChildProcess | undefined;
  let log = '';
  const secret = { issuerSecret: randomBytes(32).toString('base64url') };

  before(async () => {
    const objs = await render('default');
    const conf = await trustedNatsConfig(objs, secret.issuerSecret);
    process.env['POD_NAME'] = 'llem-nats-0';
    nats = await startNatsServer({ configFor: (port, storeDir) => natsConfigForTest(conf, port, storeDir) });
    kube = await startKube();
    await kube.kubectlOk(['create', 'namespace', RELEASE_NAMESPACE]);
  });

  after(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await kube?.stop();
    await nats?.cleanup();
    delete process.env['POD_NAME'];
  });

  void test("starts with the rendered args and env, authenticates to the chart's NATS and becomes ready", async () => {
    const { args, env } = container(await render('default'));
    const port = await freePort();
    const argv = args.map((a) =>
      a.startsWith('--metrics-bind-address=') ? `--metrics-bind-address=127.0.0.1:${port}` : a,
    );
    child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'cli', 'main.ts'), ...argv, '--kubeconfig', kube.kubeconfigPath],
      {
        cwd: REPO,
        env: { ...process.env, ...resolveEnv(env, nats.url, secret), LLEM_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 60_000;
    let status = 0;
    while (Date.now() < deadline && child.exitCode === null && status !== 200) {
      status = await readyz(port);
      if (status !== 200) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(status, 200, `controller not ready (exit ${child.exitCode}):\n${log.slice(-3000)}`);
  });

  void test('exits non-zero with a clear error, within seconds, when NATS refuses its credentials', async () => {
    const { args, env } = container(await render('default'));
    const port = await freePort();
    const argv = args.map((a) =>
      a.startsWith('--metrics-bind-address=') ? `--metrics-bind-address=127.0.0.1:${port}` : a,
    );
    const wrong = resolveEnv(env, nats.url, { issuerSecret: randomBytes(32).toString('base64url') });
    const t0 = Date.now();
    const bad = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'cli', 'main.ts'), ...argv, '--kubeconfig', kube.kubeconfigPath],
      {
        cwd: REPO,
        env: { ...process.env, ...wrong, LLEM_LOG_LEVEL: 'error' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    bad.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    bad.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => bad.once('exit', (c) => r(c)));
    assert.equal(code, 1, out);
    assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
    assert.match(out, /start-up failed.*(Authorization|auth)/i);
  });
});
