// Sparse sorted buckets of LogHistogram and the pure operations on them: merge, coarsen, fit to
// the byte budget, and the quantile/rank interpolation inside a bucket.
import { encodedBytes, lowerEdgeLn, MAX_LEVEL, BYTE_BUDGET, varintBytes } from './log-histogram-layout.ts';

/** Buckets with a count > 0, indices strictly ascending, `size` entries in use. */
export interface Buckets {
  index: Int32Array;
  counts: Float64Array;
  size: number;
  level: number;
}

export function emptyBuckets(): Buckets {
  return { index: new Int32Array(0), counts: new Float64Array(0), size: 0, level: 0 };
}

/** The same data one or more levels coarser (pairs of buckets merged). */
export function coarsen(b: Buckets, level: number): Buckets {
  if (level <= b.level) return b;
  const shift = level - b.level;
  const index = new Int32Array(b.size);
  const counts = new Float64Array(b.size);
  let n = 0;
  for (let k = 0; k < b.size; k++) {
    const j = (b.index[k] as number) >> shift;
    if (n > 0 && index[n - 1] === j) counts[n - 1] = (counts[n - 1] as number) + (b.counts[k] as number);
    else {
      index[n] = j;
      counts[n++] = b.counts[k] as number;
    }
  }
  return { index, counts, size: n, level };
}

/** Union of two bucket sets at the coarser of their levels (counts add: order does not matter). */
export function mergeBuckets(a: Buckets, b: Buckets): Buckets {
  const level = Math.max(a.level, b.level);
  const x = coarsen(a, level);
  const y = coarsen(b, level);
  if (y.size === 0) return x;
  if (x.size === 0) return y;
  const index = new Int32Array(x.size + y.size);
  const counts = new Float64Array(x.size + y.size);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < x.size || j < y.size) {
    const xi = i < x.size ? (x.index[i] as number) : Number.POSITIVE_INFINITY;
    const yj = j < y.size ? (y.index[j] as number) : Number.POSITIVE_INFINITY;
    if (xi === yj) {
      index[n] = xi;
      counts[n++] = (x.counts[i++] as number) + (y.counts[j++] as number);
    } else if (xi < yj) {
      index[n] = xi;
      counts[n++] = x.counts[i++] as number;
    } else {
      index[n] = yj;
      counts[n++] = y.counts[j++] as number;
    }
  }
  return { index, counts, size: n, level };
}

/** Scratch for a partial's buckets coarsened to the target's level (JavaScript is single-threaded). */
let scratch: Buckets = emptyBuckets();

/** y at a coarser level, written into the shared scratch (valid until the next call). */
function coarsenedScratch(y: Buckets, level: number): Buckets {
  if (scratch.index.length < y.size) {
    scratch = { index: new Int32Array(y.size * 2), counts: new Float64Array(y.size * 2), size: 0, level };
  }
  const { index, counts } = scratch;
  const shift = level - y.level;
  let n = 0;
  for (let k = 0; k < y.size; k++) {
    const j = (y.index[k] as number) >> shift;
    if (n > 0 && index[n - 1] === j) counts[n - 1] = (counts[n - 1] as number) + (y.counts[k] as number);
    else {
      index[n] = j;
      counts[n++] = y.counts[k] as number;
    }
  }
  scratch.size = n;
  scratch.level = level;
  return scratch;
}

/**
 * Adds y's counts to the buckets `into` already has (in place); `extra`: y's buckets it lacks, `grew`:
 * how many bytes the serialised counts grew by.
 */
function addToExisting(into: Buckets, y: Buckets): { extra: number; grew: number } {
  let i = 0;
  let extra = 0;
  let grew = 0;
  for (let k = 0; k < y.size; k++) {
    const j = y.index[k] as number;
    while (i < into.size && (into.index[i] as number) < j) i++;
    if (i < into.size && into.index[i] === j) {
      const before = into.counts[i] as number;
      const after = before + (y.counts[k] as number);
      into.counts[i] = after;
      if (after >= 0x80) grew += varintBytes(after) - varintBytes(before);
    } else extra++;
  }
  return { extra, grew };
}

/**
 * Adds y into x in place (x is owned by the caller and may be grown): no allocation when y's buckets
 * are already in x, the common case when many partials of one run are merged. Returns x or its
 * grown replacement. Same result as mergeBuckets.
 */
export function mergeInto(x: Buckets, y0: Buckets, growth?: { bytes: number }): Buckets {
  const into = y0.level > x.level ? coarsen(x, y0.level) : x;
  const level = into.level;
  const y = y0.level === level ? y0 : coarsenedScratch(y0, level);
  const ySize = y.size;
  const yIndex = y.index;
  const yCounts = y.counts;
  const { extra, grew } = addToExisting(into, y);
  // Same buckets, same level: only count varints can have grown (gaps and the header are unchanged).
  if (growth !== undefined) growth.bytes = extra === 0 && into === x ? grew : Number.NaN;
  if (extra === 0) return into;
  // Some of y's buckets are new: merge from the back into room for the union.
  const n = into.size + extra;
  let out = into;
  if (into.index.length < n) {
    const cap = Math.max(n, into.index.length * 2);
    out = { index: new Int32Array(cap), counts: new Float64Array(cap), size: into.size, level };
    out.index.set(into.index.subarray(0, into.size));
    out.counts.set(into.counts.subarray(0, into.size));
  }
  let a = into.size - 1;
  let b = ySize - 1;
  for (let o = n - 1; o >= 0; o--) {
    const ai = a >= 0 ? (out.index[a] as number) : Number.NEGATIVE_INFINITY;
    const bj = b >= 0 ? (yIndex[b] as number) : Number.NEGATIVE_INFINITY;
    if (bj > ai) {
      out.index[o] = bj;
      out.counts[o] = yCounts[b--] as number;
    } else {
      // Equal indices were already added into x in the first pass: skip y's copy.
      if (bj === ai) b--;
      out.index[o] = ai;
      out.counts[o] = out.counts[a--] as number;
    }
  }
  out.size = n;
  return out;
}

/** Run-length buckets of sorted finest indices at a level. */
export function bucketsOfSorted(finest: Int32Array, level: number): Buckets {
  const index = new Int32Array(finest.length);
  const counts = new Float64Array(finest.length);
  let n = 0;
  for (const f of finest) {
    const j = f >> level;
    if (n > 0 && index[n - 1] === j) counts[n - 1] = (counts[n - 1] as number) + 1;
    else {
      index[n] = j;
      counts[n++] = 1;
    }
  }
  return { index, counts, size: n, level };
}

/**
 * Coarsens until the serialised form fits the byte budget: the finest level that does. `bytes`: b's
 * serialised size when the caller knows it (saves one pass over the buckets).
 */
export function fitBudget(b: Buckets, bytes?: number): Buckets {
  if (bytes !== undefined && bytes <= BYTE_BUDGET) return b;
  let out = b;
  while (out.level < MAX_LEVEL && encodedBytes(out.index, out.counts, out.size) > BYTE_BUDGET) {
    out = coarsen(out, out.level + 1);
  }
  return out;
}

/** ln-space edges of bucket k; the extreme buckets end at the exact min and max. */
export interface Edges {
  lo: number;
  hi: number;
}

export function edgesOf(b: Buckets, k: number, lnMin: number, lnMax: number): Edges {
  const j = b.index[k] as number;
  const lo = k === 0 ? lnMin : lowerEdgeLn(j, b.level);
  const hi = k === b.size - 1 ? lnMax : lowerEdgeLn(j + 1, b.level);
  return { lo, hi: Math.max(lo, hi) };
}

/**
 * Density slope inside bucket k, as a fraction of its mean density per bucket width: the
 * central difference of its neighbours' counts (an absent neighbour counts 0). Clamped to ±2 so
 * the linear density a + b·s stays non-negative over the bucket. Zero in the extreme buckets,
 * whose width is cut by min/max.
 */
export function slopeOf(b: Buckets, k: number): number {
  if (k === 0 || k === b.size - 1) return 0;
  const j = b.index[k] as number;
  const c = b.counts[k] as number;
  const left = b.index[k - 1] === j - 1 ? (b.counts[k - 1] as number) : 0;
  const right = b.index[k + 1] === j + 1 ? (b.counts[k + 1] as number) : 0;
  return Math.max(-2, Math.min(2, (right - left) / (2 * c)));
}

/** s in [0, 1] where the bucket's linear-density CDF F(s) = (1 - b/2)·s + (b/2)·s² reaches u. */
export function positionOf(u: number, slope: number): number {
  const a = 1 - slope / 2;
  // u = 0 at slope 2 would be 0 / 0 (NaN, a null p99 in results): the bucket's lower edge.
  if (u <= 0) return 0;
  if (Math.abs(slope) < 1e-12) return u;
  // Stable root of (b/2)s² + a·s - u = 0.
  const disc = Math.max(0, a * a + 2 * slope * u);
  return Math.max(0, Math.min(1, (2 * u) / (a + Math.sqrt(disc))));
}

export function cdfAt(s: number, slope: number): number {
  return (1 - slope / 2) * s + (slope / 2) * s * s;
}
