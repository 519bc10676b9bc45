// Experiment pods are hardened by default (issue #17 item 6): reserved and invalid env names are
// refused at validation with their field path, the kubelet cannot expand `$(...)` in anything llem
// or the user wrote, containers run with a restricted securityContext and no service-account token,
// each run's pod gets only its own bus credentials, and NATS URLs with credentials are refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { isReservedEnvName } from '../../../api/spec.ts';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { busCredentialSecret, busSecretName } from '../../../controller/bus-credentials.ts';
import { escapeKubeletExpansion } from '../../../controller/pod-security.ts';
import { buildPod, type PodBuilderOptions } from '../../../controller/pods.ts';
import { parse as parseControllerFlags } from '../../../cli/commands/controller.ts';
import { BusIssuer } from '../../../lib/bus/identity.ts';
import { natsOptionsFromEnv } from '../../../lib/bus/nats-env.ts';
import { parseNatsBusOptions } from '../../../lib/bus/nats-options.ts';
import { isInvalidInput } from '../../../lib/errors.ts';
import { kubeletExpand } from '../../support/kubelet-expansion.ts';

const ref = { name: 'exp', namespace: 'team-a', uid: '0b7c1d2e-aaaa-bbbb-cccc-123456789abc' };
const OPTS: PodBuilderOptions = {
  agentImage: 'agent:1',
  backendImages: {},
  agentEnv: [{ name: 'LLEM_NATS_URL', value: 'nats://nats:4222' }],
  simulate: false,
};

function manifest(spec: Record<string, unknown>): unknown {
  return {
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: { model: { name: 'm', source: { random: {} } }, ...spec },
  };
}

function pod(spec: Record<string, unknown>, opts: PodBuilderOptions = OPTS): V1Pod {
  const v = validateEnergyExperiment(manifest(spec));
  assert.ok(v.ok, JSON.stringify(v));
  const configuration = v.matrix.configurations[0];
  const run = v.matrix.runs[0];
  assert.ok(configuration !== undefined && run !== undefined);
  return buildPod({ experiment: ref, spec: v.experiment.spec, configuration, run, attempt: 0, replica: 0 }, opts);
}

function issuesOf(spec: Record<string, unknown>): { path: string; message: string }[] {
  const v = validateEnergyExperiment(manifest(spec));
  assert.equal(v.ok, false);
  return v.ok ? [] : v.issues;
}

void describe('podTemplate.env names', () => {
  const env = (names: string[]): Record<string, unknown> => ({
    backends: [{ type: 'pytorch' }],
    placement: { podTemplate: { env: names.map((name) => ({ name, value: 'x' })) } },
  });

  void it('refuses every name llem sets or that changes what the pod sees, naming the field', () => {
    const reserved = [
      'LLEM_NATS_URL',
      'LLEM_AGENT_CONFIG',
      'LLEM_NATS_CREDS_FILE',
      'HF_TOKEN',
      'hf_token',
      'PYTHONPATH',
      'NVIDIA_VISIBLE_DEVICES',
      'NODE_OPTIONS',
    ];
    const issues = issuesOf(env(['SAFE', ...reserved]));
    for (const [i, name] of reserved.entries()) {
      const issue = issues.find((x) => x.path === `spec.placement.podTemplate.env[${i + 1}].name`);
      assert.ok(issue !== undefined, `${name} must be refused`);
      assert.match(issue.message, /reserved/);
    }
    assert.equal(
      issues.some((x) => x.path === 'spec.placement.podTemplate.env[0].name'),
      false,
    );
  });

  void it('reserves every variable llem itself sets in a run pod, for every backend and model source', () => {
    const models = [
      { name: 'org/m', source: { huggingFace: { tokenSecretRef: { name: 'hf', key: 't' } } } },
      { name: 'm', source: { pvc: { claimName: 'c', path: 'p' } } },
    ];
    for (const model of models) {
      for (const type of ['pytorch', 'vllm', 'tensorrt']) {
        for (const simulate of [false, true]) {
          const c = pod(
            { model, backends: [{ type }] },
            { ...OPTS, simulate, busIssuer: new BusIssuer('x'.repeat(32)) },
          ).spec?.containers[0];
          for (const e of c?.env ?? [])
            assert.ok(
              isReservedEnvName(e.name),
              `${type}${simulate ? ' (simulated)' : ''}: llem sets ${e.name} but a manifest could too`,
            );
        }
      }
    }
  });

  void it('refuses invalid and repeated names with the index of the entry', () => {
    const issues = issuesOf(env(['GOOD', '1BAD', 'A-B', 'A=B', '', 'GOOD']));
    for (const i of [1, 2, 3, 4])
      assert.ok(
        issues.some((x) => x.path === `spec.placement.podTemplate.env[${i}].name` && /letters, digits/.test(x.message)),
        `env[${i}]`,
      );
    assert.ok(
      issues.some(
        (x) => x.path === 'spec.placement.podTemplate.env[5].name' && /already set by env\[0\]/.test(x.message),
      ),
    );
  });
});

void describe('kubelet variable expansion', () => {
  const secretVars = { HF_TOKEN: 'hf_secret_value', LLEM_NATS_URL: 'nats://nats:4222' };

  void it('reaches the backend process as written for extra args, including $$( and a trailing $', () => {
    const extra = ['--note=$(HF_TOKEN)', '--x=$$(HF_TOKEN)', '--y=$$$(HF_TOKEN)', '--z=$', 'price$5'];
    const c = pod({ backends: [{ type: 'vllm', extraArgs: extra }] }).spec?.containers[0] as V1Container;
    const expanded = (c.args ?? []).map((a) => kubeletExpand(a, secretVars));
    for (const e of extra)
      assert.ok(expanded.includes(e), `${e} must reach the process unchanged (got ${expanded.join(' ')})`);
    assert.ok(!expanded.some((a) => a.includes('hf_secret_value')), 'no secret on the command line');
  });

  void it("reaches the backend as written for the user's env values and the agent config", () => {
    const c = pod({
      backends: [{ type: 'pytorch' }],
      placement: { podTemplate: { env: [{ name: 'NOTE', value: 'a $(HF_TOKEN) b' }] } },
    }).spec?.containers[0] as V1Container;
    const note = c.env?.find((e) => e.name === 'NOTE')?.value ?? '';
    assert.equal(kubeletExpand(note, secretVars), 'a $(HF_TOKEN) b');
    const prompt = 'say $(HF_TOKEN), then $$(X) and $5';
    const c2 = pod({ backends: [{ type: 'pytorch' }], workload: { dataset: { prompts: [prompt] } } }).spec
      ?.containers[0] as V1Container;
    const config = c2.env?.find((e) => e.name === 'LLEM_AGENT_CONFIG')?.value ?? '';
    const parsed = JSON.stringify(JSON.parse(kubeletExpand(config, secretVars)));
    assert.ok(
      parsed.includes(JSON.stringify(prompt)),
      `the prompt reaches the agent as written: ${parsed.slice(0, 300)}`,
    );
    assert.ok(!parsed.includes('hf_secret_value'));
  });

  void it('escapes by doubling every dollar', () => {
    assert.equal(escapeKubeletExpansion('$(A) $$(B) $'), '$$(A) $$$$(B) $$');
  });
});

void describe('pod security defaults', () => {
  void it('drops all capabilities, forbids privilege escalation and uses RuntimeDefault seccomp in every container', () => {
    const p = pod({ backends: [{ type: 'pytorch' }] });
    assert.equal(p.spec?.automountServiceAccountToken, false);
    assert.equal(p.spec?.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    for (const c of [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])]) {
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
      assert.equal(c.securityContext?.seccompProfile?.type, 'RuntimeDefault', c.name);
      assert.notEqual(c.securityContext?.privileged, true, c.name);
      assert.equal(
        c.securityContext?.runAsNonRoot,
        true,
        `${c.name}: llem's pytorch and agent images run as non-root users`,
      );
    }
  });

  void it('runs the root NGC tensorrt image without runAsNonRoot unless the manifest asks for it', () => {
    const hf = { model: { name: 'org/m', source: { huggingFace: {} } } };
    const trt = pod({ ...hf, backends: [{ type: 'tensorrt' }] }).spec?.containers[0];
    assert.equal(trt?.securityContext?.runAsNonRoot, undefined);
    assert.deepEqual(trt?.securityContext?.capabilities?.drop, ['ALL']);
    const forced = pod({ ...hf, backends: [{ type: 'tensorrt' }], placement: { podTemplate: { runAsNonRoot: true } } })
      .spec?.containers[0];
    assert.equal(forced?.securityContext?.runAsNonRoot, true);
  });

  void it("mounts only its own run's bus credentials Secret and points the agent at it", () => {
    const issuer = new BusIssuer(randomBytes(32).toString('hex'));
    const p = pod({ backends: [{ type: 'pytorch' }] }, { ...OPTS, busIssuer: issuer });
    const runId = p.metadata?.labels?.['llem.dev/run'] ?? '';
    const secretVolumes = (p.spec?.volumes ?? []).filter((v) => v.secret !== undefined);
    assert.deepEqual(
      secretVolumes.map((v) => v.secret?.secretName),
      [busSecretName(ref, runId)],
    );
    const c = p.spec?.containers[0];
    const file = c?.env?.find((e) => e.name === 'LLEM_NATS_CREDS_FILE')?.value ?? '';
    assert.ok(c?.volumeMounts?.some((m) => file.startsWith(`${m.mountPath}/`) && m.readOnly === true));
    const secret = busCredentialSecret(issuer, ref, runId);
    assert.equal(secret.metadata?.namespace, ref.namespace);
    assert.equal(secret.metadata?.ownerReferences?.[0]?.uid, ref.uid);
    const creds = Object.values(secret.stringData ?? {})[0] ?? '';
    const jwt = /-----BEGIN NATS USER JWT-----\n(.+)\n/.exec(creds)?.[1] ?? '';
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      nats: { pub: { allow: string[] } };
    };
    assert.deepEqual(claims.nats.pub.allow, [`llem.v1.team-a.${ref.uid}.${runId}.>`]);
  });
});

void describe('NATS URLs with embedded credentials', () => {
  const leaky = [
    'nats://agent:hunter2@nats:4222',
    'tls://s3cr3t-token@nats:4222',
    'nats://nats:4222,nats://u:hunter2@nats-2:4222',
  ];

  void it('are refused from LLEM_NATS_URL, pointing to the Secret fields, without repeating the secret', () => {
    for (const url of leaky) {
      assert.throws(
        () => natsOptionsFromEnv({ LLEM_NATS_URL: url }),
        (err: Error) => {
          assert.ok(isInvalidInput(err));
          assert.match(
            err.message,
            /must not embed credentials.*LLEM_NATS_USER.*LLEM_NATS_TOKEN.*LLEM_NATS_CREDS_FILE/,
          );
          assert.doesNotMatch(err.message, /hunter2|s3cr3t/);
          return true;
        },
      );
    }
  });

  void it("are refused in bus options and in the controller's --agent-nats-url", () => {
    assert.throws(
      () => parseNatsBusOptions({ servers: 'nats://u:hunter2@nats:4222' }),
      (err: Error) => !/hunter2/.test(err.message) && /embed credentials/.test(err.message),
    );
    assert.throws(
      () =>
        parseControllerFlags(['--nats-url', 'nats://nats:4222', '--agent-nats-url', 'nats://u:hunter2@nats:4222'], {}),
      (err: Error) =>
        isInvalidInput(err) &&
        /agentNatsUrl: must not embed credentials/.test(err.message) &&
        !/hunter2/.test(err.message),
    );
  });
});
