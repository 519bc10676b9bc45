// workload.ladder and slo in the spec (ADR 0030): expansion into step configurations, staged order,
// and the errors `llem validate` prints, each naming the field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EnergyExperimentSchema, expandRunMatrix, ladderValues, LadderSchema } from '../../../api/index.ts';
import { energyExperimentCrd } from '../../../api/crd.ts';
import { validateManifestDocument } from '../../../lib/manifest/index.ts';
import { isInvalidInput } from '../../../lib/errors.ts';
import { stringify } from 'yaml';
import { at, validManifest, type Json } from './fixtures.ts';

function ladderManifest(ladder: Json, extra: (m: Json) => void = () => undefined): Json {
  const m = validManifest();
  at(m, 'spec')['backends'] = [{ type: 'pytorch' }];
  at(m, 'spec', 'workload')['ladder'] = ladder;
  extra(m);
  return m;
}

function matrixOf(m: Json): ReturnType<typeof expandRunMatrix> {
  return expandRunMatrix(EnergyExperimentSchema.parse(m).spec);
}

function errorLines(m: Json): string[] {
  try {
    validateManifestDocument(m, 'x.yaml');
  } catch (err) {
    assert.ok(isInvalidInput(err), String(err));
    return err.message.split('\n');
  }
  return [];
}

void describe('load ladder in the spec', () => {
  void it('expands a geometric concurrency ladder into one configuration per step, in rising load', () => {
    const mx = matrixOf(ladderManifest({ mode: 'concurrency', start: 1, factor: 2, maxSteps: 5 }));
    assert.deepEqual(mx.errors, []);
    assert.deepEqual(
      mx.configurations.map((c) => [c.ladder?.step, c.workload.concurrency, c.workload.mode]),
      [0, 1, 2, 3, 4].map((k) => [k, 2 ** k, 'concurrency']),
    );
    assert.equal(new Set(mx.configurations.map((c) => c.ladder?.group)).size, 1);
    assert.ok(mx.configurations.every((c) => c.workload.ladder === undefined));
    assert.deepEqual(mx.configurations[2]?.point, { 'workload.concurrency': 4 });
  });

  void it('hashes a step like the same fixed load written by hand, so results compare across them', () => {
    const step = matrixOf(ladderManifest({ mode: 'rate', start: 2, step: 2, maxSteps: 3 })).configurations[1];
    const byHand = validManifest();
    at(byHand, 'spec')['backends'] = [{ type: 'pytorch' }];
    Object.assign(at(byHand, 'spec', 'workload'), { mode: 'rate', ratePerSecond: 4 });
    assert.equal(step?.configHash, matrixOf(byHand).configurations[0]?.configHash);
  });

  void it('keeps concurrency steps whole and strictly rising when the factor is small', () => {
    assert.deepEqual(
      ladderValues(LadderSchema.parse({ mode: 'concurrency', start: 1, factor: 1.2, maxSteps: 6 })),
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(
      ladderValues(LadderSchema.parse({ mode: 'rate', start: 0.5, factor: 3, maxSteps: 3 })),
      [0.5, 1.5, 4.5],
    );
  });

  void it('orders every cycle of step k before any run of step k + 1, other configurations in the first stage', () => {
    const m = ladderManifest({ mode: 'concurrency', start: 1, factor: 2, maxSteps: 3 }, (x) => {
      at(x, 'spec', 'measurement')['cycles'] = 3;
      at(x, 'spec')['backends'] = [{ type: 'pytorch' }, { type: 'vllm' }];
    });
    const mx = matrixOf(m);
    const steps = mx.runs.map((r) => r.ladder?.step ?? -1);
    assert.equal(mx.runs.length, 18);
    const stageOf = (s: number): number => Math.max(0, s);
    for (let i = 1; i < steps.length; i++)
      assert.ok(stageOf(steps[i]!) >= stageOf(steps[i - 1]!), `run ${i}: ${steps.join(',')}`);
    assert.deepEqual(
      mx.runs.slice(0, 6).map((r) => r.cycle),
      [0, 0, 1, 1, 2, 2],
      'interleaved inside the stage',
    );
  });

  void it('is valid in every shipped form and rejected, naming the field, when malformed', () => {
    const cases: [Json, RegExp][] = [
      [
        { mode: 'concurrency', start: 1, factor: 2, step: 1 },
        /^x\.yaml: spec\.workload\.ladder\.step: set exactly one of factor/,
      ],
      [{ mode: 'concurrency', start: 1 }, /^x\.yaml: spec\.workload\.ladder\.factor: set exactly one of factor/],
      [{ mode: 'concurrency', start: 1.5, factor: 2 }, /^x\.yaml: spec\.workload\.ladder\.start: must be an integer/],
      [{ mode: 'rate', start: 1, factor: 2, maxSteps: 1 }, /^x\.yaml: spec\.workload\.ladder\.maxSteps: /],
      [{ mode: 'load', start: 1, factor: 2 }, /^x\.yaml: spec\.workload\.ladder\.mode: /],
    ];
    for (const [ladder, line] of cases) {
      const lines = errorLines(ladderManifest(ladder));
      assert.ok(
        lines.some((l) => line.test(l)),
        `${JSON.stringify(ladder)}:\n${lines.join('\n')}`,
      );
    }
  });

  void it('refuses a sweep axis over the field the ladder sets, naming the axis', () => {
    const m = ladderManifest({ mode: 'concurrency', start: 1, factor: 2 }, (x) => {
      at(x, 'spec')['sweep'] = { axes: { 'workload.concurrency': [1, 2] } };
    });
    const lines = errorLines(m);
    assert.ok(
      lines.some((l) =>
        /^x\.yaml: spec\.sweep\.axes\[workload\.concurrency\]\[0\]: workload\.concurrency is set by workload\.ladder/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
  });
});

void describe('SLOs in the spec', () => {
  void it('accepts percentile targets and defaults p to 99', () => {
    const m = validManifest();
    at(m, 'spec')['slo'] = { ttftMs: { ms: 200 }, itlMs: { p: 95, ms: 30 } };
    const spec = EnergyExperimentSchema.parse(m).spec;
    assert.deepEqual(spec.slo, { ttftMs: { p: 99, ms: 200 }, itlMs: { p: 95, ms: 30 } });
  });

  void it('rejects an empty SLO and a bad percentile, naming the field', () => {
    const empty = validManifest();
    at(empty, 'spec')['slo'] = {};
    assert.ok(errorLines(empty).some((l) => /^x\.yaml: spec\.slo: set at least one of ttftMs, itlMs, e2eMs/.test(l)));
    const bad = validManifest();
    at(bad, 'spec')['slo'] = { ttftMs: { p: 0, ms: 200 } };
    assert.ok(errorLines(bad).some((l) => /^x\.yaml: spec\.slo\.ttftMs\.p: /.test(l)));
  });

  void it('carries CEL rules for the ladder and the SLO in the generated CRD', () => {
    const text = stringify(energyExperimentCrd());
    for (const fragment of [
      'has(self.factor) != has(self.step)',
      'self.start == double(int(self.start))',
      'has(self.ttftMs) || has(self.itlMs)',
    ])
      assert.ok(text.includes(fragment), fragment);
  });
});
