import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { stepRuns, type RunInputs } from '../../../controller/runs.ts';
import { adaptiveAdmission, adaptiveDecisions } from '../../../controller/adaptive.ts';
import { podName } from '../../../controller/pods.ts';
import type { RunResult } from '../../../aggregator/index.ts';
import type { RunSummary } from '../../../api/status.ts';

const ref = { name: 'exp', namespace: 'ns', uid: 'uid-1234567' };

function experiment(): Extract<ReturnType<typeof validateEnergyExperiment>, { ok: true }> {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      sweep: { axes: { 'pytorch.maxBatchSize': [4, 8] } },
      measurement: {
        cycles: { target: { metric: 'joulesPerToken', ciHalfWidthPct: 2 }, min: 3, max: 6 },
        order: 'interleave',
      },
      placement: { parallelism: 4 },
    },
  });
  assert.ok(v.ok);
  return v;
}

/** J/token by run: the first configuration is steady (meets ±2% at 3 cycles), the second is not. */
function resultOf(v: ReturnType<typeof experiment>): (id: string) => RunResult {
  const [steady] = v.matrix.configurations;
  return (id) => {
    const cycle = Number(id.split('-c').at(-1));
    const jpt = id.startsWith(steady?.id ?? '?') ? 1 + 0.002 * (cycle % 2) : 1 + 0.4 * Math.sin(cycle * 2.1);
    return { metrics: { joulesPerToken: jpt, windowSeconds: 10 } } as unknown as RunResult;
  };
}

function inputsOf(v: ReturnType<typeof experiment>, previous: RunSummary[]): RunInputs {
  return {
    planned: v.matrix.runs,
    previous,
    pods: [],
    judge: { verdict: () => null, failure: () => undefined },
    resumed: new Set(),
    policy: v.experiment.spec.policy,
    replicas: 1,
    parallelism: 4,
    now: new Date('2026-01-01T00:00:00Z'),
    retryBaseMs: 1000,
    expected: new Set(),
    podName: (r, a, i) => podName(ref, r, a, i),
    admission: adaptiveAdmission(v.experiment.spec, v.matrix, resultOf(v)),
  };
}

/** One pass, then every run it started finishes (as the Aggregator's complete verdict would say). */
function pass(v: ReturnType<typeof experiment>, previous: RunSummary[]): { runs: RunSummary[]; started: string[] } {
  const out = stepRuns(inputsOf(v, previous));
  const started = out.create.map((c) => c.run.id);
  const runs = out.runs.map((r) => (started.includes(r.id) ? { ...r, phase: 'Succeeded' as const } : r));
  return { runs, started };
}

test('the controller starts one cycle block at a time and marks the runs a stopped configuration does not need Skipped', () => {
  const v = experiment();
  const [steady, noisy] = v.matrix.configurations.map((c) => c.id);
  let runs: RunSummary[] = [];
  const blocks: string[][] = [];
  for (let i = 0; i < 20; i++) {
    const p = pass(v, runs);
    runs = p.runs;
    if (p.started.length === 0) break;
    blocks.push(p.started);
  }
  // Parallelism 4 would allow both configurations' six cycles at once; the gate lets one block through.
  assert.deepEqual(blocks[0], [`${steady}-c0`, `${noisy}-c0`]);
  assert.deepEqual(blocks[3], [`${noisy}-c3`], 'the steady configuration stopped after 3 cycles');
  assert.equal(blocks.length, 6);
  const phase = (id: string): string | undefined => runs.find((r) => r.id === id)?.phase;
  assert.equal(phase(`${steady}-c3`), 'Skipped');
  assert.equal(phase(`${steady}-c5`), 'Skipped');
  assert.equal(phase(`${noisy}-c5`), 'Succeeded');
  assert.equal(runs.filter((r) => r.phase === 'Pending' || r.phase === 'Running').length, 0, 'the experiment finishes');
  const d = adaptiveDecisions(v.experiment.spec, v.matrix, runs, resultOf(v));
  assert.deepEqual(
    d?.outcome.configurations.map((c) => [c.reason, c.cycles]),
    [
      ['targetMet', 3],
      ['maxCycles', 6],
    ],
  );
});

test('a restarted controller continues an adaptive experiment with the same decisions', () => {
  const whole = experiment();
  let runs: RunSummary[] = [];
  const reference: string[][] = [];
  for (let i = 0; i < 20; i++) {
    const p = pass(whole, runs);
    runs = p.runs;
    if (p.started.length === 0) break;
    reference.push(p.started);
  }
  for (let stopAt = 1; stopAt < reference.length; stopAt++) {
    // First controller: stopAt passes. Then a new process: a fresh matrix (no cached records), the run table.
    let table: RunSummary[] = [];
    const seen: string[][] = [];
    let v = experiment();
    for (let i = 0; i < 20; i++) {
      if (i === stopAt) v = experiment();
      const p = pass(v, table);
      table = p.runs;
      if (p.started.length === 0) break;
      seen.push(p.started);
    }
    assert.deepEqual(seen, reference, `restarted after pass ${stopAt}`);
    assert.deepEqual(table, runs);
  }
});
