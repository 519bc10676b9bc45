// The chart against a real kube-apiserver (RBAC on): every scenario's manifests pass
// `kubectl apply --dry-run=server` (schema, admission, Pod Security "restricted" warnings), and the
// controller's ServiceAccount, bound by the chart's RBAC, may do what the controller does and
// nothing else: a Secret read is refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';
import {
  CHART_DIR,
  RELEASE_NAMESPACE,
  SCENARIO_NAMES,
  findObject,
  helmSkipReason,
  parseManifests,
  renderText,
  type K8sObject,
} from './chart.ts';

const skip = helmSkipReason() ?? kubeSkipReason();
const EXPERIMENT_NAMESPACE = 'team-a';

/** Enough of prometheus-operator's CRD for the API server to accept a ServiceMonitor. */
const SERVICE_MONITOR_CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: { kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`;

function namespaceYaml(name: string): string {
  // "restricted" warnings: the API server tells us when a pod template would violate the profile.
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels:
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/warn-version: latest
    pod-security.kubernetes.io/audit: restricted
`;
}

function podYaml(name: string): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${EXPERIMENT_NAMESPACE}, labels: { llem.dev/experiment: demo } }
spec:
  containers: [{ name: agent, image: example.invalid/agent:0 }]
`;
}

void describe('the chart against a real kube-apiserver', { skip, timeout: 300_000 }, () => {
  let kube: KubeCluster;
  let serviceAccount = '';

  before(async () => {
    // The chart's own CRD copy is checked below; nothing is pre-installed.
    kube = await startKube({ crds: [] });
    for (const ns of [RELEASE_NAMESPACE, EXPERIMENT_NAMESPACE])
      await kube.kubectlOk(['apply', '-f', '-'], { input: namespaceYaml(ns) });
    await kube.kubectlOk(['apply', '-f', '-'], { input: SERVICE_MONITOR_CRD });
    await kube.kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/servicemonitors.monitoring.coreos.com',
    ]);
  });

  after(async () => {
    await kube?.stop();
  });

  void test("the CRD in the chart's crds/ folder passes kubectl apply --dry-run=server", async () => {
    const r = await kube.kubectl(['apply', '--dry-run=server', '-f', join(CHART_DIR, 'crds')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /energyexperiments\.llem\.dev .*\(server dry run\)/);
  });

  for (const scenario of SCENARIO_NAMES) {
    void test(`every manifest of the ${scenario} values passes kubectl apply --dry-run=server without Pod Security warnings`, async () => {
      const manifests = await renderText(scenario);
      const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifests });
      assert.equal(r.code, 0, `${scenario}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /would violate PodSecurity/, `${scenario}: ${r.stderr}`);
      const applied = r.stdout
        .trim()
        .split('\n')
        .filter((l) => l.endsWith('(server dry run)'));
      assert.equal(applied.length, parseManifests(manifests).length, r.stdout);
    });
  }

  void test("an insecure override draws the server's Pod Security warning, so the check above can fail", async () => {
    const manifests = await renderText('minimal', [
      '--set',
      'controller.securityContext.allowPrivilegeEscalation=true',
    ]);
    const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifests });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /would violate PodSecurity "restricted:latest": allowPrivilegeEscalation/);
  });

  void describe("RBAC proof with the chart's ServiceAccount", () => {
    before(async () => {
      const objs = parseManifests(await renderText('default'));
      const rbac: K8sObject[] = objs.filter((o) =>
        ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind),
      );
      await kube.kubectlOk(['apply', '-f', '-'], { input: rbac.map((o) => JSON.stringify(o)).join('\n') });
      serviceAccount = findObject(objs, 'ServiceAccount').metadata.name;
    });

    /**
     * Asks the API server's authorizer, as `kubectl auth can-i --as` does, through a
     * SubjectAccessReview: it needs no discovery, so it works whether or not the CRD is installed.
     * `resource` is "plural[.group][/name]".
     */
    const canI = async (verb: string, resource: string, namespace: string, subresource?: string): Promise<boolean> => {
      const [typePart = '', name] = resource.split('/');
      const dot = typePart.indexOf('.');
      const attrs = {
        verb,
        namespace,
        ...(subresource === undefined ? {} : { subresource }),
        ...(name === undefined ? {} : { name }),
        resource: dot < 0 ? typePart : typePart.slice(0, dot),
        group: dot < 0 ? '' : typePart.slice(dot + 1),
      };
      const review = {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: `system:serviceaccount:${RELEASE_NAMESPACE}:${serviceAccount}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${RELEASE_NAMESPACE}`, 'system:authenticated'],
          resourceAttributes: attrs,
        },
      };
      const out = await kube.kubectlOk(['create', '-f', '-', '-o', 'json'], { input: JSON.stringify(review) });
      return (JSON.parse(out) as { status?: { allowed?: boolean } }).status?.allowed === true;
    };

    void test('the ServiceAccount may do every verb the controller uses', async () => {
      const allowed: [string, string, string, string?][] = [
        ...['get', 'list', 'watch', 'update', 'patch', 'delete'].map((v): [string, string, string] => [
          v,
          'energyexperiments.llem.dev',
          EXPERIMENT_NAMESPACE,
        ]),
        ['update', 'energyexperiments.llem.dev', EXPERIMENT_NAMESPACE, 'status'],
        ['patch', 'energyexperiments.llem.dev', EXPERIMENT_NAMESPACE, 'status'],
        ['update', 'energyexperiments.llem.dev', EXPERIMENT_NAMESPACE, 'finalizers'],
        ...['get', 'list', 'watch', 'create', 'delete'].map((v): [string, string, string] => [
          v,
          'pods',
          EXPERIMENT_NAMESPACE,
        ]),
        ['create', 'events', EXPERIMENT_NAMESPACE],
        ['patch', 'events', EXPERIMENT_NAMESPACE],
        ['create', 'secrets', EXPERIMENT_NAMESPACE],
        ['create', 'leases.coordination.k8s.io', RELEASE_NAMESPACE],
        ['get', 'leases.coordination.k8s.io/llem-leader', RELEASE_NAMESPACE],
        ['update', 'leases.coordination.k8s.io/llem-leader', RELEASE_NAMESPACE],
      ];
      for (const [verb, resource, ns, sub] of allowed) {
        assert.equal(
          await canI(verb, resource, ns, sub),
          true,
          `${verb} ${resource}${sub ? '/' + sub : ''} in ${ns} must be allowed`,
        );
      }
    });

    void test('verbs outside the role are refused: Secrets, pod exec, other Leases, creating experiments, nodes', async () => {
      const refused: [string, string, string, string?][] = [
        ['get', 'secrets', EXPERIMENT_NAMESPACE],
        ['list', 'secrets', RELEASE_NAMESPACE],
        ['watch', 'secrets', EXPERIMENT_NAMESPACE],
        ['update', 'secrets', EXPERIMENT_NAMESPACE],
        ['delete', 'secrets', EXPERIMENT_NAMESPACE],
        ['create', 'pods', EXPERIMENT_NAMESPACE, 'exec'],
        ['update', 'pods', EXPERIMENT_NAMESPACE],
        ['create', 'energyexperiments.llem.dev', EXPERIMENT_NAMESPACE],
        ['deletecollection', 'energyexperiments.llem.dev', EXPERIMENT_NAMESPACE],
        ['get', 'configmaps', EXPERIMENT_NAMESPACE],
        ['list', 'nodes', ''],
        ['update', 'leases.coordination.k8s.io/kube-scheduler', RELEASE_NAMESPACE],
        ['create', 'leases.coordination.k8s.io', EXPERIMENT_NAMESPACE],
        ['create', 'rolebindings.rbac.authorization.k8s.io', EXPERIMENT_NAMESPACE],
      ];
      for (const [verb, resource, ns, sub] of refused) {
        assert.equal(
          await canI(verb, resource, ns, sub),
          false,
          `${verb} ${resource}${sub ? '/' + sub : ''} in ${ns || 'the cluster'} must be refused`,
        );
      }
    });

    void test('with its own token the ServiceAccount creates pods and a Lease but is Forbidden to read Secrets', async () => {
      const token = (
        await kube.kubectlOk(['create', 'token', serviceAccount, '-n', RELEASE_NAMESPACE, '--duration=10m'])
      ).trim();
      const asController = (args: string[], input?: string): ReturnType<KubeCluster['kubectl']> =>
        kube.kubectl([`--token=${token}`, ...args], input === undefined ? {} : { input });

      const who = await asController(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
      assert.equal(who.stdout, `system:serviceaccount:${RELEASE_NAMESPACE}:${serviceAccount}`, who.stderr);

      const pod = await asController(['create', '-f', '-'], podYaml('agent-demo'));
      assert.equal(pod.code, 0, pod.stderr);
      const list = await asController(['get', 'pods', '-n', EXPERIMENT_NAMESPACE, '-o', 'name']);
      assert.match(list.stdout, /pod\/agent-demo/);
      const del = await asController(['delete', 'pod', 'agent-demo', '-n', EXPERIMENT_NAMESPACE, '--wait=false']);
      assert.equal(del.code, 0, del.stderr);

      const lease = `apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: { name: llem-leader, namespace: ${RELEASE_NAMESPACE} }
spec: { holderIdentity: test, leaseDurationSeconds: 15 }
`;
      const created = await asController(['create', '-f', '-'], lease);
      assert.equal(created.code, 0, created.stderr);

      await kube.kubectlOk([
        'create',
        'secret',
        'generic',
        'hf-token',
        '-n',
        EXPERIMENT_NAMESPACE,
        '--from-literal=token=hf_not_a_real_token',
      ]);
      const secret = await asController(['get', 'secret', 'hf-token', '-n', EXPERIMENT_NAMESPACE, '-o', 'yaml']);
      assert.notEqual(secret.code, 0);
      assert.match(secret.stderr, /Forbidden|forbidden/);
      assert.doesNotMatch(secret.stdout, /hf_not_a_real_token|aGZfbm90X2FfcmVhbF90b2tlbg/);
    });
  });
});
