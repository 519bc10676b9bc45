// The time-energy Pareto frontier with 95% CIs on both axes (report/frontier.ts, ADR 0030).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { paretoFrontier, type FrontierInput } from '../../../report/frontier.ts';

function pt(
  id: string,
  energy: number,
  time: number,
  eHalf: number | null = 0.01,
  tHalf: number | null = 1,
): FrontierInput {
  return {
    id,
    energy: { mean: energy, low: eHalf === null ? null : energy - eHalf, high: eHalf === null ? null : energy + eHalf },
    time: { mean: time, low: tHalf === null ? null : time - tHalf, high: tHalf === null ? null : time + tHalf },
  };
}

function statuses(points: readonly FrontierInput[], better: 'higher' | 'lower' = 'higher'): Record<string, string> {
  return Object.fromEntries(paretoFrontier(points, better).map((p) => [p.id, p.status]));
}

void describe('Pareto frontier with confidence intervals', () => {
  void it('puts the non-dominated configurations on the frontier and marks one beaten with the CIs apart as dominated', () => {
    // Throughput is better higher: a (cheap, slow), c (dear, fast) trade off; b is worse than a on both.
    const s = statuses([pt('a', 0.1, 100), pt('b', 0.2, 90), pt('c', 0.3, 300)]);
    assert.deepEqual(s, { a: 'frontier', b: 'dominated', c: 'frontier' });
  });

  void it('marks a point dominated by means but overlapping in its CIs as not distinguishable', () => {
    const s = statuses([pt('a', 0.1, 100, 0.02, 5), pt('b', 0.11, 97, 0.02, 5)]);
    assert.deepEqual(s, { a: 'frontier', b: 'notDistinguishable' });
    const b = paretoFrontier([pt('a', 0.1, 100, 0.02, 5), pt('b', 0.11, 97, 0.02, 5)], 'higher')[1]!;
    assert.deepEqual(b.dominatedBy, ['a']);
  });

  void it('treats a missing CI as unbounded: such a point is never confidently dominated', () => {
    const s = statuses([pt('a', 0.1, 100), pt('b', 0.5, 10, null, null)]);
    assert.deepEqual(s, { a: 'frontier', b: 'notDistinguishable' });
  });

  void it('keeps exact ties and duplicates on the frontier together', () => {
    const s = statuses([pt('a', 0.1, 100), pt('a2', 0.1, 100), pt('b', 0.1, 100), pt('c', 0.2, 50)]);
    assert.deepEqual(s, { a: 'frontier', a2: 'frontier', b: 'frontier', c: 'dominated' });
  });

  void it('puts a single point on the frontier, and an empty input gives an empty frontier', () => {
    assert.deepEqual(statuses([pt('only', 1, 1)]), { only: 'frontier' });
    assert.deepEqual(paretoFrontier([], 'lower'), []);
  });

  void it('flips the time axis for latency: lower is better', () => {
    const s = statuses([pt('fast', 0.3, 10), pt('slow', 0.1, 100), pt('bad', 0.4, 200)], 'lower');
    assert.deepEqual(s, { fast: 'frontier', slow: 'frontier', bad: 'dominated' });
  });

  void it('gives the same result whatever the input order (adversarial permutations)', () => {
    const arb = fc.array(
      fc.record({
        e: fc.integer({ min: 1, max: 20 }),
        t: fc.integer({ min: 1, max: 20 }),
        eh: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
        th: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
      }),
      { minLength: 1, maxLength: 12 },
    );
    fc.assert(
      fc.property(arb, fc.integer({ min: 0, max: 1e9 }), (rows, seed) => {
        const points = rows.map((r, i) =>
          pt(`p${String(i).padStart(2, '0')}`, r.e / 10, r.t, r.eh === null ? null : r.eh / 100, r.th),
        );
        const shuffled = [...points];
        let s = seed;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (s * 1103515245 + 12345) % 2 ** 31;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        assert.deepEqual(paretoFrontier(shuffled, 'higher'), paretoFrontier(points, 'higher'));
        // Every dominated-by-means point is dominated by some frontier point too (transitivity), and
        // the frontier is never empty.
        const res = paretoFrontier(points, 'higher');
        assert.ok(res.some((p) => p.status === 'frontier'));
      }),
      { numRuns: 300 },
    );
  });
});
