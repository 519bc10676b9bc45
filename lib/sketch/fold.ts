// Folding helpers for MergingDigest: sorting buffered points and merging sorted inputs, using
// shared scratch arrays so a flush allocates only its result.
import type { Centroids } from './centroids.ts';

/** Shared scratch for flushes (JavaScript is single-threaded and flushes do not nest). */
export const scratch = {
  m: new Float64Array(0),
  w: new Float64Array(0),
  m2: new Float64Array(0),
  w2: new Float64Array(0),
  merged: { means: new Float64Array(0), weights: new Float64Array(0) },
  out: { means: new Float64Array(0), weights: new Float64Array(0) },
};

function ensureScratch(n: number): void {
  if (scratch.m.length >= n) return;
  const size = Math.max(n, scratch.m.length * 2);
  scratch.m = new Float64Array(size);
  scratch.w = new Float64Array(size);
  scratch.m2 = new Float64Array(size);
  scratch.w2 = new Float64Array(size);
  scratch.merged = { means: new Float64Array(size), weights: new Float64Array(size) };
  scratch.out = { means: new Float64Array(size), weights: new Float64Array(size) };
}

/**
 * Natural merge sort: merged digests arrive as already-sorted runs of centroids, so finding
 * the runs and merging neighbours pairwise costs O(n log runs). Ties take the left run first, so
 * the result is a pure function of the input order.
 */
export function sortPoints(means: Float64Array, weights: Float64Array, n: number): Centroids {
  let bounds: number[] = [0];
  for (let i = 1; i < n; i++) if ((means[i] as number) < (means[i - 1] as number)) bounds.push(i);
  bounds.push(n);
  // Already one run: the input is the answer (the caller reads it before the buffers change).
  if (bounds.length <= 2) return { means, weights, size: n };
  ensureScratch(n);
  // The first pass reads the input itself; later passes alternate between the two scratch pairs.
  const input: Pair = { m: means, w: weights };
  let from = input;
  let to: Pair = { m: scratch.m, w: scratch.w };
  const spare: Pair = { m: scratch.m2, w: scratch.w2 };
  while (bounds.length > 2) {
    const next: number[] = [];
    for (let r = 0; r + 1 < bounds.length; r += 2) {
      const lo = bounds[r] as number;
      const mid = bounds[r + 1] as number;
      const hi = r + 2 < bounds.length ? (bounds[r + 2] as number) : mid;
      mergeRuns({ m: from.m, w: from.w, outM: to.m, outW: to.w }, lo, mid, hi);
      next.push(lo);
    }
    next.push(n);
    bounds = next;
    const emptied = from === input ? spare : from;
    from = to;
    to = emptied;
  }
  return { means: from.m, weights: from.w, size: n };
}

interface Pair {
  m: Float64Array;
  w: Float64Array;
}

interface RunArrays {
  m: Float64Array;
  w: Float64Array;
  outM: Float64Array;
  outW: Float64Array;
}

function mergeRuns({ m, w, outM, outW }: RunArrays, lo: number, mid: number, hi: number): void {
  let i = lo;
  let j = mid;
  for (let o = lo; o < hi; o++) {
    const takeLeft = j >= hi || (i < mid && (m[i] as number) <= (m[j] as number));
    const from = takeLeft ? i++ : j++;
    outM[o] = m[from] as number;
    outW[o] = w[from] as number;
  }
}

/** Three-way merge of sorted inputs; ties go centroids, then points, then units (fixed order). */
export function mergeSorted(a: Centroids, units: Float64Array, b: Centroids): Centroids {
  const n = a.size + units.length + b.size;
  ensureScratch(n);
  const { means, weights } = scratch.merged;
  let i = 0;
  let j = 0;
  let k = 0;
  for (let o = 0; o < n; o++) {
    const ai = i < a.size ? (a.means[i] as number) : Number.POSITIVE_INFINITY;
    const bk = k < b.size ? (b.means[k] as number) : Number.POSITIVE_INFINITY;
    const uj = j < units.length ? (units[j] as number) : Number.POSITIVE_INFINITY;
    if (i < a.size && ai <= bk && ai <= uj) {
      means[o] = ai;
      weights[o] = a.weights[i++] as number;
    } else if (k < b.size && bk <= uj) {
      means[o] = bk;
      weights[o] = b.weights[k++] as number;
    } else {
      means[o] = uj;
      weights[o] = 1;
      j++;
    }
  }
  return { means, weights, size: n };
}
