// End to end on a REAL single-node cluster (scripts/dev-cluster.sh: etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager, kubelet, kube-proxy, containerd + runc) with the images
// built from images/*/Dockerfile (scripts/build-images.sh): `helm install` of helm/llem, then
// `kubectl apply -f examples/dev-cluster.yaml`; the real scheduler places the agent pods on the node
// that advertises nvidia.com/gpu, the agents run in their real containers with simulated telemetry
// (there is no GPU), and the experiment must reach Succeeded. Part of `npm test` wherever it runs as
// root on Linux (LLEM_REAL_NODE=0 turns it off); the faults are in faults.test.ts. By hand:
//   node --import tsx --test --test-concurrency=1 tests/e2e-node/*.test.ts
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, credsAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { BusIssuer } from '../../lib/bus/identity.ts';
import {
  AGENT_DIR,
  AGENT_INSTALL_COMMAND,
  AGENT_NODE,
  AGENT_PAYLOAD_DIR,
  PYTORCH_SERVER_ROOT,
} from '../../lib/backends/server-command.ts';
import {
  FatalError,
  kubectl,
  kubectlJson,
  kubectlOk,
  NODE_NAME,
  realNodeSkipReason,
  REPO,
  shOk,
  waitFor,
} from '../support/real-node.ts';
import { fetchResults, natsAuth, type ExperimentStatus } from '../support/real-node-llem.ts';
import { EXP_NS, experimentEvents, RealNodeSuite, RELEASE_NS, variant, waitPhase } from '../support/real-node-suite.ts';

const skip = realNodeSkipReason();

void describe('the real node: helm install, kubectl apply, Succeeded', { skip, timeout: 3_600_000 }, () => {
  const suite = new RealNodeSuite();
  // Long: `up` waits while another test run on this machine holds the node (one node per machine).
  before(() => suite.setUp(), { timeout: 3_600_000 });
  after(() => suite.tearDown());

  test('the built images hold the paths the rendered pods run (the image side of the contract)', async () => {
    const agent = suite.images['agent'];
    const pytorch = suite.images['pytorch'];
    assert.ok(agent !== undefined && pytorch !== undefined);
    const check = async (ref: string, script: string): Promise<string> => {
      const r = await shOk(
        'bash',
        [
          '-c',
          `c=$(buildah from --pull-never ${ref}) && m=$(buildah mount "$c") && (${script}); rc=$?; buildah rm "$c" >/dev/null; exit $rc`,
        ],
        {
          env: { BUILDAH_ISOLATION: 'chroot' },
        },
      );
      return r.stdout;
    };
    const payload = AGENT_PAYLOAD_DIR;
    const rel = (p: string): string => p.slice(AGENT_DIR.length);
    await check(
      agent.ref,
      `test -x "$m${payload}${rel(AGENT_NODE)}" && test -f "$m${payload}/bin/llem.mjs" && test -f "$m${payload}/dist/llem.mjs"`,
    );
    const inspect = JSON.parse((await shOk('buildah', ['inspect', '--type', 'image', agent.ref])).stdout) as {
      OCIv1: { config: { Entrypoint?: string[] } };
    };
    assert.deepEqual(inspect.OCIv1.config.Entrypoint, [...AGENT_INSTALL_COMMAND]);
    await check(pytorch.ref, `test -f "$m${PYTORCH_SERVER_ROOT}/server/__main__.py" && ! test -e "$m${AGENT_DIR}"`);
  });

  test('the PyTorch image serves completions with its fake engine (python3 -m server from the image)', async () => {
    const ref = suite.images['pytorch']?.ref ?? '';
    const pod = `apiVersion: v1
kind: Pod
metadata: { name: pytorch-fake, namespace: ${EXP_NS} }
spec:
  restartPolicy: Never
  containers:
    - name: server
      image: ${ref}
      imagePullPolicy: Never
      args: ["--source", "fake", "--model", "fake-model", "--host", "127.0.0.1", "--port", "8000"]
      readinessProbe: { exec: { command: ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"] }, periodSeconds: 1 }
`;
    await kubectlOk(['apply', '-f', '-'], { input: pod });
    await kubectlOk(['-n', EXP_NS, 'wait', '--for=condition=Ready', 'pod/pytorch-fake', '--timeout=180s']);
    const req = JSON.stringify({ model: 'fake-model', prompt: 'hello', max_tokens: 5 });
    const out = await kubectlOk([
      '-n',
      EXP_NS,
      'exec',
      'pytorch-fake',
      '--',
      'python3',
      '-c',
      `import urllib.request,sys; r=urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8000/v1/completions', data=sys.argv[1].encode(), headers={'Content-Type':'application/json'})); print(r.read().decode())`,
      req,
    ]);
    const body = JSON.parse(out) as { choices?: unknown[]; usage?: { completion_tokens?: number } };
    assert.equal(body.choices?.length, 1, out);
    assert.equal(body.usage?.completion_tokens, 5, out);
    await kubectlOk(['-n', EXP_NS, 'delete', 'pod', 'pytorch-fake', '--wait=false']);
  });

  test('kubectl apply of examples/dev-cluster.yaml: the scheduler places agent pods on the GPU node and the experiment Succeeds', async () => {
    const t0 = Date.now();
    await kubectlOk(['-n', EXP_NS, 'apply', '-f', join(REPO, 'examples', 'dev-cluster.yaml')]);
    const status = await waitFor('dev-cluster Succeeded', 600, async () => {
      const ee = await kubectlJson<{ status?: ExperimentStatus }>(['-n', EXP_NS, 'get', 'ee', 'dev-cluster']);
      if (ee.status?.phase === 'Failed' || ee.status?.phase === 'Invalid')
        throw new FatalError(`dev-cluster ${ee.status.phase}: ${JSON.stringify(ee.status.conditions)}`);
      return ee.status?.phase === 'Succeeded' ? ee.status : undefined;
    });
    process.stderr.write(`real node: apply to Succeeded in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    const table = await kubectlOk(['-n', EXP_NS, 'get', 'ee', 'dev-cluster']);
    assert.match(table, /dev-cluster\s+Succeeded/);
    assert.ok(
      typeof status.best?.joulesPerToken === 'number' && status.best.joulesPerToken > 0,
      JSON.stringify(status.best),
    );
    // Every agent pod went through the real scheduler onto the node advertising nvidia.com/gpu.
    const events = await kubectlJson<{
      items: { reason?: string; message?: string; source?: { component?: string } }[];
    }>(['-n', EXP_NS, 'get', 'events']);
    const scheduled = events.items.filter((e) => e.reason === 'Scheduled');
    assert.ok(scheduled.length >= 6, `agent pods scheduled: ${scheduled.length}`);
    for (const e of scheduled) assert.match(e.message ?? '', new RegExp(`to ${NODE_NAME}`));
    const pulled = events.items.filter((e) => e.reason === 'Started' && e.source?.component === 'kubelet');
    assert.ok(pulled.length >= 12, 'the kubelet started the init and backend containers of every pod');
    const describe = await kubectlOk(['-n', EXP_NS, 'describe', 'ee', 'dev-cluster']);
    assert.match(describe, /Events:/);
    assert.doesNotMatch(describe, /Events:\s+<none>/);
    const results = await fetchResults(RELEASE_NS, status);
    const doc = JSON.parse(results) as {
      simulated?: boolean;
      results?: {
        configurations?: {
          metrics: { joulesPerToken: { mean: number; ci95Low: number | null } };
          latencyPooled: { ttftMs: { p50: number; p99: number }; itlMs: { p50: number; p99: number } };
        }[];
      };
    };
    assert.equal(doc.simulated, true, 'results from simulated telemetry say so');
    const configs = doc.results?.configurations ?? [];
    assert.equal(configs.length, 2);
    for (const c of configs) {
      assert.ok(c.metrics.joulesPerToken.mean > 0);
      assert.ok(c.latencyPooled.ttftMs.p99 >= c.latencyPooled.ttftMs.p50 && c.latencyPooled.ttftMs.p50 > 0);
      assert.ok(c.latencyPooled.itlMs.p99 >= c.latencyPooled.itlMs.p50);
    }
  });

  test("the chart's NATS admits only credentials signed from the chart's issuer secret (no anonymous or foreign client)", async () => {
    const svc = await kubectlJson<{ spec: { clusterIP: string } }>(['-n', RELEASE_NS, 'get', 'svc', 'llem-nats']);
    const servers = `nats://${svc.spec.clusterIP}:4222`;
    const refused = async (opts: Partial<NodeConnectionOptions>, what: string): Promise<void> => {
      await assert.rejects(
        async () => {
          const nc = await connect({ servers, timeout: 5_000, maxReconnectAttempts: 0, ...opts });
          await nc.close();
        },
        /authoriz|auth/i,
        `${what} was let in`,
      );
    };
    await refused({}, 'a client without credentials');
    await refused({ user: 'llem', pass: 'llem' }, 'a client with a password');
    const foreign = new BusIssuer(randomBytes(32).toString('hex')).controllerCreds();
    await refused(
      { authenticator: credsAuthenticator(new TextEncoder().encode(foreign)) },
      'a client signed by another issuer',
    );
    const nc = await connect({ servers, timeout: 5_000, ...(await natsAuth(RELEASE_NS)) });
    await nc.flush();
    await nc.close();
  });

  test('an image that does not exist: a clear condition naming the image, and no retry storm', async () => {
    // The chart's admission policy admits image overrides only under its allowed prefix, so an image outside
    // it never gets a pod; the missing image therefore sits under the prefix (this node has no registry).
    const outside = variant('outside-prefix', (y) =>
      y.replace('    - type: pytorch\n', '    - type: pytorch\n      image: localhost/llem-no-such-image:0\n'),
    );
    const denied = await kubectl(['-n', EXP_NS, 'apply', '-f', '-'], { input: outside });
    assert.notEqual(denied.code, 0, 'the admission policy let an image outside ghcr.io/llenergymeasure/ through');
    assert.match(denied.stderr, /llem-experiment-policy.*allowedImagePrefixes/);
    const missing = 'ghcr.io/llenergymeasure/llem-no-such-image:0';
    const manifest = variant('no-such-image', (y) =>
      y.replace('    - type: pytorch\n', `    - type: pytorch\n      image: ${missing}\n`),
    );
    await kubectlOk(['-n', EXP_NS, 'apply', '-f', '-'], { input: manifest });
    const status = await waitPhase('no-such-image', ['Failed', 'Succeeded'], 300);
    assert.equal(status.phase, 'Failed');
    const failed = status.conditions?.find((c) => c.type === 'Failed');
    assert.equal(failed?.status, 'True');
    assert.match(
      failed?.message ?? '',
      /(ErrImagePull|ImagePullBackOff).*ghcr\.io\/llenergymeasure\/llem-no-such-image:0/,
    );
    const ee = await kubectlJson<{ status?: { runs?: { attempt: number; phase: string }[] } }>([
      '-n',
      EXP_NS,
      'get',
      'ee',
      'no-such-image',
    ]);
    const runs = ee.status?.runs ?? [];
    assert.equal(runs.length, 6);
    assert.deepEqual(
      runs.map((r) => r.attempt),
      [0, 0, 0, 0, 0, 0],
      'an image error is not retried (retries: 2 in the manifest)',
    );
    assert.doesNotMatch(await experimentEvents('no-such-image'), /RunRetrying/);
    await kubectlOk(['-n', EXP_NS, 'delete', 'ee', 'no-such-image', '--wait=false']);
  });

  test('bringing the node down restores every host setting and leaves nothing of the node running', async (t) => {
    const diff = await suite.tearDown();
    if (diff === undefined) {
      t.skip('a node a user started (dev-cluster.sh up) was running: it is left up, so its teardown is not checked');
      return;
    }
    assert.deepEqual(diff, [], `the host differs from before up:\n${diff.join('\n')}`);
  });
});
