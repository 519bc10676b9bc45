import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sortPoints } from '../../../lib/sketch/fold.ts';
import { seededRandom } from '../../support/streams.ts';

/**
 * Sorted runs of the given lengths, values drawn from a few distinct numbers so ties are common; weights tag each
 * point's origin.
 */
function runs(lengths: number[], seed: number): { means: Float64Array; weights: Float64Array } {
  const random = seededRandom(seed);
  const means: number[] = [];
  for (const len of lengths)
    means.push(...Array.from({ length: len }, () => Math.floor(random() * 12)).sort((a, b) => a - b));
  return { means: Float64Array.from(means), weights: Float64Array.from(means, (_, i) => i + 1) };
}

test('sortPoints sorts any number of runs stably (equal means keep input order), leaving its input as it was', () => {
  for (const [seed, lengths] of [
    [1, [7]],
    [2, [3, 4]],
    [3, [5, 1, 6]],
    [4, Array.from({ length: 75 }, () => 16)],
    [5, [181, 181, 181, 181, 181, 181, 114]],
    [6, [0, 9, 2, 2, 2]],
  ] as const) {
    const { means, weights } = runs([...lengths], seed);
    const n = means.length;
    // Spare room past n must be ignored.
    const padded = { means: new Float64Array(n + 5).fill(-1), weights: new Float64Array(n + 5).fill(-1) };
    padded.means.set(means);
    padded.weights.set(weights);
    const before = { means: padded.means.slice(), weights: padded.weights.slice() };
    // Array#sort is stable
    const expected = Array.from(means, (m, i) => ({ m, w: weights[i] as number })).sort((a, b) => a.m - b.m);
    const out = sortPoints(padded.means, padded.weights, n);
    assert.equal(out.size, n);
    assert.deepEqual(
      Array.from(out.means.subarray(0, n)),
      expected.map((p) => p.m),
      `means, runs ${lengths.join(',')}`,
    );
    assert.deepEqual(
      Array.from(out.weights.subarray(0, n)),
      expected.map((p) => p.w),
      `weights (order of ties), runs ${lengths.join(',')}`,
    );
    assert.deepEqual(padded.means, before.means, 'input means untouched');
    assert.deepEqual(padded.weights, before.weights, 'input weights untouched');
  }
});
