// Load-ladder saturation, the run gate and the knee (aggregator/ladder.ts, ADR 0030).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EnergyExperimentSchema,
  expandRunMatrix,
  LadderSchema,
  type LadderSpec,
  type RunMatrix,
} from '../../../api/index.ts';
import {
  kneeOf,
  ladderGate,
  ladderVerdict,
  type LadderPoint,
  type LadderStepInput,
} from '../../../aggregator/index.ts';
import { at, validManifest } from '../api/fixtures.ts';

function ladder(extra: Partial<LadderSpec> = {}): LadderSpec {
  return LadderSchema.parse({ mode: 'concurrency', start: 1, factor: 2, maxSteps: 6, ...extra });
}

function steps(
  tps: (number | null)[],
  opts: { unfinishedFrom?: number; sloBrokenAt?: number } = {},
): LadderStepInput[] {
  return tps.map((t, step) => ({
    step,
    finished: opts.unfinishedFrom === undefined || step < opts.unfinishedFrom,
    tokensPerSecond: t,
    sloBroken: step === opts.sloBrokenAt ? 'ttftMs p99 900 ms > 500 ms' : null,
  }));
}

void describe('load-ladder saturation', () => {
  void it('calls saturation at the first step whose throughput is within the tolerance of the best earlier step', () => {
    const v = ladderVerdict(steps([100, 190, 360, 370, 371, 372]), ladder({ saturationTolerancePct: 5 }));
    assert.equal(v.saturatedAt, 3);
    assert.match(v.reason, /throughput stopped rising: step 3/);
  });

  void it('saturates at step 1 when the second step adds nothing', () => {
    const v = ladderVerdict(steps([500, 505]), ladder({ maxSteps: 6 }));
    assert.equal(v.saturatedAt, 1);
  });

  void it('reports a ladder that never saturates before maxSteps as such', () => {
    const v = ladderVerdict(steps([100, 200, 400, 800]), ladder({ maxSteps: 4 }));
    assert.equal(v.saturatedAt, null);
    assert.match(v.reason, /did not saturate within maxSteps \(4\)/);
  });

  void it('compares with the best earlier step, so a noisy dip followed by a rise is caught by patience 1 and survived with patience 2', () => {
    const noisy = steps([100, 200, 180, 400, 410, 405]);
    assert.equal(ladderVerdict(noisy, ladder({ patience: 1 })).saturatedAt, 2);
    const patient = ladderVerdict(noisy, ladder({ patience: 2 }));
    assert.equal(patient.saturatedAt, 5, patient.reason);
    assert.match(patient.reason, /2 steps in a row/);
  });

  void it('does not let a non-monotone recovery below the earlier best reset saturation', () => {
    // 300 at step 2 then a dip and a recovery to 305: never 5% above the best (300).
    const v = ladderVerdict(steps([100, 300, 250, 305]), ladder({ patience: 2 }));
    assert.equal(v.saturatedAt, 3);
  });

  void it('stops at once when an SLO breaks, even while throughput still rises', () => {
    const v = ladderVerdict(steps([100, 200, 400], { sloBrokenAt: 1 }), ladder());
    assert.equal(v.saturatedAt, 1);
    assert.match(v.reason, /SLO broken at step 1/);
  });

  void it('stops at a step whose runs all failed', () => {
    const v = ladderVerdict(steps([100, null, 300]), ladder());
    assert.equal(v.saturatedAt, 1);
    assert.match(v.reason, /no run of step 1 succeeded/);
  });

  void it('judges only finished steps, in step order whatever the input order', () => {
    const s = steps([100, 200, 150, 160], { unfinishedFrom: 2 });
    const v = ladderVerdict([...s].reverse(), ladder());
    assert.equal(v.saturatedAt, null);
    assert.equal(v.decidedThrough, 1);
  });
});

function ladderMatrix(cycles = 2): RunMatrix {
  const m = validManifest();
  at(m, 'spec')['backends'] = [{ type: 'pytorch' }];
  at(m, 'spec', 'workload')['ladder'] = { mode: 'concurrency', start: 1, factor: 2, maxSteps: 4 };
  at(m, 'spec', 'measurement')['cycles'] = cycles;
  return expandRunMatrix(EnergyExperimentSchema.parse(m).spec);
}

void describe('load-ladder run gate', () => {
  const matrix = ladderMatrix();
  const configAt = (step: number): string => matrix.configurations.find((c) => c.ladder?.step === step)?.id ?? '';

  void it('runs step 0 at once and holds later steps until the earlier ones have ended', () => {
    const gate = ladderGate({
      configurations: matrix.configurations,
      runs: matrix.runs,
      ended: () => false,
      step: () => ({ tokensPerSecond: null, sloBroken: null }),
    });
    for (const r of matrix.runs) {
      const a = gate.get(r.id);
      if (r.ladder?.step === 0) assert.deepEqual(a, { action: 'run' });
      else assert.equal(a?.action, 'hold', r.id);
    }
  });

  void it('skips every run after the saturating step and runs the saturating step itself', () => {
    const tps = new Map([
      [configAt(0), 100],
      [configAt(1), 180],
      [configAt(2), 182],
    ]);
    const ended = new Set(matrix.runs.filter((r) => (r.ladder?.step ?? 0) <= 2).map((r) => r.id));
    const gate = ladderGate({
      configurations: matrix.configurations,
      runs: matrix.runs,
      ended: (id) => ended.has(id),
      step: (id) => ({ tokensPerSecond: tps.get(id) ?? null, sloBroken: null }),
    });
    for (const r of matrix.runs) {
      const a = gate.get(r.id);
      if ((r.ladder?.step ?? 0) <= 2) assert.deepEqual(a, { action: 'run' }, r.id);
      else {
        assert.equal(a?.action, 'skip', r.id);
        assert.match(a?.action === 'skip' ? a.reason : '', /saturated at step 2/);
      }
    }
  });

  void it('decides the same from the same recorded results after a restart (a pure function of them)', () => {
    const inputs = {
      configurations: matrix.configurations,
      runs: matrix.runs,
      ended: (id: string) => matrix.runs.find((r) => r.id === id)?.ladder?.step === 0,
      step: (id: string) => ({ tokensPerSecond: id === configAt(0) ? 100 : null, sloBroken: null }),
    };
    assert.deepEqual([...ladderGate(inputs)], [...ladderGate({ ...inputs })]);
    assert.deepEqual(
      [...ladderGate(inputs)],
      [...ladderGate({ ...inputs, runs: [...matrix.runs].reverse() })].sort(
        (a, b) => matrix.runs.findIndex((r) => r.id === a[0]) - matrix.runs.findIndex((r) => r.id === b[0]),
      ),
    );
  });
});

function point(step: number, load: number, tps: number | null, meetsSlo: boolean | null = null): LadderPoint {
  const s =
    tps === null ? null : { n: 3, mean: tps, std: 1, ci95Low: tps - 2, ci95High: tps + 2, reason: null, flags: [] };
  return {
    step,
    configId: `c${step}`,
    load,
    ran: tps !== null,
    joulesPerToken: null,
    tokensPerSecond: s,
    ttftP50Ms: null,
    ttftP99Ms: null,
    itlP50Ms: null,
    itlP99Ms: null,
    meetsSlo,
  };
}

void describe('load-ladder knee', () => {
  void it('is the lowest load within the tolerance of the highest throughput', () => {
    const { knee } = kneeOf([point(0, 1, 100), point(1, 2, 190), point(2, 4, 385), point(3, 8, 400)], ladder());
    assert.equal(knee?.load, 4);
  });

  void it('leaves out steps that break the SLOs', () => {
    const { knee } = kneeOf([point(0, 1, 100), point(1, 2, 190), point(2, 4, 400, false)], ladder());
    assert.equal(knee?.load, 2);
  });

  void it('has no knee when no step ran', () => {
    const r = kneeOf([point(0, 1, null)], ladder());
    assert.equal(r.knee, null);
    assert.match(r.why, /no step/);
  });
});
