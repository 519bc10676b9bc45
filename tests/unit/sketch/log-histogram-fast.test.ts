// The aggregator's hot path for sketches (ADR 0027): the one-pass decoder must accept exactly what the
// reference decoder (log-histogram-codec.ts + checks) accepts, and merges folded in batches must give
// the bytes that merging one at a time gives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LogHistogram, sketchScratch } from '../../../lib/sketch/index.ts';
import { decodeHistogram, encodeHistogram, type HistogramParts } from '../../../lib/sketch/log-histogram-codec.ts';
import { decodeHistogramFast } from '../../../lib/sketch/log-histogram-fast.ts';
import { seededRandom } from '../../support/streams.ts';

/** A sketch of n values spread over `decades` (some zeros), as an agent's slice would hold. */
function sketchOf(seed: number, n: number, decades: number, zeros = 0): LogHistogram {
  const r = seededRandom(seed);
  const h = new LogHistogram();
  for (let i = 0; i < n; i++) h.add(10 ** (decades * r() - decades / 3));
  for (let i = 0; i < zeros; i++) h.add(0);
  return h;
}

function refOrNull(bytes: Uint8Array): HistogramParts | null {
  try {
    return decodeHistogram(bytes);
  } catch {
    return null;
  }
}

function sameParts(a: HistogramParts, b: HistogramParts): void {
  const { buckets: ba, ...ha } = a;
  const { buckets: bb, ...hb } = b;
  assert.deepEqual(ha, hb);
  assert.equal(ba.size, bb.size);
  assert.equal(ba.level, bb.level);
  assert.deepEqual([...ba.index.subarray(0, ba.size)], [...bb.index.subarray(0, bb.size)]);
  assert.deepEqual([...ba.counts.subarray(0, ba.size)], [...bb.counts.subarray(0, bb.size)]);
}

/** Fast and reference agree: both refuse, or both accept with the same parts (into scratch arrays too). */
function agree(bytes: Uint8Array, scratch = sketchScratch()): void {
  const reference = refOrNull(bytes);
  const fast = decodeHistogramFast(bytes);
  const into = decodeHistogramFast(bytes, scratch);
  assert.equal(
    fast === null,
    reference === null,
    `fast ${fast === null ? 'refused' : 'accepted'} what the reference did not`,
  );
  assert.equal(into === null, reference === null);
  if (reference !== null && fast !== null && into !== null) {
    sameParts(fast, reference);
    sameParts(into, reference);
  }
}

const honestSketch = fc
  .record({
    seed: fc.integer({ min: 1, max: 1e6 }),
    n: fc.integer({ min: 0, max: 6000 }),
    decades: fc.constantFrom(0.5, 2, 6, 14, 300),
    zeros: fc.integer({ min: 0, max: 3 }),
  })
  .map(({ seed, n, decades, zeros }) => sketchOf(seed, n, decades, zeros).serialize());

void describe('the one-pass sketch decoder', () => {
  void it('accepts honest sketches of every spread and level with the reference decoder parts', () => {
    fc.assert(
      fc.property(honestSketch, (bytes) => agree(bytes)),
      { numRuns: 150, seed: 27 },
    );
  });

  void it('refuses every corrupted, truncated or extended sketch the reference refuses, and only those', () => {
    const edit = fc.record({
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
      how: fc.constantFrom('set', 'truncate', 'append', 'xor'),
    });
    fc.assert(
      fc.property(honestSketch, fc.array(edit, { minLength: 1, maxLength: 3 }), (bytes, edits) => {
        let b = Uint8Array.from(bytes);
        for (const e of edits) {
          const at = e.at % Math.max(1, b.length);
          if (e.how === 'set') b[at] = e.value;
          else if (e.how === 'xor') b[at] = (b[at] as number) ^ (1 << (e.value % 8));
          else if (e.how === 'truncate') b = b.subarray(0, at);
          else b = Uint8Array.from([...b, e.value]);
        }
        agree(b);
      }),
      { numRuns: 600, seed: 27 },
    );
  });

  void it('refuses lying headers as the reference does: counts, sums, min and max, NaN and negatives', () => {
    const p0 = decodeHistogram(sketchOf(3, 3000, 2, 2).serialize());
    const lies: Array<(p: HistogramParts) => void> = [
      (p) => (p.count += 1),
      (p) => (p.zeros = -1),
      (p) => (p.count = 4.5),
      (p) => (p.sumHi *= 1.01),
      (p) => (p.sumHi = Number.NaN),
      (p) => (p.sumLo = Number.POSITIVE_INFINITY),
      (p) => (p.sumLo = p.sumHi * 1e-6),
      (p) => (p.min = p.min * 0.5),
      (p) => (p.max = p.max * 2),
      (p) => (p.min = -1),
      (p) => (p.max = Number.POSITIVE_INFINITY),
      (p) => (p.buckets.counts[3] = 0),
      (p) => (p.buckets.level = 3),
    ];
    for (const lie of lies) {
      const p = {
        ...p0,
        buckets: { ...p0.buckets, counts: p0.buckets.counts.slice(), index: p0.buckets.index.slice() },
      };
      lie(p);
      const bytes = encodeHistogram(p);
      assert.equal(refOrNull(bytes), null, 'the reference refuses the lie');
      assert.equal(decodeHistogramFast(bytes), null, 'the one-pass decoder refuses it too');
      assert.throws(() => LogHistogram.deserialize(bytes), /latency sketch:/, 'and deserialize says why');
    }
  });
  void it('bounds the sum by bucket edges as the reference does inside, across and beyond the edge table', () => {
    // The edge table covers 1e-3 .. 8.6e10 ms; sketches below, across and above it, with counts of one
    // byte and of several (a value repeated 300 times), at level 0 and coarser; each sum nudged by
    // factors on either side of the 1e-9 slack, so both the accepted and the refused side are compared.
    const spreads: Array<[number, number]> = [
      [1e-7, 1e-5],
      [1e-5, 5e-2],
      [0.5, 3e3],
      [1e9, 1e12],
      [1e13, 1e15],
      [1e-6, 1e14],
      // One value repeated: the sum sits exactly on both bounds (count x min, count x max).
      [5, 5],
      [1e13, 1e13],
      [3e-6, 3e-6],
    ];
    const nudges = [1, 1 + 5e-10, 1 - 5e-10, 1 + 2e-9, 1 - 2e-9, 1 + 1e-6, 1 - 1e-6, 1.001, 0.999, 1.01, 0.99];
    for (const [i, [lo, hi]] of spreads.entries()) {
      const r = seededRandom(100 + i);
      const h = new LogHistogram();
      for (let k = 0; k < 4000; k++) h.add(lo === hi ? lo : lo * (hi / lo) ** r());
      for (let k = 0; k < 300; k++) h.add(lo);
      const p0 = decodeHistogram(h.serialize());
      for (const nudge of nudges) {
        const p = { ...p0, sumHi: p0.sumHi * nudge, sumLo: nudge === 1 ? p0.sumLo : 0 };
        const bytes = encodeHistogram(p);
        agree(bytes);
        if (nudge === 1) assert.notEqual(decodeHistogramFast(bytes), null, `the honest sketch of ${lo}..${hi} passes`);
        // At level 0 a bucket is 0.1% wide: a sum 1% off lies outside every bound.
        if (p0.buckets.level === 0 && Math.abs(nudge - 1) > 5e-3) {
          assert.equal(decodeHistogramFast(bytes), null, `a sum 1% off is refused (${lo}..${hi})`);
        }
      }
    }
  });

  void it('refuses a bucket count of several bytes that is zero or not a safe integer, as the reference does', () => {
    const p0 = decodeHistogram(sketchOf(9, 500, 2).serialize());
    for (const bad of [0, 2 ** 53 + 2, 2 ** 55]) {
      const counts = p0.buckets.counts.slice();
      counts[2] = bad;
      const p = { ...p0, buckets: { ...p0.buckets, counts } };
      let bytes: Uint8Array;
      try {
        bytes = encodeHistogram(p);
      } catch {
        continue; // the encoder refuses to write it: nothing to decode
      }
      agree(bytes);
      assert.equal(decodeHistogramFast(bytes), null, `a count of ${bad} is refused`);
    }
  });
});

void describe('merges folded in batches', () => {
  /** The same parts merged into two sketches: one folds as it likes, one is read after every merge. */
  function bothWays(parts: LogHistogram[]): [Uint8Array, Uint8Array] {
    const batched = new LogHistogram();
    const oneByOne = new LogHistogram();
    for (const p of parts) {
      batched.merge(p);
      oneByOne.merge(p);
      assert.ok(oneByOne.level >= 0); // a read folds what is pending: one merge at a time
    }
    return [batched.serialize(), oneByOne.serialize()];
  }

  void it('give the bytes of merging one at a time: dense slices of one run', () => {
    const parts = Array.from({ length: 300 }, (_, i) => sketchOf(i + 1, 50 + ((i * 37) % 900), 1.5, i % 3));
    const [a, b] = bothWays(parts);
    assert.deepEqual(a, b);
  });

  void it('give the same bytes for data spread too wide for the dense window, and for parts coarser than the run', () => {
    const parts: LogHistogram[] = [];
    for (let i = 0; i < 200; i++) {
      // Few values over 450 decades (folded part by part), heavy ones that force coarse levels.
      parts.push(i % 7 === 0 ? sketchOf(i + 100, 8000, 14) : sketchOf(i + 100, 1 + (i % 5), 450));
    }
    const [a, b] = bothWays(parts);
    assert.deepEqual(a, b);
    assert.ok(LogHistogram.deserialize(a).level > 0, 'the data forced a coarser level');
  });

  void it('merge decoded sketches from reused arrays as LogHistograms would merge', () => {
    const scratch = sketchScratch();
    const viaScratch = new LogHistogram();
    const viaObjects = new LogHistogram();
    for (let i = 0; i < 120; i++) {
      const bytes = sketchOf(i + 7, (i * 53) % 1500, i % 10 === 0 ? 40 : 2, i % 4).serialize();
      viaScratch.mergeDecoded(LogHistogram.decodeInto(bytes, scratch));
      viaObjects.merge(LogHistogram.deserialize(bytes));
    }
    assert.deepEqual(viaScratch.serialize(), viaObjects.serialize());
    assert.equal(viaScratch.quantile(0.99), viaObjects.quantile(0.99));
  });
});
