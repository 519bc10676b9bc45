// Pure functions over sorted centroid arrays: the compression pass and the quantile/rank
// interpolation of Dunning's MergingDigest (the Java reference implementation, weight-limit mode).
import type { ScaleFunction } from './scale.ts';

/** Sorted centroids: means ascending, weights > 0, `size` entries in use. */
export interface Centroids {
  means: Float64Array;
  weights: Float64Array;
  size: number;
}

/**
 * One left-to-right pass that folds adjacent sorted points into centroids while each stays within
 * the scale function's weight limit. The first and last points stay singletons so min/max-adjacent
 * interpolation remains exact.
 */
export function compress(
  input: Centroids,
  scale: ScaleFunction,
  compression: number,
  into?: { means: Float64Array; weights: Float64Array },
): Centroids {
  const n = input.size;
  let totalWeight = 0;
  for (let i = 0; i < n; i++) totalWeight += input.weights[i] as number;
  const means = into !== undefined && into.means.length >= n ? into.means : new Float64Array(Math.max(n, 1));
  const weights = into !== undefined && into.weights.length >= n ? into.weights : new Float64Array(Math.max(n, 1));
  if (n === 0) return { means, weights, size: 0 };
  const maxFraction = scale.limit(compression, totalWeight);
  let last = 0;
  means[0] = input.means[0] as number;
  weights[0] = input.weights[0] as number;
  let weightSoFar = 0;
  // The bound at the current centroid's left edge changes only when a new centroid starts.
  let leftLimit = maxFraction(0);
  for (let i = 1; i < n; i++) {
    const w = input.weights[i] as number;
    const x = input.means[i] as number;
    const lastWeight = weights[last] as number;
    const proposed = lastWeight + w;
    const limit = totalWeight * Math.min(leftLimit, maxFraction((weightSoFar + proposed) / totalWeight));
    if (proposed <= limit && i !== 1 && i !== n - 1) {
      weights[last] = proposed;
      means[last] = (means[last] as number) + ((x - (means[last] as number)) * w) / proposed;
    } else {
      weightSoFar += lastWeight;
      leftLimit = maxFraction(weightSoFar / totalWeight);
      last++;
      means[last] = x;
      weights[last] = w;
    }
  }
  return { means, weights, size: last + 1 };
}

function weightedAverage(x1: number, w1: number, x2: number, w2: number): number {
  const lo = Math.min(x1, x2);
  const hi = Math.max(x1, x2);
  const x = (x1 * w1 + x2 * w2) / (w1 + w2);
  return Math.max(lo, Math.min(hi, x));
}

/** Below the first or above the last centroid's centre: interpolate towards the exact min/max. */
function tailQuantile(c: Centroids, total: number, min: number, max: number, index: number): number | undefined {
  if (index < 1) return min;
  if (index > total - 1) return max;
  const w0 = c.weights[0] as number;
  if (w0 > 1 && index < w0 / 2) return min + ((index - 1) / (w0 / 2 - 1)) * ((c.means[0] as number) - min);
  const wl = c.weights[c.size - 1] as number;
  if (wl > 1 && total - index <= wl / 2)
    return max - ((total - index - 1) / (wl / 2 - 1)) * (max - (c.means[c.size - 1] as number));
  return undefined;
}

/** Value at quantile q, interpolating between centroid centres; singletons are exact points. */
export function quantileOf(c: Centroids, total: number, min: number, max: number, q: number): number {
  const n = c.size;
  if (n === 0 || !(q >= 0 && q <= 1)) return Number.NaN;
  if (n === 1) return c.means[0] as number;
  const index = q * total;
  const tail = tailQuantile(c, total, min, max, index);
  if (tail !== undefined) return tail;
  const wl = c.weights[n - 1] as number;
  const ml = c.means[n - 1] as number;
  let weightSoFar = (c.weights[0] as number) / 2;
  for (let i = 0; i < n - 1; i++) {
    const wi = c.weights[i] as number;
    const wj = c.weights[i + 1] as number;
    const dw = (wi + wj) / 2;
    if (weightSoFar + dw > index) {
      let leftUnit = 0;
      if (wi === 1) {
        if (index - weightSoFar < 0.5) return c.means[i] as number;
        leftUnit = 0.5;
      }
      let rightUnit = 0;
      if (wj === 1) {
        if (weightSoFar + dw - index <= 0.5) return c.means[i + 1] as number;
        rightUnit = 0.5;
      }
      const z1 = index - weightSoFar - leftUnit;
      const z2 = weightSoFar + dw - index - rightUnit;
      return weightedAverage(c.means[i] as number, z2, c.means[i + 1] as number, z1);
    }
    weightSoFar += dw;
  }
  const z1 = index - total - wl / 2;
  const z2 = wl / 2 - z1;
  return weightedAverage(ml, z1, max, z2);
}

function tailRank(c: Centroids, total: number, min: number, max: number, x: number): number | undefined {
  if (x < min) return 0;
  if (x > max) return 1;
  const n = c.size;
  const m0 = c.means[0] as number;
  const w0 = c.weights[0] as number;
  if (x < m0) {
    if (m0 - min <= 0) return 0;
    if (x === min) return 0.5 / total;
    return (1 + ((x - min) / (m0 - min)) * (w0 / 2 - 1)) / total;
  }
  const ml = c.means[n - 1] as number;
  const wl = c.weights[n - 1] as number;
  if (x > ml) {
    if (max - ml <= 0) return 1;
    if (x === max) return 1 - 0.5 / total;
    return 1 - (1 + ((max - x) / (max - ml)) * (wl / 2 - 1)) / total;
  }
  return undefined;
}

/** Weight from centroid i's left edge up to x, for x between centroids i and i+1; singletons are points. */
function between(c: Centroids, i: number, x: number): number {
  const mi = c.means[i] as number;
  const mj = c.means[i + 1] as number;
  const wi = c.weights[i] as number;
  const wj = c.weights[i + 1] as number;
  const leftExcluded = wi === 1 ? 0.5 : 0;
  const rightExcluded = wj === 1 ? 0.5 : 0;
  const dw = (wi + wj) / 2;
  return wi / 2 + leftExcluded + (dw - leftExcluded - rightExcluded) * ((x - mi) / (mj - mi));
}

/** Fraction of the weight at or below x (values equal to a centroid count half its weight). */
export function rankOf(c: Centroids, total: number, min: number, max: number, x: number): number {
  const n = c.size;
  if (n === 0 || Number.isNaN(x)) return Number.NaN;
  if (n === 1) return x < min ? 0 : x > max ? 1 : max - min <= 0 ? 0.5 : (x - min) / (max - min);
  const tail = tailRank(c, total, min, max, x);
  if (tail !== undefined) return tail;
  let weightSoFar = 0;
  for (let i = 0; i < n - 1; i++) {
    const mi = c.means[i] as number;
    const wi = c.weights[i] as number;
    if (mi === x) {
      let dw = 0;
      for (let j = i; j < n && c.means[j] === x; j++) dw += c.weights[j] as number;
      return (weightSoFar + dw / 2) / total;
    }
    const mj = c.means[i + 1] as number;
    if (mi <= x && x < mj) return (weightSoFar + between(c, i, x)) / total;
    weightSoFar += wi;
  }
  return 1 - 0.5 / total;
}
