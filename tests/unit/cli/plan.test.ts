import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { llem } from './run-cli.ts';

interface PlanJson {
  experiment: string;
  totals: { configurations: number; runs: number; gpuHoursLowerBound: number; gpuHoursUpperBound: number };
  runs: {
    id: string;
    backend: string;
    cycle: number;
    configHash: string;
    point: Record<string, unknown>;
    sequence: number;
  }[];
}

void describe('llem plan', () => {
  void it('prints the run table with ids, backends, cycles, hashes and sweep points', () => {
    const r = llem(['plan', 'examples/quickstart.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RUN\s+BACKEND\s+CYCLE\s+CONFIG-HASH\s+SWEEP POINT/);
    assert.match(r.stdout, /pytorch-[0-9a-f]{10}-c0\s+pytorch\s+0\s+[0-9a-f]{10}\s+workload\.concurrency=1/);
    assert.match(r.stdout, /2 configurations, 4 runs/);
    assert.match(r.stdout, /GPU-hours: at least [\d.]+/);
  });

  void it('prints the same plan as JSON, stable across invocations', () => {
    const a = llem(['plan', 'examples/three-backends.yaml', '--json']);
    const b = llem(['plan', 'examples/three-backends.yaml', '--json']);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    const plan = JSON.parse(a.stdout) as PlanJson;
    assert.equal(plan.experiment, 'three-backends');
    assert.equal(plan.totals.runs, plan.runs.length);
    assert.equal(plan.totals.configurations * 3, plan.runs.length);
    assert.deepEqual(new Set(plan.runs.map((r) => r.backend)), new Set(['pytorch', 'vllm', 'tensorrt']));
    assert.ok(plan.totals.gpuHoursLowerBound > 0 && plan.totals.gpuHoursLowerBound < plan.totals.gpuHoursUpperBound);
  });

  void it('exits 2 for an invalid manifest', () => {
    const r = llem(['plan', 'examples/does-not-exist.yaml']);
    assert.equal(r.code, 2);
  });
});
