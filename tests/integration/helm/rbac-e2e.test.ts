// The RBAC proof end to end: the controller, authenticated with a token of the chart's
// ServiceAccount and nothing else, runs an experiment to completion against a real API server
// with RBAC on (informers, finalizer, pods, status, Events, the Lease, deletion after the TTL).
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { after, before, describe, test } from 'node:test';
import { kubeSkipReason } from '../../support/kube.ts';
import { createNamespace, getExperiment, manifest, startEnv, waitFor, type TestEnv } from '../controller/env.ts';
import { RELEASE_NAMESPACE, findObject, helmSkipReason, render, type K8sObject } from './chart.ts';

const skip = helmSkipReason() ?? kubeSkipReason();
const NS = 'rbac-e2e';

function serviceAccountKubeConfig(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: 'chart-sa', token }],
    contexts: [{ name: 'chart-sa', cluster: 'test', user: 'chart-sa' }],
    currentContext: 'chart-sa',
  });
  return kc;
}

void describe("the controller under the chart's ServiceAccount", { skip, timeout: 600_000 }, () => {
  let env: TestEnv;
  let leaseName = '';

  before(async () => {
    env = await startEnv();
    const objs = await render('default');
    const rbac: K8sObject[] = objs.filter((o) =>
      ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind),
    );
    await createNamespace(env, RELEASE_NAMESPACE);
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: rbac.map((o) => JSON.stringify(o)).join('\n') });
    const sa = findObject(objs, 'ServiceAccount').metadata.name;
    const args =
      (
        findObject(objs, 'Deployment', '-controller')['spec'] as {
          template: { spec: { containers: { args: string[] }[] } };
        }
      ).template.spec.containers[0]?.args ?? [];
    leaseName = args.find((a) => a.startsWith('--lease-name='))?.split('=')[1] ?? '';
    const token = (await env.kube.kubectlOk(['create', 'token', sa, '-n', RELEASE_NAMESPACE, '--duration=1h'])).trim();
    await env.startController({
      kubeConfig: serviceAccountKubeConfig(env.kube.server, token),
      leaderElection: {
        enabled: true,
        namespace: RELEASE_NAMESPACE,
        name: leaseName,
        leaseDurationMs: 8000,
        renewDeadlineMs: 5000,
        retryPeriodMs: 500,
      },
    });
  });

  after(async () => {
    await env?.close();
  });

  void test('completes an experiment, records Events, holds the Lease and deletes the experiment after its TTL', async () => {
    await createNamespace(env, NS);
    await env.kube.kubectlOk(['apply', '-f', '-'], {
      input: manifest('under-sa', NS, { extra: '    ttlSecondsAfterFinished: 20\n' }),
    });
    const done = await waitFor(
      'experiment finished',
      async () => {
        const e = await getExperiment(env, NS, 'under-sa');
        return ['Succeeded', 'Failed'].includes(e?.status?.phase ?? '') ? e : undefined;
      },
      240_000,
    );
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.conditions));
    assert.ok(
      done.metadata.finalizers?.includes('llem.dev/cleanup'),
      'the finalizer was added under the ServiceAccount',
    );

    const events = await env.kube.kubectlOk([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.kind=EnergyExperiment',
      '-o',
      'name',
    ]);
    assert.notEqual(events.trim(), '', 'the controller recorded Events');
    const holder = await env.kube.kubectlOk([
      'get',
      'lease',
      leaseName,
      '-n',
      RELEASE_NAMESPACE,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    assert.notEqual(holder.trim(), '', "the controller holds the chart's Lease");

    await waitFor(
      'experiment deleted after ttlSecondsAfterFinished',
      async () => ((await getExperiment(env, NS, 'under-sa')) === undefined ? true : undefined),
      60_000,
    );
    const pods = await env.kube.kubectlOk(['get', 'pods', '-n', NS, '-o', 'name']);
    assert.equal(pods.trim(), '', 'its pods were deleted');
  });
});
