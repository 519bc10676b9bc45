// The chart, rendered by the real helm binary: lint, the three value scenarios, secure defaults,
// least-privilege RBAC, credentials only through secretKeyRef, and the values schema.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  CHART_DIR,
  REPO,
  RELEASE_NAMESPACE,
  SCENARIO_NAMES,
  SCENARIOS,
  findObject,
  grantedPermissions,
  helm,
  helmSkipReason,
  render,
  type K8sObject,
} from './chart.ts';

const skip = helmSkipReason();

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  securityContext?: Record<string, unknown>;
  livenessProbe?: { httpGet?: { path: string } };
  readinessProbe?: { httpGet?: { path: string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  serviceAccountName?: string;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string } }[];
}

function podSpec(o: K8sObject): PodSpec {
  return (o['spec'] as { template: { spec: PodSpec } }).template.spec;
}

function controllerContainer(objs: K8sObject[]): Container {
  const c = podSpec(findObject(objs, 'Deployment', '-controller')).containers[0];
  assert.ok(c !== undefined, 'the controller Deployment has a container');
  return c;
}

/** The verbs the controller uses (controller/ code); anything more is a least-privilege failure. */
const CONTROLLER_PERMISSIONS = [
  'llem.dev/energyexperiments:get',
  'llem.dev/energyexperiments:list',
  'llem.dev/energyexperiments:watch',
  'llem.dev/energyexperiments:update',
  'llem.dev/energyexperiments:patch',
  'llem.dev/energyexperiments:delete',
  'llem.dev/energyexperiments/status:get',
  'llem.dev/energyexperiments/status:update',
  'llem.dev/energyexperiments/status:patch',
  'llem.dev/energyexperiments/finalizers:update',
  '/pods:get',
  '/pods:list',
  '/pods:watch',
  '/pods:create',
  '/pods:delete',
  '/events:create',
  '/events:patch',
  // Each run's bus credentials (ADR 0011): create only, never read.
  '/secrets:create',
];
const LEASE_PERMISSIONS = [
  'coordination.k8s.io/leases:get',
  'coordination.k8s.io/leases:create',
  'coordination.k8s.io/leases:update',
];

void describe('helm chart helm/llem', { skip }, () => {
  void test('helm lint --strict passes for the default, external-NATS and minimal values', async () => {
    for (const scenario of SCENARIO_NAMES) {
      const r = await helm(['lint', '--strict', CHART_DIR, '--namespace', RELEASE_NAMESPACE, ...SCENARIOS[scenario]]);
      assert.equal(r.code, 0, `helm lint --strict (${scenario}):\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  void test('the default values install the controller, RBAC, NATS with JetStream on a PVC, NetworkPolicies and the dashboard', async () => {
    const objs = await render('default');
    const kinds = objs.map((o) => o.kind).sort();
    for (const kind of [
      'Deployment',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'StatefulSet',
      'NetworkPolicy',
      'ConfigMap',
      'Secret',
      'Service',
    ]) {
      assert.ok(kinds.includes(kind), `default render has a ${kind} (got ${kinds.join(', ')})`);
    }
    const sts = findObject(objs, 'StatefulSet', '-nats');
    const claim = (
      sts['spec'] as { volumeClaimTemplates: { spec: { resources: { requests: { storage: string } } } }[] }
    ).volumeClaimTemplates[0];
    assert.equal(claim?.spec.resources.requests.storage, '10Gi');
    const nats = podSpec(sts).containers[0];
    assert.match(
      nats?.image ?? '',
      /^docker\.io\/library\/nats:\d+\.\d+\.\d+(-alpine)?$/,
      'official nats image, pinned to a version',
    );
    const conf = String((findObject(objs, 'ConfigMap', '-nats-config')['data'] as Record<string, string>)['nats.conf']);
    assert.match(conf, /jetstream \{[^}]*store_dir: \/data\/jetstream/);
    const dash = findObject(objs, 'ConfigMap', '-dashboard');
    assert.equal(dash.metadata.labels?.['grafana_dashboard'], '1');
    JSON.parse((dash['data'] as Record<string, string>)['llem.json'] ?? '');
    assert.equal(
      objs.some((o) => o.kind === 'ServiceMonitor'),
      false,
      'ServiceMonitor is opt-in',
    );
  });

  void test('the controller runs with two malloc arenas and an eager trim in the chart and in its image', async () => {
    for (const scenario of SCENARIO_NAMES) {
      const deployment = findObject(await render(scenario), 'Deployment', '-controller');
      const env = podSpec(deployment).containers[0]?.env ?? [];
      const value = (name: string): string | undefined => env.find((e) => e.name === name)?.value;
      assert.equal(value('MALLOC_ARENA_MAX'), '2', `${scenario}: a released experiment's memory goes back`);
      assert.equal(value('MALLOC_TRIM_THRESHOLD_'), '1048576', scenario);
    }
    const dockerfile = await readFile(join(REPO, 'images/controller/Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
    assert.match(runtime, /ENV MALLOC_ARENA_MAX=2/);
    assert.match(runtime, /MALLOC_TRIM_THRESHOLD_=1048576/);
  });

  void test('the minimal values render no NATS, no NetworkPolicy and no dashboard, and disable leader election', async () => {
    const objs = await render('minimal');
    for (const kind of ['StatefulSet', 'NetworkPolicy', 'Secret', 'ServiceMonitor']) {
      assert.equal(
        objs.some((o) => o.kind === kind),
        false,
        `minimal render has no ${kind}`,
      );
    }
    assert.equal(
      objs.some((o) => o.metadata.name.endsWith('-dashboard')),
      false,
    );
    const args = controllerContainer(objs).args ?? [];
    assert.ok(args.includes('--no-leader-elect'), args.join(' '));
    assert.equal(
      grantedPermissions(objs).has('coordination.k8s.io/leases:create'),
      false,
      'no Lease rights without leader election',
    );
  });

  void test('every scenario runs `llem controller` with probes, resources and restricted security defaults', async () => {
    for (const scenario of SCENARIO_NAMES) {
      const objs = await render(scenario);
      const deploy = findObject(objs, 'Deployment', '-controller');
      const pod = podSpec(deploy);
      const c = controllerContainer(objs);
      assert.equal(c.args?.[0], 'controller', `${scenario}: container runs llem controller`);
      assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
      assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
      assert.ok(
        c.resources?.requests?.['cpu'] !== undefined && c.resources.limits?.['memory'] !== undefined,
        `${scenario}: resources set`,
      );
      assert.equal(pod.securityContext?.['runAsNonRoot'], true);
      assert.deepEqual(pod.securityContext?.['seccompProfile'], { type: 'RuntimeDefault' });
      assert.equal(c.securityContext?.['readOnlyRootFilesystem'], true);
      assert.equal(c.securityContext?.['allowPrivilegeEscalation'], false);
      assert.deepEqual(c.securityContext?.['capabilities'], { drop: ['ALL'] });
      assert.equal(pod.serviceAccountName, findObject(objs, 'ServiceAccount').metadata.name);
      const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
      assert.match(env.get('LLEM_AGENT_IMAGE') ?? '', /llem-agent:/);
      const backends = (env.get('LLEM_BACKEND_IMAGES') ?? '').split(',').map((p) => p.split('=')[0]);
      assert.deepEqual(backends, ['pytorch', 'vllm', 'tensorrt'], `${scenario}: a default image per backend type`);
      assert.match(env.get('LLEM_NATS_URL') ?? '', /^(nats|tls):\/\//);
    }
  });

  void test('`llem controller` accepts every flag the chart passes, in every scenario', async () => {
    const { main } = await import('../../../cli/commands/controller.ts');
    for (const scenario of SCENARIO_NAMES) {
      for (const extra of [[], ['--set', 'controller.watchNamespace=team-a', '--set', 'controller.simulate=true']]) {
        const args = controllerContainer(await render(scenario, extra)).args ?? [];
        // --help returns before anything connects, after the strict flag parser has seen every flag.
        assert.equal(await main([...args.slice(1), '--help']), 0, `${scenario}: llem ${args.join(' ')}`);
      }
    }
  });

  void test('leader election is on by default and names a Lease the Role may get and update', async () => {
    const objs = await render('default');
    const args = controllerContainer(objs).args ?? [];
    assert.ok(args.includes('--leader-elect'), args.join(' '));
    const id = args.find((a) => a.startsWith('--lease-name='))?.split('=')[1];
    const role = findObject(objs, 'Role', '-leader-election');
    assert.equal(role.metadata.namespace, RELEASE_NAMESPACE);
    const named = ((role['rules'] ?? []) as { resourceNames?: string[]; verbs: string[] }[]).find(
      (r) => r.resourceNames !== undefined,
    );
    assert.deepEqual(named?.resourceNames, [id]);
    assert.deepEqual(named?.verbs, ['get', 'update']);
  });

  void test('RBAC grants exactly the verbs the controller uses and only create on Secrets, in every scenario', async () => {
    for (const scenario of SCENARIO_NAMES) {
      const objs = await render(scenario);
      const granted = grantedPermissions(objs);
      const expected = new Set([...CONTROLLER_PERMISSIONS, ...(scenario === 'minimal' ? [] : LEASE_PERMISSIONS)]);
      assert.deepEqual([...granted].sort(), [...expected].sort(), `${scenario}: granted permissions`);
      for (const p of granted) {
        assert.doesNotMatch(
          p,
          /\*|secrets:(?!create$)|pods\/exec|nodes/,
          `${scenario}: ${p} is broader than the controller needs`,
        );
      }
    }
  });

  void test('watchNamespace turns the ClusterRole into a Role in the watched namespace', async () => {
    const objs = await render('default', ['--set', 'controller.watchNamespace=team-a']);
    assert.equal(
      objs.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding'),
      false,
    );
    const role = findObject(objs, 'Role', '-controller');
    assert.equal(role.metadata.namespace, 'team-a');
    assert.ok((controllerContainer(objs).args ?? []).includes('--namespace=team-a'));
  });

  void test('NATS credentials reach the controller only through secretKeyRef and kubelet-mounted Secret volumes', async () => {
    const ext = controllerContainer(await render('external-nats'));
    const refs = (ext.env ?? []).filter((e) => e.valueFrom?.secretKeyRef !== undefined);
    assert.deepEqual(
      refs.map((e) => `${e.name}=${e.valueFrom?.secretKeyRef?.name}/${e.valueFrom?.secretKeyRef?.key}`).sort(),
      ['LLEM_NATS_PASSWORD=llem-nats-credentials/password', 'LLEM_NATS_USER=llem-nats-credentials/user'],
    );
    const env = new Map((ext.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.get('LLEM_NATS_CA_FILE'), '/etc/llem/nats-tls/ca.crt');
    assert.ok(ext.volumeMounts?.some((m) => m.mountPath === '/etc/llem/nats-tls'));
    for (const e of ext.env ?? [])
      assert.doesNotMatch(e.value ?? '', /password|secret-value/i, `${e.name} carries no inline secret`);

    const def = controllerContainer(await render('default'));
    const issuer = (def.env ?? []).find((e) => e.name === 'LLEM_NATS_ISSUER_SECRET');
    assert.equal(issuer?.valueFrom?.secretKeyRef?.key, 'issuerSecret');
    assert.equal(issuer?.value, undefined);
    assert.equal(
      (def.env ?? []).some((e) => e.name === 'LLEM_NATS_PASSWORD' || e.name === 'LLEM_NATS_USER'),
      false,
    );

    const creds = await render('external-nats', [
      '--set',
      'nats.external.userKey=',
      '--set',
      'nats.external.passwordKey=',
      '--set',
      'nats.external.credsKey=controller.creds',
    ]);
    const pod = podSpec(findObject(creds, 'Deployment', '-controller'));
    assert.ok(
      pod.volumes?.some((v) => v.secret?.secretName === 'llem-nats-credentials'),
      'creds file mounted from the Secret',
    );
    assert.equal(
      new Map((pod.containers[0]?.env ?? []).map((e) => [e.name, e.value])).get('LLEM_NATS_CREDS_FILE'),
      '/etc/llem/nats-creds/nats.creds',
    );
  });

  void test('more than one NATS authentication method is refused with a message that says which keys to clear', async () => {
    const r = await helm([
      'template',
      'llem',
      CHART_DIR,
      ...SCENARIOS['external-nats'],
      '--set',
      'nats.external.tokenKey=token',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nats\.external: choose one of userKey\/passwordKey, tokenKey, credsKey/);
  });

  void test('an external NATS URL with embedded credentials is refused with a pointer to the Secret keys, without echoing them', async () => {
    const r = await helm([
      'template',
      'llem',
      CHART_DIR,
      ...SCENARIOS['external-nats'],
      '--set',
      'nats.external.url=nats://agent:hunter2@nats:4222',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /nats\.external\.url must not embed credentials.*existingSecret.*userKey\/passwordKey, tokenKey or credsKey/,
    );
    assert.doesNotMatch(r.stderr, /hunter2/);
  });

  void test('with nats.external.issuerSecretKey the controller signs run credentials from the Secret and no other method is allowed', async () => {
    const noOther = ['--set', 'nats.external.userKey=', '--set', 'nats.external.passwordKey='];
    const c = controllerContainer(
      await render('external-nats', [...noOther, '--set', 'nats.external.issuerSecretKey=issuer']),
    );
    const issuer = (c.env ?? []).find((e) => e.name === 'LLEM_NATS_ISSUER_SECRET');
    assert.deepEqual(issuer?.valueFrom?.secretKeyRef, { name: 'llem-nats-credentials', key: 'issuer' });
    const both = await helm([
      'template',
      'llem',
      CHART_DIR,
      ...SCENARIOS['external-nats'],
      '--set',
      'nats.external.issuerSecretKey=issuer',
    ]);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /issuerSecretKey: the controller signs its own credentials/);
  });

  void test('the bundled NATS trusts only what its init container derives from the auth Secret, and has no anonymous user', async () => {
    const objs = await render('default');
    const conf = String((findObject(objs, 'ConfigMap', '-nats-config')['data'] as Record<string, string>)['nats.conf']);
    assert.doesNotMatch(conf, /no_auth_user|authorization/);
    const sts = findObject(objs, 'StatefulSet', '-nats')['spec'] as {
      template: {
        spec: {
          initContainers?: {
            name: string;
            args: string[];
            env: { name: string; valueFrom?: { secretKeyRef?: { key: string } } }[];
          }[];
          containers: { command: string[] }[];
        };
      };
    };
    const init = sts.template.spec.initContainers?.find((x) => x.name === 'trust');
    assert.deepEqual(init?.args.slice(0, 1), ['nats-server-config']);
    assert.equal(
      init?.env.find((e) => e.name === 'LLEM_NATS_ISSUER_SECRET')?.valueFrom?.secretKeyRef?.key,
      'issuerSecret',
    );
    assert.deepEqual(sts.template.spec.containers[0]?.command, ['nats-server', '--config', '/etc/nats/nats.conf']);
  });

  void test('the experiment admission policy ships by default on Kubernetes 1.30+, and is left out on older clusters (NOTES warn)', async () => {
    const kinds = (objs: K8sObject[]): string[] =>
      objs
        .map((o) => o.kind)
        .filter((k) => k.startsWith('ValidatingAdmissionPolicy'))
        .sort();
    assert.deepEqual(kinds(await render('default')), ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    assert.deepEqual(kinds(await render('default', ['--kube-version', '1.29.0'])), []);
  });

  void test('values.schema.json rejects a wrong type, an unknown key and an external NATS without a URL', async () => {
    const cases: [string[], RegExp][] = [
      [['--set', 'controller.replicas=two'], /replicas/],
      [['--set', 'controler.replicas=1'], /controler/],
      [['--set', 'nats.deploy=false'], /url/],
      [['--set', 'nats.external.url=http://nats:4222', '--set', 'nats.deploy=false'], /url/],
    ];
    for (const [args, message] of cases) {
      const r = await helm(['template', 'llem', CHART_DIR, ...args]);
      assert.notEqual(r.code, 0, `helm template ${args.join(' ')} must fail`);
      assert.match(r.stderr, message, `${args.join(' ')}: ${r.stderr}`);
    }
  });
});
