// LogHistogram: the latency sketch (docs/adr/0012). Counts per bucket of ln(value) on nested
// power-of-two grids, at the finest level whose serialised form fits 4 KB (uniform collapsing as in
// UDDSketch, Epicoco et al. 2020). A value's bucket bounds its relative error by the bucket width
// whatever the range or tail, and inside a bucket the quantile follows a linear density fitted to the
// neighbouring buckets, so smooth data is far more accurate than the width. Zeros (co-batched tokens'
// ITL) are an exact count beside the buckets; min and max are exact.
//
// Order-free: the state is the histogram of the multiset of values at the finest level that fits the
// budget (log-histogram-layout.ts), so any split into partials merged in any order gives the same
// buckets and bytes. Only the floating-point sum can differ, in its last bits (it is compensated).
import type { LatencySketch } from './types.ts';
import {
  bucketsOfSorted,
  cdfAt,
  coarsen,
  edgesOf,
  emptyBuckets,
  fitBudget,
  mergeBuckets,
  positionOf,
  slopeOf,
  type Buckets,
} from './log-buckets.ts';
import { finestIndex } from './log-histogram-layout.ts';
import { decodeHistogram, encodeHistogram, type HistogramParts } from './log-histogram-codec.ts';
import { decodeHistogramFast } from './log-histogram-fast.ts';
import { FOLD_MIN_PENDING, PendingBuckets } from './log-histogram-pending.ts';

/**
 * A sketch decoded and checked as deserialize() checks it, its buckets in reusable arrays (valid until
 * those are decoded into again): what mergeDecoded() takes, without a LogHistogram per slice.
 */
export interface DecodedSketch {
  readonly parts: HistogramParts;
}

/** Arrays to decode sketches into, reused from one sketch to the next (LogHistogram.decodeInto). */
export function sketchScratch(): Buckets {
  return { index: new Int32Array(256), counts: new Float64Array(256), size: 0, level: 0 };
}

/** Values buffered before they are sorted into buckets (the add path's batch). */
const BUFFER_VALUES = 4096;

export class LogHistogram implements LatencySketch {
  private buckets: Buckets = emptyBuckets();
  private ownsBuckets = false;
  private buffer = new Int32Array(0);
  private buffered = 0;
  private folded: Buckets | null = null;
  /** Buckets of merged sketches not yet folded into `buckets` (ADR 0027); created by the first merge. */
  private pending: PendingBuckets | null = null;
  private total = 0;
  private zeros = 0;
  private sumHi = 0;
  private sumLo = 0;
  /** Smallest and largest positive value (zeros are counted apart). */
  private minValue = Number.POSITIVE_INFINITY;
  private maxValue = Number.NEGATIVE_INFINITY;

  get count(): number {
    return this.total;
  }
  get min(): number {
    if (this.total === 0) return Number.NaN;
    return this.zeros > 0 ? 0 : this.minValue;
  }
  get max(): number {
    if (this.total === 0) return Number.NaN;
    return this.total === this.zeros ? 0 : this.maxValue;
  }
  get mean(): number {
    return this.total === 0 ? Number.NaN : (this.sumHi + this.sumLo) / this.total;
  }
  get sum(): number {
    return this.sumHi + this.sumLo;
  }
  /** Level of the bucket grid: buckets are 2^(level-10) ln units wide. */
  get level(): number {
    return this.view().level;
  }
  get bucketCount(): number {
    return this.view().size;
  }

  add(value: number, weight = 1): void {
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`latency values must be finite and >= 0, got ${value}`);
    }
    if (!Number.isSafeInteger(weight) || weight < 1) {
      throw new RangeError(`sketch weight must be a positive integer, got ${weight}`);
    }
    this.total += weight;
    if (value === 0) {
      this.zeros += weight;
      return;
    }
    this.addToSum(value * weight, 0);
    if (value < this.minValue) this.minValue = value;
    if (value > this.maxValue) this.maxValue = value;
    this.folded = null;
    if (weight !== 1) {
      this.fold();
      const level = this.buckets.level;
      const index = Int32Array.of(finestIndex(value) >> level);
      const one: Buckets = { index, counts: Float64Array.of(weight), size: 1, level };
      this.buckets = fitBudget(mergeBuckets(this.buckets, one));
      return;
    }
    if (this.buffered === this.buffer.length) {
      if (this.buffer.length === 0) this.buffer = new Int32Array(BUFFER_VALUES);
      else this.fold();
    }
    this.buffer[this.buffered++] = finestIndex(value);
  }

  /**
   * Double-double sum (TwoSum, then renormalised): hi + lo carries about 106 bits, so the rounded
   * sum, and the mean, do not depend on the order of adds and merges in practice.
   */
  private addToSum(hi: number, lo: number): void {
    const s = this.sumHi + hi;
    const bb = s - this.sumHi;
    const err = this.sumHi - (s - bb) + (hi - bb);
    const low = this.sumLo + lo + err;
    this.sumHi = s + low;
    this.sumLo = low - (this.sumHi - s);
  }

  merge(other: LatencySketch): void {
    if (!(other instanceof LogHistogram)) throw new TypeError('LogHistogram can only merge another LogHistogram');
    if (other.total === 0) return;
    const { total: count, zeros, sumHi, sumLo, minValue: min, maxValue: max } = other;
    this.mergeParts({ count, zeros, sumHi, sumLo, min, max, buckets: other.view() });
  }

  /**
   * Merges a sketch that decodeWireSketch decoded and checked, without making a LogHistogram of it:
   * its buckets are copied, so `d`'s arrays may be reused as soon as this returns.
   */
  mergeDecoded(d: DecodedSketch): void {
    const p = d.parts;
    if (p.count === 0) return;
    // Parts say 0 for the min and max of a sketch of zeros only; the merge must not take them.
    if (p.count === p.zeros) this.mergeParts({ ...p, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY });
    else this.mergeParts(p);
  }

  /**
   * The header now, in the order merges come (the sum's last bits depend on it); the buckets when
   * as many are pending as the sketch holds, or when it is read (log-histogram-pending.ts). `p.min`
   * and `p.max`: of the positive values (±Infinity when there are none).
   */
  private mergeParts(p: HistogramParts): void {
    const buckets = p.buckets;
    if (buckets.level > this.buckets.level) {
      // A coarser part: everything pending is at the old level, so fold it first, then coarsen.
      this.settle();
      this.buckets = coarsen(this.buckets, buckets.level);
      this.ownsBuckets = true;
    }
    const pending = (this.pending ??= new PendingBuckets());
    pending.add(buckets, this.buckets.level);
    this.folded = null;
    this.total += p.count;
    this.zeros += p.zeros;
    this.addToSum(p.sumHi, p.sumLo);
    if (p.min < this.minValue) this.minValue = p.min;
    if (p.max > this.maxValue) this.maxValue = p.max;
    if (pending.size >= Math.max(FOLD_MIN_PENDING, this.buckets.size)) this.settle();
  }

  /** Folds pending merges into the buckets (the state's value does not change, only its form). */
  private settle(): void {
    const pending = this.pending;
    if (pending === null || pending.size === 0) return;
    this.buckets = pending.foldInto(this.buckets, this.ownsBuckets);
    this.ownsBuckets = true;
    this.folded = null;
  }

  private fold(): void {
    this.settle();
    if (this.buffered === 0) return;
    this.buckets = this.view();
    this.ownsBuckets = true;
    this.buffered = 0;
    this.folded = null;
  }

  /** Buckets with the buffer folded in, computed once per batch of writes (reads never change the value). */
  private view(): Buckets {
    this.settle();
    // Read: what is pending is folded in; the buffer goes too (a run that is read but idle keeps none).
    this.pending = null;
    if (this.buffered === 0) return this.buckets;
    if (this.folded === null) {
      const sorted = this.buffer.slice(0, this.buffered).sort();
      this.folded = fitBudget(mergeBuckets(this.buckets, bucketsOfSorted(sorted, this.buckets.level)));
    }
    return this.folded;
  }

  /** Value at quantile q (nearest-rank convention, interpolated inside the bucket); NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0 || !(q >= 0 && q <= 1)) return Number.NaN;
    const positive = this.total - this.zeros;
    const rank = q * this.total;
    if (this.zeros > 0 && (positive === 0 || rank <= this.zeros)) return 0;
    if (q === 0) return this.minValue;
    if (q === 1) return this.maxValue;
    const b = this.view();
    const r = rank - this.zeros;
    let before = 0;
    let k = 0;
    while (k < b.size - 1 && before + (b.counts[k] as number) < r) before += b.counts[k++] as number;
    const c = b.counts[k] as number;
    // The i-th of c values in a bucket sits at (i - 0.5)/c of its weight.
    const u = Math.max(0, Math.min(1, (r - before - 0.5) / c));
    const { lo, hi } = edgesOf(b, k, Math.log(this.minValue), Math.log(this.maxValue));
    const t = lo + positionOf(u, slopeOf(b, k)) * (hi - lo);
    return Math.min(this.maxValue, Math.max(this.minValue, Math.exp(t)));
  }

  /** Fraction of values <= value, interpolated inside its bucket; NaN when empty. */
  rank(value: number): number {
    if (this.total === 0 || Number.isNaN(value)) return Number.NaN;
    if (value < 0) return 0;
    if (value === 0 || value < this.minValue) return (value === 0 ? this.zeros / 2 : this.zeros) / this.total;
    if (value >= this.maxValue) return 1;
    const b = this.view();
    const t = Math.log(value);
    const j = finestIndex(value) >> b.level;
    let before = this.zeros;
    let k = 0;
    while (k < b.size - 1 && (b.index[k] as number) < j) before += b.counts[k++] as number;
    if ((b.index[k] as number) !== j) return before / this.total;
    const { lo, hi } = edgesOf(b, k, Math.log(this.minValue), Math.log(this.maxValue));
    const s = hi > lo ? Math.max(0, Math.min(1, (t - lo) / (hi - lo))) : 1;
    return (before + cdfAt(s, slopeOf(b, k)) * (b.counts[k] as number)) / this.total;
  }

  /** The wire form; also the checkpoint form: the state is a function of the values alone. */
  serialize(): Uint8Array {
    const positive = this.total - this.zeros;
    return encodeHistogram({
      count: this.total,
      zeros: this.zeros,
      sumHi: this.sumHi,
      sumLo: this.sumLo,
      min: positive === 0 ? 0 : this.minValue,
      max: positive === 0 ? 0 : this.maxValue,
      buckets: this.view(),
    });
  }

  /** Decodes and checks like deserialize(), into `scratch`'s arrays (see DecodedSketch). */
  static decodeInto(bytes: Uint8Array, scratch: Buckets): DecodedSketch {
    return { parts: decodeHistogramFast(bytes, scratch) ?? decodeHistogram(bytes) };
  }

  /**
   * Decodes and checks every field (log-histogram-checks.ts); throws ProtocolError on any lie. The
   * one-pass decoder accepts what the reference accepts; what it refuses, the reference explains.
   */
  static deserialize(bytes: Uint8Array): LogHistogram {
    const p = decodeHistogramFast(bytes) ?? decodeHistogram(bytes);
    const h = new LogHistogram();
    h.buckets = p.buckets;
    h.total = p.count;
    h.zeros = p.zeros;
    h.sumHi = p.sumHi;
    h.sumLo = p.sumLo;
    if (p.count > p.zeros) {
      h.minValue = p.min;
      h.maxValue = p.max;
    }
    return h;
  }
}
