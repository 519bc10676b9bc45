// The generated CRD against a real kube-apiserver: it is accepted (structural, CEL compiles within
// the cost budget), every example is admitted, the CEL rules reject what zod rejects across fields,
// API-server defaulting fills the documented defaults, and the printer columns come back.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';

const skip = kubeSkipReason();
const REPO = new URL('../../../', import.meta.url);

async function example(name: string): Promise<Record<string, unknown>> {
  return parse(await readFile(new URL(`examples/${name}`, REPO), 'utf8')) as Record<string, unknown>;
}

function withSpec(doc: Record<string, unknown>, edit: (spec: Record<string, unknown>) => void): string {
  const copy = structuredClone(doc);
  edit(copy['spec'] as Record<string, unknown>);
  return stringify(copy);
}

void describe('EnergyExperiment CRD on a real API server', { skip, timeout: 300_000 }, () => {
  let kube: KubeCluster;
  before(async () => {
    kube = await startKube();
    await kube.kubectlOk(['create', 'namespace', 'llem']);
  });
  after(async () => kube?.stop());

  void it('admits every example that holds no extends', async () => {
    const files = (await readdir(new URL('examples/', REPO))).filter((f) => f.endsWith('.yaml'));
    for (const f of files) {
      const doc = await example(f);
      if (doc['extends'] !== undefined) continue;
      const r = await kube.kubectl(['apply', '--dry-run=server', '-n', 'llem', '-f', '-'], { input: stringify(doc) });
      assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    }
  });

  void it('fills the documented defaults', async () => {
    await kube.kubectlOk(['apply', '-n', 'llem', '-f', '-'], { input: stringify(await example('quickstart.yaml')) });
    const got = JSON.parse(await kube.kubectlOk(['get', 'ee', 'quickstart', '-n', 'llem', '-o', 'json'])) as {
      spec: {
        policy: { failurePolicy: string };
        placement: { gpusPerRun: number };
        backends: { extraArgs: string[] }[];
      };
    };
    assert.equal(got.spec.policy.failurePolicy, 'strict');
    assert.equal(got.spec.placement.gpusPerRun, 1);
    assert.deepEqual(got.spec.backends[0]?.extraArgs, []);
  });

  void it('shows the printer columns', async () => {
    const out = await kube.kubectlOk(['get', 'ee', '-n', 'llem']);
    assert.match(out, /NAME\s+STATUS\s+PROGRESS\s+BEST J\/TOKEN\s+AGE/);
  });

  void it('accepts a status through the status subresource and prints it in the columns', async () => {
    const status = {
      observedGeneration: 1,
      phase: 'Succeeded',
      conditions: [
        {
          type: 'Succeeded',
          status: 'True',
          reason: 'AllRunsSucceeded',
          message: 'All 4 runs succeeded.',
          lastTransitionTime: '2026-01-01T00:00:00Z',
          observedGeneration: 1,
        },
      ],
      progress: { total: 4, pending: 0, running: 0, succeeded: 4, failed: 0, summary: '4/4' },
      configurations: [
        {
          id: 'vllm-0123456789',
          backend: 'vllm',
          configHash: 'ab',
          point: { 'vllm.maxNumSeqs': '8' },
          cyclesSucceeded: 2,
          metrics: { joulesPerToken: { n: 2, mean: 0.5, std: 0.01, ci95Low: 0.41, ci95High: 0.59 } },
        },
      ],
      best: { configurationId: 'vllm-0123456789', backend: 'vllm', configHash: 'ab', joulesPerToken: 0.5 },
      simulated: true,
    };
    await kube.kubectlOk([
      'patch',
      'ee',
      'quickstart',
      '-n',
      'llem',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);
    const got = JSON.parse(await kube.kubectlOk(['get', 'ee', 'quickstart', '-n', 'llem', '-o', 'json'])) as {
      status: typeof status;
    };
    assert.deepEqual(got.status.configurations[0]?.metrics, status.configurations[0]?.metrics);
    const out = await kube.kubectlOk(['get', 'ee', 'quickstart', '-n', 'llem']);
    assert.match(out, /quickstart\s+Succeeded\s+4\/4\s+0\.5\s+/);
  });

  void it('rejects a name longer than 63 characters', async () => {
    const q = await example('quickstart.yaml');
    (q['metadata'] as Record<string, unknown>)['name'] = 'a'.repeat(64);
    const r = await kube.kubectl(['apply', '--dry-run=server', '-n', 'llem', '-f', '-'], { input: stringify(q) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /at most 63 characters/);
  });

  void it('rejects cross-field violations with the CEL messages', async () => {
    const q = await example('quickstart.yaml');
    const cases: [string, (s: Record<string, unknown>) => void][] = [
      [
        'must not exceed placement.gpusPerRun',
        (s) => ((s['backends'] as Record<string, unknown>[])[0] = { type: 'vllm', vllm: { tensorParallelSize: 2 } }),
      ],
      [
        'must set exactly one of huggingFace, pvc, random',
        (s) => ((s['model'] as Record<string, unknown>)['source'] = { pvc: { claimName: 'x' }, random: {} }),
      ],
      ['only allowed on a backend of type pytorch', (s) => (s['backends'] = [{ type: 'vllm', pytorch: {} }])],
      [
        'backend names (default: the type) must be unique',
        (s) => (s['backends'] = [{ type: 'vllm' }, { type: 'vllm' }]),
      ],
      [
        'ratePerSecond is required when workload.mode is rate',
        (s) => ((s['workload'] as Record<string, unknown>)['mode'] = 'rate'),
      ],
    ];
    for (const [message, edit] of cases) {
      const r = await kube.kubectl(['apply', '--dry-run=server', '-n', 'llem', '-f', '-'], {
        input: withSpec(q, edit),
      });
      assert.notEqual(r.code, 0, message);
      assert.match(r.stderr, new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    }
  });
});
