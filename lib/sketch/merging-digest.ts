// MergingDigest (Dunning & Ertl): values are buffered, sorted and folded into centroids in one
// linear pass whose centroid sizes follow a k-scale function. Deterministic: every operation is a
// pure function of the adds and merges so far, and reads (quantile, rank, serialize) never change
// the state, so when they happen cannot change later results.
import type { LatencySketch } from './types.ts';
import { compress, quantileOf, rankOf, type Centroids } from './centroids.ts';
import { scaleByName, type ScaleName } from './scale.ts';
import { ProtocolError } from '../errors.ts';
import { decodeDigest, encodeDigest, type DigestParts } from './merging-digest-codec.ts';

export interface MergingDigestOptions {
  /** δ: more = more centroids and accuracy. Integer in [10, 10000]. */
  compression?: number;
  scale?: ScaleName;
}

const EMPTY = new Float64Array(0);

export const DEFAULT_COMPRESSION = 300;
export const DEFAULT_SCALE: ScaleName = 'k1k2';

export class MergingDigest implements LatencySketch {
  readonly compression: number;
  readonly scale: ScaleName;
  private centroids: Centroids = { means: new Float64Array(0), weights: new Float64Array(0), size: 0 };
  /** Unit-weight adds: sorted natively (no comparator), the fast path for raw latencies. */
  private units: Float64Array;
  private unitCount = 0;
  /** Weighted points and centroids of merged digests. */
  private pointMeans: Float64Array;
  private pointWeights: Float64Array;
  private pointCount = 0;
  private totalWeight = 0;
  private sum = 0;
  private minValue = Number.POSITIVE_INFINITY;
  private maxValue = Number.NEGATIVE_INFINITY;
  private flushedView: Centroids | null = null;

  constructor(options: MergingDigestOptions = {}) {
    const compression = options.compression ?? DEFAULT_COMPRESSION;
    if (!Number.isInteger(compression) || compression < 10 || compression > 10000) {
      throw new RangeError(`compression must be an integer in [10, 10000], got ${compression}`);
    }
    this.compression = compression;
    this.scale = options.scale ?? DEFAULT_SCALE;
    // Buffers are allocated on the first write: decoded digests that are only merged from stay small.
    this.units = EMPTY;
    this.pointMeans = EMPTY;
    this.pointWeights = EMPTY;
  }

  private get unitCapacity(): number {
    return this.compression * 20;
  }
  private get pointCapacity(): number {
    return this.compression * 4;
  }

  private ensureUnits(): void {
    if (this.units.length === 0) this.units = new Float64Array(this.unitCapacity);
  }

  private ensurePoints(): void {
    if (this.pointMeans.length === 0) {
      this.pointMeans = new Float64Array(this.pointCapacity);
      this.pointWeights = new Float64Array(this.pointCapacity);
    }
  }

  get count(): number {
    return this.totalWeight;
  }
  get min(): number {
    return this.totalWeight === 0 ? Number.NaN : this.minValue;
  }
  get max(): number {
    return this.totalWeight === 0 ? Number.NaN : this.maxValue;
  }
  get mean(): number {
    return this.totalWeight === 0 ? Number.NaN : this.sum / this.totalWeight;
  }
  /** Centroids after folding in everything buffered. */
  get centroidCount(): number {
    return this.view().size;
  }

  add(value: number, weight = 1): void {
    if (!Number.isFinite(value)) throw new RangeError(`sketch value must be finite, got ${value}`);
    if (!(weight > 0) || !Number.isFinite(weight)) throw new RangeError(`sketch weight must be > 0, got ${weight}`);
    this.flushedView = null;
    if (weight === 1) {
      this.ensureUnits();
      if (this.unitCount === this.units.length) this.flush();
      this.units[this.unitCount++] = value;
    } else {
      this.ensurePoints();
      if (this.pointCount === this.pointMeans.length) this.flush();
      this.pointMeans[this.pointCount] = value;
      this.pointWeights[this.pointCount++] = weight;
    }
    this.totalWeight += weight;
    this.sum += value * weight;
    if (value < this.minValue) this.minValue = value;
    if (value > this.maxValue) this.maxValue = value;
  }

  merge(other: LatencySketch): void {
    if (!(other instanceof MergingDigest)) throw new TypeError('MergingDigest can only merge another MergingDigest');
    if (other.totalWeight === 0) return;
    const src = other.view();
    this.flushedView = null;
    this.ensurePoints();
    let from = 0;
    while (from < src.size) {
      if (this.pointCount === this.pointMeans.length) this.flush();
      const take = Math.min(src.size - from, this.pointMeans.length - this.pointCount);
      this.pointMeans.set(src.means.subarray(from, from + take), this.pointCount);
      this.pointWeights.set(src.weights.subarray(from, from + take), this.pointCount);
      this.pointCount += take;
      from += take;
    }
    this.totalWeight += other.totalWeight;
    this.sum += other.sum;
    if (other.minValue < this.minValue) this.minValue = other.minValue;
    if (other.maxValue > this.maxValue) this.maxValue = other.maxValue;
  }

  quantile(q: number): number {
    if (this.totalWeight === 0) return Number.NaN;
    return quantileOf(this.view(), this.totalWeight, this.minValue, this.maxValue, q);
  }

  rank(value: number): number {
    if (this.totalWeight === 0) return Number.NaN;
    return rankOf(this.view(), this.totalWeight, this.minValue, this.maxValue, value);
  }

  /** Compact wire form: the compressed centroids (buffers folded in on a copy). */
  serialize(): Uint8Array {
    return encodeDigest(this.parts(this.view(), false));
  }

  /** Lossless form including unfolded buffers, for checkpoints: restoring it continues identically. */
  serializeState(): Uint8Array {
    return encodeDigest(this.parts(this.centroids, true));
  }

  static deserialize(bytes: Uint8Array): MergingDigest {
    const p = decodeDigest(bytes);
    const d = new MergingDigest({ compression: p.compression, scale: p.scale });
    d.centroids = { means: p.means, weights: p.weights, size: p.means.length };
    d.totalWeight = p.count;
    d.sum = p.sum;
    d.minValue = p.count === 0 ? Number.POSITIVE_INFINITY : p.min;
    d.maxValue = p.count === 0 ? Number.NEGATIVE_INFINITY : p.max;
    if (p.units.length > d.unitCapacity || p.pointMeans.length > d.pointCapacity) {
      throw new ProtocolError('merging digest: buffered values exceed the buffer capacity');
    }
    if (p.units.length > 0 || p.pointMeans.length > 0) {
      d.ensureUnits();
      d.ensurePoints();
      d.units.set(p.units);
      d.pointMeans.set(p.pointMeans);
      d.pointWeights.set(p.pointWeights);
    }
    d.unitCount = p.units.length;
    d.pointCount = p.pointMeans.length;
    return d;
  }

  private parts(c: Centroids, withBuffers: boolean): DigestParts {
    return {
      compression: this.compression,
      scale: this.scale,
      count: this.totalWeight,
      sum: this.sum,
      min: this.totalWeight === 0 ? 0 : this.minValue,
      max: this.totalWeight === 0 ? 0 : this.maxValue,
      means: c.means.subarray(0, c.size),
      weights: c.weights.subarray(0, c.size),
      units: withBuffers ? this.units.subarray(0, this.unitCount) : new Float64Array(0),
      pointMeans: withBuffers ? this.pointMeans.subarray(0, this.pointCount) : new Float64Array(0),
      pointWeights: withBuffers ? this.pointWeights.subarray(0, this.pointCount) : new Float64Array(0),
    };
  }

  /** The centroids as they would be after a flush, computed on a copy and cached until the next write. */
  private view(): Centroids {
    if (this.unitCount === 0 && this.pointCount === 0) return this.centroids;
    this.flushedView ??= this.folded();
    return this.flushedView;
  }

  /**
   * Folds the buffers into the centroids now. Callers that persist a digest after every update
   * (the aggregator's checkpoints) compact so the lossless state equals the compact wire form.
   */
  compact(): void {
    if (this.unitCount > 0 || this.pointCount > 0) this.flush();
  }

  private flush(): void {
    this.centroids = this.folded();
    this.unitCount = 0;
    this.pointCount = 0;
    this.flushedView = null;
  }

  private folded(): Centroids {
    const units = this.units.slice(0, this.unitCount).sort();
    const points = sortPoints(this.pointMeans, this.pointWeights, this.pointCount);
    const merged = mergeSorted(this.centroids, units, points);
    const out = compress(merged, scaleByName(this.scale), this.compression, scratch.out);
    return { means: out.means.slice(0, out.size), weights: out.weights.slice(0, out.size), size: out.size };
  }
}

/**
 * Natural merge sort (below): merged digests arrive as already-sorted runs of centroids, so finding
 * the runs and merging neighbours pairwise costs O(n log runs). Ties take the left run first, so
 * the result is a pure function of the input order.
 */
/** Shared scratch for flushes (JavaScript is single-threaded and flushes do not nest). */
const scratch = {
  m: new Float64Array(0), w: new Float64Array(0), m2: new Float64Array(0), w2: new Float64Array(0),
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

function sortPoints(means: Float64Array, weights: Float64Array, n: number): Centroids {
  ensureScratch(n);
  let m = scratch.m;
  let w = scratch.w;
  m.set(means.subarray(0, n));
  w.set(weights.subarray(0, n));
  let bounds: number[] = [0];
  for (let i = 1; i < n; i++) if ((m[i] as number) < (m[i - 1] as number)) bounds.push(i);
  bounds.push(n);
  let m2 = scratch.m2;
  let w2 = scratch.w2;
  while (bounds.length > 2) {
    const next: number[] = [];
    for (let r = 0; r + 1 < bounds.length; r += 2) {
      const lo = bounds[r] as number;
      const mid = bounds[r + 1] as number;
      const hi = r + 2 < bounds.length ? (bounds[r + 2] as number) : mid;
      mergeRuns({ m, w, outM: m2, outW: w2 }, lo, mid, hi);
      next.push(lo);
    }
    next.push(n);
    bounds = next;
    [m, m2] = [m2, m];
    [w, w2] = [w2, w];
  }
  return { means: m, weights: w, size: n };
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
function mergeSorted(a: Centroids, units: Float64Array, b: Centroids): Centroids {
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
