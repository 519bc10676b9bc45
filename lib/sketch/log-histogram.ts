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
  edgesOf,
  emptyBuckets,
  fitBudget,
  mergeBuckets,
  mergeInto,
  positionOf,
  slopeOf,
  type Buckets,
} from './log-buckets.ts';
import { encodedBytes, finestIndex } from './log-histogram-layout.ts';
import { decodeHistogram, encodeHistogram } from './log-histogram-codec.ts';

/** Values buffered before they are sorted into buckets (the add path's batch). */
const BUFFER_VALUES = 4096;

export class LogHistogram implements LatencySketch {
  private buckets: Buckets = emptyBuckets();
  private ownsBuckets = false;
  private buffer = new Int32Array(0);
  private buffered = 0;
  private folded: Buckets | null = null;
  /** The buckets whose serialised size is `sizedBytes` (merge keeps it current; anything else misses). */
  private sized: Buckets | null = null;
  private sizedBytes = Number.NaN;
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
    this.fold();
    const target = this.owned();
    const known = this.sized === target ? this.sizedBytes : Number.NaN;
    const growth = { bytes: Number.NaN };
    const merged = mergeInto(target, other.view(), growth);
    // Merging many slices into a run's sketch mostly adds counts to buckets it has: its size then
    // follows from the counts that grew, without a pass over every bucket.
    const bytes = known + growth.bytes;
    this.buckets = Number.isFinite(bytes) ? fitBudget(merged, bytes) : fitBudget(merged);
    this.sized = this.buckets;
    this.sizedBytes = encodedSize(this.buckets, this.buckets === merged && Number.isFinite(bytes) ? bytes : undefined);
    this.folded = null;
    this.total += other.total;
    this.zeros += other.zeros;
    this.addToSum(other.sumHi, other.sumLo);
    if (other.minValue < this.minValue) this.minValue = other.minValue;
    if (other.maxValue > this.maxValue) this.maxValue = other.maxValue;
  }

  /** this.buckets may be shared with a decoded or folded sketch until written: copy before writing in place. */
  private owned(): Buckets {
    if (this.ownsBuckets) return this.buckets;
    const b = this.buckets;
    this.buckets = { index: b.index.slice(0, b.size), counts: b.counts.slice(0, b.size), size: b.size, level: b.level };
    this.ownsBuckets = true;
    return this.buckets;
  }

  private fold(): void {
    if (this.buffered === 0) return;
    this.buckets = this.view();
    this.ownsBuckets = true;
    this.buffered = 0;
    this.folded = null;
  }

  /** Buckets with the buffer folded in, computed once per batch of writes (reads never change state). */
  private view(): Buckets {
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

  /** Decodes and checks every field (log-histogram-checks.ts); throws ProtocolError on any lie. */
  static deserialize(bytes: Uint8Array): LogHistogram {
    const p = decodeHistogram(bytes);
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

function encodedSize(b: Buckets, known: number | undefined): number {
  return known ?? encodedBytes(b.index, b.counts, b.size);
}
