// MergingDigest (Dunning & Ertl): values are buffered, sorted and folded into centroids in one
// linear pass whose centroid sizes follow a k-scale function. Deterministic: every operation is a
// pure function of the adds and merges so far, and reads (quantile, rank, serialize) never change
// the state, so when they happen cannot change later results.
import type { LatencySketch } from './types.ts';
import { compress, quantileOf, rankOf, type Centroids } from './centroids.ts';
import { scaleByName, type ScaleName } from './scale.ts';
import { ProtocolError } from '../errors.ts';
import { mergeSorted, scratch, sortPoints } from './fold.ts';
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
