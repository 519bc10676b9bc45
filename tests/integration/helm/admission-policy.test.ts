// The chart's ValidatingAdmissionPolicy on a real kube-apiserver: an EnergyExperiment whose pods
// would run an image, service account, priority class, runtime class or toleration outside the
// chart's allow-lists is refused at admission, with a message naming the field and the value to set.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';
import { helmSkipReason, parseManifests, renderText } from './chart.ts';

const skip = helmSkipReason() ?? kubeSkipReason();
const NAMESPACE = 'team-a';

function experiment(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name, namespace: NAMESPACE },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }], ...spec },
  });
}

void describe("the chart's experiment admission policy", { skip, timeout: 300_000 }, () => {
  let kube: KubeCluster;

  before(async () => {
    kube = await startKube();
    await kube.kubectlOk(['create', 'namespace', NAMESPACE]);
    const policy = parseManifests(await renderText('default')).filter((o) =>
      o.kind.startsWith('ValidatingAdmissionPolicy'),
    );
    assert.equal(policy.length, 2, 'the default values ship the policy and its binding');
    await kube.kubectlOk(['apply', '-f', '-'], { input: policy.map((o) => JSON.stringify(o)).join('\n') });
    // The policy becomes active asynchronously: wait until a forbidden image is refused.
    const probe = experiment('probe', { backends: [{ type: 'pytorch', image: 'docker.io/evil/x:1' }] });
    for (const until = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 500))) {
      const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: probe });
      if (r.code !== 0) break;
      if (Date.now() > until) throw new Error('the admission policy never became active');
    }
  });

  after(async () => {
    await kube?.stop();
  });

  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'an image outside the allowed registries',
      { backends: [{ type: 'pytorch', image: 'docker.io/evil/x:1' }] },
      /spec\.backends\[\]\.image must start with one of \["ghcr\.io\/llenergymeasure\/"\]/,
    ],
    [
      'a service account',
      { placement: { podTemplate: { serviceAccountName: 'cluster-admin-sa' } } },
      /serviceAccountName must be one of \[\]/,
    ],
    [
      'a priority class',
      { placement: { podTemplate: { priorityClassName: 'system-node-critical' } } },
      /priorityClassName must be one of \[\]/,
    ],
    [
      'a runtime class outside the list',
      { placement: { runtimeClassName: 'kata-privileged' } },
      /runtimeClassName must be one of \["nvidia"\]/,
    ],
    [
      'a toleration of the control-plane taint',
      { placement: { tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists' }] } },
      /tolerations\[\]\.key must be one of/,
    ],
    [
      'a key-less toleration that tolerates every taint',
      { placement: { tolerations: [{ operator: 'Exists' }] } },
      /tolerations\[\]\.key must be one of/,
    ],
  ];
  for (const [what, spec, message] of cases) {
    void test(`refuses ${what}`, async () => {
      const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: experiment('bad', spec) });
      assert.notEqual(r.code, 0, `${what} must be refused`);
      assert.match(r.stderr, message);
    });
  }

  void test('admits an experiment within the lists (allowed image, nvidia runtime, GPU toleration)', async () => {
    const spec = {
      backends: [{ type: 'pytorch', image: 'ghcr.io/llenergymeasure/llem-pytorch:0.2.0' }],
      placement: {
        runtimeClassName: 'nvidia',
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
    };
    const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: experiment('good', spec) });
    assert.equal(r.code, 0, r.stderr);
  });
});
