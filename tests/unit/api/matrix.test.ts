import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  EnergyExperimentSchema,
  expandRunMatrix,
  isDns1123Label,
  validateEnergyExperiment,
  type EnergyExperiment,
  type RunMatrix,
} from '../../../api/index.ts';
import { validManifest, at, type Json } from './fixtures.ts';

function sweepManifest(): Json {
  const m = validManifest();
  at(m, 'spec')['backends'] = [{ type: 'vllm' }, { type: 'pytorch' }];
  at(m, 'spec')['sweep'] = { axes: { 'vllm.maxNumSeqs': [8, 16, 32], 'workload.concurrency': [1, 4] } };
  at(m, 'spec', 'measurement')['cycles'] = 3;
  return m;
}

function parse(m: Json): EnergyExperiment {
  return EnergyExperimentSchema.parse(m);
}

function matrixOf(m: Json): RunMatrix {
  return expandRunMatrix(parse(m).spec);
}

void describe('run matrix', () => {
  void it('expands backends x relevant sweep points x cycles', () => {
    const mx = matrixOf(sweepManifest());
    // vllm: 3 x 2 points; pytorch ignores the vllm axis: 2 points.
    assert.equal(mx.configurations.filter((c) => c.backend.type === 'vllm').length, 6);
    assert.equal(mx.configurations.filter((c) => c.backend.type === 'pytorch').length, 2);
    assert.equal(mx.runs.length, 8 * 3);
    assert.deepEqual(mx.errors, []);
  });

  void it('records only the axes that apply to a configuration in its point', () => {
    const mx = matrixOf(sweepManifest());
    for (const c of mx.configurations.filter((x) => x.backend.type === 'pytorch')) {
      assert.deepEqual(Object.keys(c.point), ['workload.concurrency']);
    }
  });

  void it('applies swept values to the resolved backend parameters and workload', () => {
    const mx = matrixOf(sweepManifest());
    for (const c of mx.configurations) {
      assert.equal(c.workload.concurrency, c.point['workload.concurrency']);
      if (c.backend.type === 'vllm') assert.equal(c.backend.params.maxNumSeqs, c.point['vllm.maxNumSeqs']);
    }
  });

  void it('gives the same ids and hashes for the same manifest', () => {
    const a = matrixOf(sweepManifest());
    const b = matrixOf(sweepManifest());
    assert.deepEqual(
      a.runs.map((r) => [r.id, r.configHash]),
      b.runs.map((r) => [r.id, r.configHash]),
    );
  });

  void it('keeps ids when the axes are written in another order', () => {
    const m = sweepManifest();
    at(m, 'spec')['sweep'] = { axes: { 'workload.concurrency': [4, 1], 'vllm.maxNumSeqs': [32, 8, 16] } };
    const ids = (mx: RunMatrix): string[] => mx.runs.map((r) => r.id).sort();
    assert.deepEqual(ids(matrixOf(m)), ids(matrixOf(sweepManifest())));
  });

  void it('changes the config hash when a parameter changes and not when only the HF token secret does', () => {
    const base = validManifest();
    at(base, 'spec', 'model')['source'] = { huggingFace: { tokenSecretRef: { name: 'hf-a' } } };
    const secret = validManifest();
    at(secret, 'spec', 'model')['source'] = { huggingFace: { tokenSecretRef: { name: 'hf-b' } } };
    const param = validManifest();
    at(param, 'spec', 'model')['source'] = { huggingFace: { tokenSecretRef: { name: 'hf-a' } } };
    at(param, 'spec', 'backends', 0)['vllm'] = { maxNumSeqs: 7 };
    const hash = (m: Json): string => matrixOf(m).configurations[0]?.configHash ?? '';
    assert.equal(hash(base), hash(secret));
    assert.notEqual(hash(base), hash(param));
    assert.match(hash(base), /^[0-9a-f]{64}$/);
  });

  void it('keeps the backend readiness timeout on the configuration but out of the config hash (it measures nothing)', () => {
    const slow = validManifest();
    at(slow, 'spec', 'backends', 0)['readinessTimeoutSeconds'] = 7200;
    const hash = (m: Json): string => matrixOf(m).configurations[0]?.configHash ?? '';
    assert.equal(hash(slow), hash(validManifest()));
    assert.equal(matrixOf(slow).configurations[0]?.backend.readinessTimeoutSeconds, 7200);
  });

  void it('keeps a parameter added later out of the hash at its old-behaviour default, so earlier results keep their identity', () => {
    const pytorch = (params: Json): Json => {
      const m = validManifest();
      at(m, 'spec')['backends'] = [{ type: 'pytorch', pytorch: params }];
      return m;
    };
    const hash = (m: Json): string => matrixOf(m).configurations[0]?.configHash ?? '';
    assert.equal(hash(pytorch({ cudaGraphs: false })), hash(pytorch({})));
    assert.notEqual(hash(pytorch({ cudaGraphs: true })), hash(pytorch({})));
    // The hash the H200 runs A-C were recorded under (docs/validation/raw/h200-run-a), before cudaGraphs existed.
    const h200 = validManifest();
    at(h200, 'spec')['model'] = {
      name: 'llem/random-llama-1b',
      dtype: 'bfloat16',
      source: {
        random: {
          architecture: 'llama',
          hiddenSize: 2048,
          numLayers: 16,
          numHeads: 32,
          numKvHeads: 8,
          intermediateSize: 8192,
          vocabSize: 32000,
        },
      },
    };
    at(h200, 'spec')['backends'] = [
      { type: 'pytorch', pytorch: { batching: 'dynamic', maxBatchSize: 32, attnImplementation: 'eager' } },
    ];
    at(h200, 'spec')['workload'] = {
      concurrency: 1,
      requests: 2,
      ignoreEos: true,
      dataset: {
        synthetic: {
          inputTokens: { distribution: 'fixed', mean: 256 },
          outputTokens: { distribution: 'fixed', mean: 128 },
        },
      },
    };
    assert.equal(matrixOf(h200).configurations[0]?.id, 'pytorch-f70338bff5');
  });

  void it('collapses explicit points that repeat a Cartesian point', () => {
    const m = validManifest();
    at(m, 'spec')['sweep'] = {
      axes: { 'vllm.maxNumSeqs': [8, 16] },
      points: [{ 'vllm.maxNumSeqs': 8 }, { 'vllm.maxNumSeqs': 64 }],
    };
    const mx = matrixOf(m);
    assert.deepEqual(
      mx.configurations.map((c) => c.point['vllm.maxNumSeqs']),
      [8, 16, 64],
    );
  });

  void it('runs a spec without a sweep as one configuration per backend', () => {
    const mx = matrixOf(validManifest());
    assert.equal(mx.configurations.length, 1);
    assert.deepEqual(mx.configurations[0]?.point, {});
  });

  void it('makes every configuration and run id a DNS-1123 label', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$/),
        fc.integer({ min: 1, max: 5 }),
        (name, cycles) => {
          const m = validManifest();
          at(m, 'spec', 'backends', 0)['name'] = name;
          at(m, 'spec', 'measurement')['cycles'] = cycles;
          const mx = matrixOf(m);
          return mx.runs.every((r) => isDns1123Label(r.id)) && mx.configurations.every((c) => isDns1123Label(c.id));
        },
      ),
      { numRuns: 50 },
    );
  });

  void it('gives every run a unique id', () => {
    const mx = matrixOf(sweepManifest());
    assert.equal(new Set(mx.runs.map((r) => r.id)).size, mx.runs.length);
  });
});

void describe('execution order', () => {
  const withOrder = (order: string, seed = 0): RunMatrix => {
    const m = sweepManifest();
    Object.assign(at(m, 'spec', 'measurement'), { order, seed });
    return matrixOf(m);
  };

  void it('interleave visits every configuration once per cycle, cycle by cycle', () => {
    const mx = withOrder('interleave');
    const n = mx.configurations.length;
    mx.runs.forEach((r, i) => {
      assert.equal(r.cycle, Math.floor(i / n));
      assert.equal(r.configurationId, mx.configurations[i % n]?.id);
    });
  });

  void it('sequential runs all cycles of one configuration before the next', () => {
    const mx = withOrder('sequential');
    const cycles = 3;
    mx.runs.forEach((r, i) => {
      assert.equal(r.cycle, i % cycles);
      assert.equal(r.configurationId, mx.configurations[Math.floor(i / cycles)]?.id);
    });
  });

  void it('shuffle permutes each cycle as a block and is reproducible for a seed', () => {
    const a = withOrder('shuffle', 42);
    const b = withOrder('shuffle', 42);
    assert.deepEqual(
      a.runs.map((r) => r.id),
      b.runs.map((r) => r.id),
    );
    const n = a.configurations.length;
    for (let c = 0; c < 3; c++) {
      const block = a.runs.slice(c * n, (c + 1) * n);
      assert.ok(block.every((r) => r.cycle === c));
      assert.deepEqual(block.map((r) => r.configurationId).sort(), a.configurations.map((x) => x.id).sort());
    }
  });

  void it('shuffle gives different orders for different seeds and differs from interleave', () => {
    const orders = [1, 2, 3].map((seed) =>
      withOrder('shuffle', seed)
        .runs.map((r) => r.id)
        .join(),
    );
    assert.equal(new Set(orders).size, 3);
    assert.notEqual(
      orders[0],
      withOrder('interleave')
        .runs.map((r) => r.id)
        .join(),
    );
  });

  void it('numbers runs by their position in execution order', () => {
    const mx = withOrder('shuffle', 9);
    assert.deepEqual(
      mx.runs.map((r) => r.sequence),
      mx.runs.map((_, i) => i),
    );
  });
});

void describe('invalid combinations', () => {
  const tpSweep = (skipInvalid: boolean): Json => {
    const m = validManifest();
    at(m, 'spec')['sweep'] = { axes: { 'vllm.tensorParallelSize': [1, 2, 4] }, skipInvalid };
    at(m, 'spec')['placement'] = { gpusPerRun: 2 };
    return m;
  };

  void it('rejects the whole manifest by default, naming the reason', () => {
    const r = validateEnergyExperiment(tpSweep(false));
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(
      r.issues.map((i) => i.path),
      ['spec.sweep.axes[vllm.tensorParallelSize][2]'],
    );
    assert.match(r.issues[0]?.message ?? '', /needs 4 GPUs but placement.gpusPerRun is 2/);
  });

  void it('skips them with their reason when sweep.skipInvalid is set', () => {
    const r = validateEnergyExperiment(tpSweep(true));
    assert.ok(r.ok);
    assert.deepEqual(
      r.matrix.configurations.map((c) => c.point['vllm.tensorParallelSize']),
      [1, 2],
    );
    assert.equal(r.matrix.rejected.length, 1);
    assert.deepEqual(r.matrix.rejected[0]?.point, { 'vllm.tensorParallelSize': 4 });
  });

  void it('still rejects a violation that no swept value causes, even with skipInvalid', () => {
    const m = tpSweep(true);
    at(m, 'spec')['sweep'] = { axes: { 'vllm.maxNumSeqs': [8, 16] }, skipInvalid: true };
    at(m, 'spec', 'backends', 0)['vllm'] = { tensorParallelSize: 4 };
    const r = validateEnergyExperiment(m);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.issues[0]?.path, 'spec.backends[0].vllm.tensorParallelSize');
  });

  void it('checks base values even where a sweep overrides them, as the CRD does', () => {
    const m = tpSweep(false);
    at(m, 'spec')['sweep'] = { axes: { 'vllm.tensorParallelSize': [1, 2] } };
    at(m, 'spec', 'backends', 0)['vllm'] = { tensorParallelSize: 4 };
    const r = validateEnergyExperiment(m);
    assert.equal(r.ok, false);
    if (!r.ok)
      assert.deepEqual(
        r.issues.map((i) => i.path),
        ['spec.backends[0].vllm.tensorParallelSize'],
      );
  });

  void it('refuses a sweep in which every combination is invalid', () => {
    const m = tpSweep(true);
    at(m, 'spec')['sweep'] = { axes: { 'vllm.tensorParallelSize': [4, 8] }, skipInvalid: true };
    const r = validateEnergyExperiment(m);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.issues[0]?.path, 'spec.sweep');
  });

  void it('warns when GPUs would idle and when the closed loop cannot fill', () => {
    const m = validManifest();
    at(m, 'spec')['placement'] = { gpusPerRun: 2 };
    at(m, 'spec', 'workload')['concurrency'] = 64;
    const r = validateEnergyExperiment(m);
    assert.ok(r.ok);
    const paths = r.warnings.map((w) => w.path);
    assert.ok(paths.includes('spec.backends[0].vllm.tensorParallelSize'), paths.join());
    assert.ok(paths.includes('spec.workload.concurrency'), paths.join());
  });

  void it('does not warn that the closed loop cannot fill when extendToMinWindow keeps issuing requests', () => {
    const m = validManifest();
    at(m, 'spec', 'workload')['concurrency'] = 64;
    at(m, 'spec')['measurement'] = { extendToMinWindow: true, minWindowSeconds: 5 };
    const r = validateEnergyExperiment(m);
    assert.ok(r.ok);
    assert.ok(!r.warnings.some((w) => w.path === 'spec.workload.concurrency'), JSON.stringify(r.warnings));
    // Without a minimum window there is nothing to extend to, so the warning stays.
    at(m, 'spec')['measurement'] = { extendToMinWindow: true, minWindowSeconds: 0 };
    const r0 = validateEnergyExperiment(m);
    assert.ok(r0.ok);
    assert.ok(
      r0.warnings.some((w) => w.path === 'spec.workload.concurrency'),
      JSON.stringify(r0.warnings),
    );
  });

  void it('refuses a sweep larger than the configuration limit', () => {
    const m = validManifest();
    const values = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
    at(m, 'spec')['sweep'] = {
      axes: { 'vllm.maxNumSeqs': values(64), 'workload.concurrency': values(64), 'workload.requests': values(2) },
    };
    const r = validateEnergyExperiment(m);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.issues[0]?.message ?? '', /more than 4096 configurations/);
  });
});
