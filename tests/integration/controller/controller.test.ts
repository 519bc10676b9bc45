// The controller against a real kube-apiserver + etcd and a real nats-server, with the node player
// running every agent pod as a local `llem agent` process (simulated GPU + mock server).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { experimentCheckpointKey } from '../../../lib/bus/subjects.ts';
import { kubeSkipReason } from '../../support/kube.ts';
import { CONTROLLER_METRICS } from '../../../controller/index.ts';
import {
  condition,
  createNamespace,
  getExperiment,
  manifest,
  sleep,
  startEnv,
  waitFor,
  type ExperimentJson,
  type TestEnv,
} from './env.ts';

const skip = kubeSkipReason();

async function podsOf(
  env: TestEnv,
  ns: string,
): Promise<
  {
    metadata: {
      name: string;
      labels: Record<string, string>;
      ownerReferences?: { kind: string; name: string; controller?: boolean }[];
    };
    spec: { initContainers?: unknown[]; containers: { command?: string[]; args?: string[] }[] };
  }[]
> {
  const out = await env.kube.kubectlOk(['get', 'pods', '-n', ns, '-o', 'json']);
  return (JSON.parse(out) as { items: never[] }).items;
}

async function phaseIs(env: TestEnv, ns: string, name: string, phases: string[]): Promise<ExperimentJson | undefined> {
  const e = await getExperiment(env, ns, name);
  return phases.includes(e?.status?.phase ?? '') ? e : undefined;
}

void describe('llem controller against a real API server', { skip, timeout: 900_000 }, () => {
  let env: TestEnv;
  before(async () => {
    env = await startEnv();
    await env.startController();
  });
  after(async () => {
    await env?.close();
  });

  void test('runs every planned run in its own pod and shows the result in kubectl get ee', async () => {
    const ns = 'happy';
    await createNamespace(env, ns);
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: manifest('two-configs', ns, { configs: 2 }) });
    // Pods of a succeeded run are deleted (their data is on the stream): look at them while they run.
    const pods = await waitFor('both pods exist', async () => {
      const list = await podsOf(env, ns);
      return list.length === 2 ? list : undefined;
    });
    const done = await waitFor(
      'experiment Succeeded',
      () => phaseIs(env, ns, 'two-configs', ['Succeeded', 'Failed']),
      240_000,
    );
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.conditions));
    assert.equal(done.status?.progress?.summary, '2/2');
    assert.equal(condition(done, 'Validated')?.status, 'True');
    assert.equal(condition(done, 'Succeeded')?.status, 'True');
    assert.equal(done.status?.configurations?.length, 2);
    assert.ok((done.status?.best?.joulesPerToken ?? 0) > 0, 'best configuration has a J/token figure');
    assert.match(done.status?.artifact?.uri ?? '', /^nats-obj:\/\//);
    assert.equal(done.status?.simulated, true);
    assert.ok(done.metadata.finalizers?.includes('llem.dev/cleanup'));

    assert.equal(
      env.player.podsSeen().filter((n) => n.startsWith('two-configs-')).length,
      2,
      'one pod per run replica',
    );
    await waitFor('finished pods released', async () => ((await podsOf(env, ns)).length === 0 ? true : undefined));
    for (const p of pods) {
      assert.equal(p.metadata.labels['llem.dev/experiment'], 'two-configs');
      assert.ok(p.metadata.labels['llem.dev/run'] !== undefined);
      assert.equal(p.metadata.ownerReferences?.[0]?.kind, 'EnergyExperiment');
      assert.equal(p.metadata.ownerReferences?.[0]?.controller, true);
      assert.equal(p.spec.initContainers?.length, 1);
      assert.deepEqual(
        p.spec.containers[0]?.command?.slice(2),
        ['agent', '--'],
        'after /llem/bin/node /llem/bin/llem.mjs',
      );
    }

    const table = await env.kube.kubectlOk(['get', 'ee', '-n', ns]);
    const [header = '', row = ''] = table.trim().split('\n');
    assert.match(header, /NAME\s+STATUS\s+PROGRESS\s+BEST J\/TOKEN\s+AGE/);
    assert.match(row, /two-configs\s+Succeeded\s+2\/2\s+\d/);
  });

  void test('serves every documented llem_ metric on /metrics and reports ready', async () => {
    const port = env.controllers[0]?.controller.probePort();
    assert.ok(port !== undefined);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const m of CONTROLLER_METRICS) assert.match(metrics, new RegExp(`# TYPE ${m.name} ${m.type}`), m.name);
    assert.match(metrics, /llem_reconcile_total\{result="(success|requeue)"\} [1-9]/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  });

  void test('a second reconcile with nothing new writes nothing', async () => {
    const ns = 'happy';
    await env.kube.kubectlOk(['annotate', 'ee', 'two-configs', '-n', ns, 'test/poke=1']);
    const rv = (await getExperiment(env, ns, 'two-configs'))?.metadata.resourceVersion;
    await sleep(3000);
    assert.equal((await getExperiment(env, ns, 'two-configs'))?.metadata.resourceVersion, rv);
  });

  void test('rejects manifests that break the schema or a CEL rule at the API server', async () => {
    const ns = 'invalid';
    await createNamespace(env, ns);
    const badType = manifest('bad-type', ns).replace('- type: pytorch', '- type: sglang');
    const r1 = await env.kube.kubectl(['apply', '-f', '-'], { input: badType });
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, /spec\.backends\[0\]\.type/);
    const dupNames = manifest('dup-names', ns).replace('- type: pytorch', '- type: pytorch\n    - type: pytorch');
    const r2 = await env.kube.kubectl(['apply', '-f', '-'], { input: dupNames });
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /unique/);
  });

  void test('marks a spec the server accepts but the planner rejects as Validated=False, without pods', async () => {
    const ns = 'invalid';
    const text = manifest('tp-too-big', ns)
      .replace('- type: pytorch', '- type: vllm')
      .replace('pytorch.maxBatchSize: [1]', 'vllm.tensorParallelSize: [1, 2]');
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: text });
    const e = await waitFor('Validated=False', async () => {
      const x = await getExperiment(env, ns, 'tp-too-big');
      return condition(x, 'Validated')?.status === 'False' ? x : undefined;
    });
    assert.equal(e.status?.phase, 'Invalid');
    assert.match(condition(e, 'Validated')?.message ?? '', /spec\.sweep/);
    assert.equal(condition(e, 'Validated')?.reason, 'SpecInvalid');
    assert.equal((await podsOf(env, ns)).length, 0);
  });

  void test('retries a run whose pod was OOM-killed and merges only the complete attempt', async () => {
    const ns = 'oom';
    await createNamespace(env, ns);
    // Long enough (~10 s) that the kill 4 s after the pod appears lands mid-run on a slow machine.
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: manifest('oom', ns, { requests: 120 }) });
    const first = await waitFor('first pod running', async () =>
      (await podsOf(env, ns)).find((p) => p.metadata.labels['llem.dev/attempt'] === '0'),
    );
    await sleep(4000);
    await env.player.fail(ns, first.metadata.name, {
      exitCode: 137,
      reason: 'OOMKilled',
      message: 'Memory cgroup out of memory',
    });
    const done = await waitFor('experiment finished', () => phaseIs(env, ns, 'oom', ['Succeeded', 'Failed']), 240_000);
    assert.equal(done.status?.phase, 'Succeeded');
    assert.equal(done.status?.runs?.[0]?.attempt, 1, 'the retry is attempt 1');
    assert.equal(done.status?.configurations?.[0]?.metrics['energyJoules']?.n, 1, 'one complete attempt counted');
    const events = await env.kube.kubectlOk([
      'get',
      'events',
      '-n',
      ns,
      '-o',
      'jsonpath={range .items[*]}{.reason} {.message}{"\\n"}{end}',
    ]);
    assert.match(events, /RunRetrying .*OOMKilled/);
  });

  void test('a restarted controller finishes the experiment without re-running completed runs', async () => {
    const ns = 'restart';
    await createNamespace(env, ns);
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: manifest('restart', ns, { configs: 3, parallelism: 1 }) });
    await waitFor(
      'one run succeeded',
      async () => ((await getExperiment(env, ns, 'restart'))?.status?.progress?.succeeded ?? 0) >= 1 || undefined,
      180_000,
    );
    const first = env.controllers[0]?.controller;
    assert.ok(first !== undefined);
    await env.stopController(first);
    await env.startController();
    const done = await waitFor(
      'experiment finished',
      () => phaseIs(env, ns, 'restart', ['Succeeded', 'Failed']),
      300_000,
    );
    assert.equal(done.status?.phase, 'Succeeded');
    assert.deepEqual(
      done.status?.runs?.map((r) => r.attempt),
      [0, 0, 0],
      'no run was started twice',
    );
    assert.equal(env.player.podsSeen().filter((n) => n.startsWith('restart-')).length, 3, 'exactly one pod per run');
    for (const c of done.status?.configurations ?? []) assert.equal(c.metrics['energyJoules']?.n, 1);
  });

  void test('of two controllers exactly one leads, and the other takes over when it stops', async () => {
    const leader = env.controllers[0]?.controller;
    assert.ok(leader?.isLeader);
    const standby = await env.startController();
    await sleep(1500);
    assert.equal(standby.isLeader, false);
    const lease = JSON.parse(
      await env.kube.kubectlOk(['get', 'lease', 'llem-controller', '-n', 'default', '-o', 'json']),
    ) as { spec: { holderIdentity: string } };
    assert.equal(lease.spec.holderIdentity, leader.identity);
    await env.stopController(leader);
    await waitFor('standby leads', () => (standby.isLeader ? true : undefined), 15_000);
  });

  void test('deleting an experiment mid-run removes its pods, consumer and checkpoint', async () => {
    const ns = 'delete';
    await createNamespace(env, ns);
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: manifest('doomed', ns, { requests: 200 }) });
    const e = await waitFor('a pod exists', async () =>
      (await podsOf(env, ns)).length > 0 ? getExperiment(env, ns, 'doomed') : undefined,
    );
    await sleep(3000);
    await env.kube.kubectlOk(['delete', 'ee', 'doomed', '-n', ns, '--timeout=60s']);
    assert.equal((await podsOf(env, ns)).length, 0);
    const bus = await env.openBus();
    try {
      assert.equal(await bus.getCheckpoint(experimentCheckpointKey(ns, e?.metadata.uid ?? '')), null);
    } finally {
      await bus.close();
    }
  });
});
