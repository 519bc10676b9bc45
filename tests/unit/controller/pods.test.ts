// The pod builder runs the backend exactly as local mode does (lib/backends), with the images' paths.
import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { buildPod, type PodBuilderOptions } from '../../../controller/pods.ts';
import { AGENT_ENTRY, PYTORCH_SERVER_ROOT, SCRATCH_DIR, SERVER_PORT } from '../../../lib/backends/server-command.ts';
import { renderBackendLaunch } from '../../../lib/backends/index.ts';
import { parseAgentConfig } from '../../../agent/config.ts';

const ref = { name: 'exp', namespace: 'ns', uid: 'uid-1234567' };
const OPTS: PodBuilderOptions = {
  agentImage: 'agent:1',
  backendImages: {},
  agentEnv: [{ name: 'LLEM_NATS_URL', value: 'nats://nats:4222' }],
  simulate: false,
};

function container(
  spec: Record<string, unknown>,
  opts: PodBuilderOptions = OPTS,
): { c: V1Container; config: Record<string, unknown>; pod: V1Pod } {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec,
  });
  assert.ok(v.ok, JSON.stringify(v));
  const configuration = v.matrix.configurations[0];
  const run = v.matrix.runs[0];
  assert.ok(configuration !== undefined && run !== undefined);
  const pod = buildPod({ experiment: ref, spec: v.experiment.spec, configuration, run, attempt: 0, replica: 0 }, opts);
  const c = pod.spec?.containers[0];
  assert.ok(c !== undefined);
  const config = JSON.parse(c.env?.find((e) => e.name === 'LLEM_AGENT_CONFIG')?.value ?? '{}') as Record<
    string,
    unknown
  >;
  return { c, config, pod };
}

const env = (c: V1Container, name: string): string | undefined => c.env?.find((e) => e.name === name)?.value;

void describe('agent pod backend command', () => {
  void it("runs the PyTorch server the launcher renders, from the pytorch image's server root", () => {
    const { c } = container({ model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }] });
    assert.deepEqual(c.args?.slice(0, 3), ['python3', '-m', 'server']);
    assert.equal(env(c, 'PYTHONPATH'), PYTORCH_SERVER_ROOT);
    assert.equal(env(c, 'HF_HUB_OFFLINE'), '1');
    const port = c.args?.[c.args.indexOf('--port') + 1];
    assert.equal(port, String(SERVER_PORT));
    assert.equal(c.args?.[c.args.indexOf('--host') + 1], '127.0.0.1');
  });

  void it('is the same command line local mode renders for that backend', () => {
    const { c } = container({
      model: { name: 'org/model', source: { huggingFace: {} } },
      backends: [{ type: 'vllm', vllm: { maxNumSeqs: 64 } }],
    });
    const v = validateEnergyExperiment({
      apiVersion: 'llem.dev/v1alpha1',
      kind: 'EnergyExperiment',
      metadata: { name: 'exp' },
      spec: {
        model: { name: 'org/model', source: { huggingFace: {} } },
        backends: [{ type: 'vllm', vllm: { maxNumSeqs: 64 } }],
      },
    });
    assert.ok(v.ok);
    const expected = renderBackendLaunch(v.experiment.spec.backends[0]!, v.experiment.spec.model, {
      host: '127.0.0.1',
      port: SERVER_PORT,
      gpusPerRun: 1,
      modelMountPath: '/models',
      seed: 0,
      scratchDir: SCRATCH_DIR,
    });
    assert.deepEqual(c.args, [expected.command, ...expected.args]);
  });

  void it('mounts the Hugging Face token Secret as a read-only 0400 file and gives the backend only its path', () => {
    for (const type of ['pytorch', 'vllm', 'tensorrt']) {
      const { c, pod } = container({
        model: { name: 'org/model', source: { huggingFace: { tokenSecretRef: { name: 'hf', key: 'token' } } } },
        backends: [{ type }],
      });
      assert.equal(
        c.env?.find((e) => e.name === 'HF_TOKEN'),
        undefined,
        type,
      );
      assert.ok(!(c.env ?? []).some((e) => e.valueFrom?.secretKeyRef !== undefined), `${type}: no secret in env`);
      const path = env(c, 'HF_TOKEN_PATH');
      assert.equal(path, '/var/run/secrets/llem/huggingface/token', type);
      const mount = c.volumeMounts?.find((m) => m.mountPath === '/var/run/secrets/llem/huggingface');
      assert.equal(mount?.readOnly, true, type);
      const volume = pod.spec?.volumes?.find((v) => v.name === mount?.name);
      assert.deepEqual(volume?.secret, {
        secretName: 'hf',
        items: [{ key: 'token', path: 'token' }],
        defaultMode: 0o400,
      });
    }
  });

  void it('mounts no secret and sets no token path for a model without a token', () => {
    const { c, pod } = container({
      model: { name: 'org/model', source: { huggingFace: {} } },
      backends: [{ type: 'vllm' }],
    });
    assert.equal(env(c, 'HF_TOKEN_PATH'), undefined);
    assert.ok(!(pod.spec?.volumes ?? []).some((v) => v.secret !== undefined));
  });

  void it("hands trtllm-serve's extra options file to the agent to write before the server starts", () => {
    const { c, config } = container({
      model: { name: 'org/model', source: { huggingFace: {} } },
      backends: [{ type: 'tensorrt', tensorrt: { quantization: 'fp8' } }],
    });
    const files = config['files'] as { path: string; content: string }[];
    assert.equal(files.length, 1);
    assert.equal(c.args?.[c.args.indexOf('--extra_llm_api_options') + 1], files[0]?.path);
    assert.match(files[0]?.content ?? '', /quant_algo: FP8/);
    assert.deepEqual(parseAgentConfig(config, 'LLEM_AGENT_CONFIG').files, files, 'the agent accepts the files field');
  });

  void it('runs the mock server when simulating, and tells the agent where the backend answers', () => {
    const { c, config } = container(
      { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }] },
      { ...OPTS, simulate: true },
    );
    assert.deepEqual(c.args?.slice(1, 3), [AGENT_ENTRY, 'mock-server'], 'the mock server runs from the agent volume');
    assert.equal(c.resources?.limits?.['nvidia.com/gpu'], undefined);
    assert.deepEqual((config['backend'] as Record<string, unknown>)['baseUrl'], `http://127.0.0.1:${SERVER_PORT}`);
    assert.equal(config['files'], undefined);
  });
});

void describe('agent workload config', () => {
  const model = { name: 'm', source: { random: {} } };
  const workload = (spec: Record<string, unknown>): Record<string, unknown> => {
    const { config } = container(spec, { ...OPTS, simulate: true });
    return parseAgentConfig(config, 'test').workload as unknown as Record<string, unknown>;
  };

  void it('carries every sampling parameter: temperature, top-p and the max-tokens cap', () => {
    const w = workload({
      model,
      backends: [{ type: 'pytorch' }],
      workload: { sampling: { temperature: 0.7, topP: 0.9, maxTokens: 16 } },
    });
    assert.deepEqual([w['temperature'], w['topP'], w['maxTokens']], [0.7, 0.9, 16]);
    const plain = workload({ model, backends: [{ type: 'pytorch' }] });
    assert.deepEqual([plain['temperature'], plain['topP'], plain['maxTokens']], [0, 1, undefined]);
  });

  void it('gives inline prompts sampling.maxTokens as their output length, else 128', () => {
    const capped = workload({
      model,
      backends: [{ type: 'pytorch' }],
      workload: { dataset: { prompts: ['a b c'] }, sampling: { maxTokens: 40 } },
    });
    assert.equal(capped['outputTokens'], 40);
    const plain = workload({ model, backends: [{ type: 'pytorch' }], workload: { dataset: { prompts: ['a b c'] } } });
    assert.equal(plain['outputTokens'], 128);
  });
});

void describe('workload.dataset.configMapRef', () => {
  void it('mounts the ConfigMap key read-only and points the agent at it', () => {
    const spec = {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      workload: { dataset: { configMapRef: { name: 'my-prompts', key: 'chat.jsonl' } }, sampling: { maxTokens: 64 } },
    };
    const v = validateEnergyExperiment({
      apiVersion: 'llem.dev/v1alpha1',
      kind: 'EnergyExperiment',
      metadata: { name: 'exp' },
      spec,
    });
    assert.ok(v.ok);
    const pod = buildPod(
      {
        experiment: ref,
        spec: v.experiment.spec,
        configuration: v.matrix.configurations[0]!,
        run: v.matrix.runs[0]!,
        attempt: 0,
        replica: 0,
      },
      OPTS,
    );
    assert.deepEqual(pod.spec?.volumes?.find((x) => x.name === 'dataset')?.configMap, {
      name: 'my-prompts',
      items: [{ key: 'chat.jsonl', path: 'prompts.jsonl' }],
    });
    const c = pod.spec?.containers[0];
    assert.deepEqual(
      c?.volumeMounts?.find((m) => m.name === 'dataset'),
      { name: 'dataset', mountPath: '/etc/llem/dataset', readOnly: true },
    );
    const config = JSON.parse(c?.env?.find((e) => e.name === 'LLEM_AGENT_CONFIG')?.value ?? '{}') as {
      workload: Record<string, unknown>;
    };
    assert.equal(config.workload['promptsFile'], '/etc/llem/dataset/prompts.jsonl');
    assert.equal(config.workload['outputTokens'], 64);
    assert.equal(config.workload['inputTokens'], undefined, 'no synthetic lengths: the prompts are the workload');
  });
});

void describe('replica placement', () => {
  void it("adds the replica-spreading rule to the user's own pod anti-affinity instead of replacing it", () => {
    const userTerm = { labelSelector: { matchLabels: { team: 'other' } }, topologyKey: 'kubernetes.io/hostname' };
    const preferred = [
      { weight: 10, podAffinityTerm: { labelSelector: { matchLabels: { x: 'y' } }, topologyKey: 'zone' } },
    ];
    const spec = {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      placement: {
        replicas: 2,
        affinity: {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [userTerm],
            preferredDuringSchedulingIgnoredDuringExecution: preferred,
          },
        },
      },
    };
    const v = validateEnergyExperiment({
      apiVersion: 'llem.dev/v1alpha1',
      kind: 'EnergyExperiment',
      metadata: { name: 'exp' },
      spec,
    });
    assert.ok(v.ok, JSON.stringify(v));
    const pod = buildPod(
      {
        experiment: ref,
        spec: v.experiment.spec,
        configuration: v.matrix.configurations[0]!,
        run: v.matrix.runs[0]!,
        attempt: 0,
        replica: 1,
      },
      OPTS,
    );
    const anti = pod.spec?.affinity?.podAntiAffinity;
    assert.equal(anti?.requiredDuringSchedulingIgnoredDuringExecution?.length, 2);
    assert.deepEqual(anti?.requiredDuringSchedulingIgnoredDuringExecution?.[0], userTerm);
    assert.equal(anti?.requiredDuringSchedulingIgnoredDuringExecution?.[1]?.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(anti?.preferredDuringSchedulingIgnoredDuringExecution, preferred);
  });
});

void test('agent pods set an fsGroup, so a non-root backend user can read the 0440 root-owned credentials Secret (the real node refused it otherwise)', () => {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }] },
  });
  assert.ok(v.ok);
  const p = buildPod(
    {
      experiment: ref,
      spec: v.experiment.spec,
      configuration: v.matrix.configurations[0]!,
      run: v.matrix.runs[0]!,
      attempt: 0,
      replica: 0,
    },
    OPTS,
  );
  assert.equal(typeof p.spec?.securityContext?.fsGroup, 'number');
});
