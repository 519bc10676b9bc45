import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateEnergyExperiment } from '../../../api/index.ts';
import { BackendSchema, ModelSchema } from '../../../api/spec.ts';
import { InvalidInputError } from '../../../lib/errors.ts';
import { renderBackendLaunch, type LaunchContext } from '../../../lib/backends/index.ts';

const ctx: LaunchContext = {
  host: '0.0.0.0',
  port: 8000,
  gpusPerRun: 1,
  modelMountPath: '/models',
  seed: 0,
  scratchDir: '/tmp/x',
};
const hf = ModelSchema.parse({ name: 'org/model' });
const launch = (b: unknown, model = hf): ReturnType<typeof renderBackendLaunch> =>
  renderBackendLaunch(BackendSchema.parse(b), model, ctx);
const after = (args: string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];

function experiment(backend: Record<string, unknown>): ReturnType<typeof validateEnergyExperiment> {
  return validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'kw' },
    spec: {
      model: { name: 'org/model', source: { huggingFace: {} } },
      backends: [backend],
      workload: {
        dataset: {
          synthetic: {
            inputTokens: { distribution: 'fixed', mean: 8 },
            outputTokens: { distribution: 'fixed', mean: 8 },
          },
        },
        requests: 4,
      },
    },
  });
}

describe('backends[].<type>.modelKwargs (ADR 0025)', () => {
  it('passes the allowed PyTorch options to the server as --model-kwargs, in from_pretrained names', () => {
    const l = launch({
      type: 'pytorch',
      pytorch: {
        modelKwargs: {
          lowCpuMemUsage: true,
          ropeScaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 4096 },
        },
      },
    });
    assert.deepEqual(JSON.parse(after(l.args, '--model-kwargs') ?? '{}'), {
      low_cpu_mem_usage: true,
      rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 4096 },
    });
  });

  it('maps the vLLM and TensorRT-LLM equivalents to their documented flags, rope scaling through --hf-overrides', () => {
    const v = launch({
      type: 'vllm',
      vllm: {
        modelKwargs: {
          trustRemoteCode: true,
          codeRevision: 'abc',
          tokenizerRevision: 't1',
          ropeScaling: { ropeType: 'linear', factor: 2 },
        },
      },
    });
    assert.ok(v.args.includes('--trust-remote-code'));
    assert.equal(after(v.args, '--code-revision'), 'abc');
    assert.equal(after(v.args, '--tokenizer-revision'), 't1');
    assert.deepEqual(JSON.parse(after(v.args, '--hf-overrides') ?? '{}'), {
      rope_scaling: { rope_type: 'linear', factor: 2 },
    });
    // Random weights already override sizes through --hf-overrides: one flag, both overrides.
    const random = ModelSchema.parse({ name: 'org/model', source: { random: {} } });
    const vr = launch(
      { type: 'vllm', vllm: { modelKwargs: { ropeScaling: { ropeType: 'linear', factor: 2 } } } },
      random,
    );
    assert.equal(vr.args.filter((a) => a === '--hf-overrides').length, 1);
    const overrides = JSON.parse(after(vr.args, '--hf-overrides') ?? '{}') as Record<string, unknown>;
    assert.ok('hidden_size' in overrides && 'rope_scaling' in overrides);
    const t = launch({ type: 'tensorrt', tensorrt: { modelKwargs: { trustRemoteCode: true } } });
    assert.ok(t.args.includes('--trust_remote_code'));
  });

  it('never enables remote code unless trustRemoteCode is true in the manifest', () => {
    for (const type of ['pytorch', 'vllm', 'tensorrt']) {
      for (const modelKwargs of [undefined, { trustRemoteCode: false }]) {
        const l = launch({ type, ...(modelKwargs === undefined ? {} : { [type]: { modelKwargs } }) });
        const flat = l.args.join(' ');
        assert.ok(!/trust[-_]remote[-_]code/.test(flat.replace('"trust_remote_code":false', '')), `${type}: ${flat}`);
      }
    }
  });

  it('refuses keys outside the allow-list with their field path, exit 2', () => {
    const v = experiment({ type: 'pytorch', pytorch: { modelKwargs: { device_map: 'auto', trustRemoteCode: true } } });
    assert.equal(v.ok, false);
    const issue = !v.ok
      ? v.issues.find((i) => i.path === 'spec.backends[0].pytorch.modelKwargs.device_map')
      : undefined;
    assert.ok(issue !== undefined, JSON.stringify(v));
    assert.match(issue.message, /unknown field "device_map"; known fields: trustRemoteCode/);
    const nested = experiment({
      type: 'vllm',
      vllm: { modelKwargs: { ropeScaling: { ropeType: 'linear', factor: 2, x: 1 } } },
    });
    assert.ok(!nested.ok && nested.issues.some((i) => i.path === 'spec.backends[0].vllm.modelKwargs.ropeScaling.x'));
    assert.throws(
      () => launch({ type: 'pytorch', pytorch: { modelKwargs: { codeRevision: 'abc' } } }),
      (e: unknown) =>
        e instanceof InvalidInputError &&
        e.exitCode === 2 &&
        e.issues[0]?.path === 'spec.backends[pytorch].pytorch.modelKwargs.codeRevision',
    );
    assert.throws(
      () => launch({ type: 'pytorch', pytorch: { modelKwargs: { bnb4bitQuantType: 'nf4' } } }),
      /modelKwargs\.bnb4bitQuantType: applies only with quantization: bitsandbytes4bit/,
    );
  });

  it('is part of the config hash, and a manifest without it keeps the hash it had', () => {
    const hash = (backend: Record<string, unknown>): string => {
      const v = experiment(backend);
      assert.ok(v.ok, JSON.stringify(v));
      return v.matrix.configurations[0]?.configHash ?? '';
    };
    const plain = hash({ type: 'pytorch' });
    const rope = hash({
      type: 'pytorch',
      pytorch: { modelKwargs: { ropeScaling: { ropeType: 'linear', factor: 2 } } },
    });
    const rope4 = hash({
      type: 'pytorch',
      pytorch: { modelKwargs: { ropeScaling: { ropeType: 'linear', factor: 4 } } },
    });
    assert.notEqual(plain, rope);
    assert.notEqual(rope, rope4);
    assert.equal(hash({ type: 'pytorch', pytorch: {} }), plain);
  });
});
