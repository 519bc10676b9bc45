// Merges into a LogHistogram, gathered and folded in once per batch (ADR 0027). A run's sketch
// takes one slice per agent per second; merging each at once walked all of the run's buckets
// (~2,000 for ITL) to add a slice's few hundred. Instead a merge appends the slice's buckets here,
// and the sketch folds them in when they are as many as its own buckets (or when it is read): one
// pass over a dense window of counts per fold, so a merge costs about its own bucket count.
//
// The result is the same as merging one by one: the sketch of a multiset is its histogram at the
// finest level, no finer than any part's, at which it fits the byte budget (log-histogram.ts), so
// it does not depend on how the parts were grouped; counts are whole numbers, added exactly.
import { fitBudget, mergeInto, type Buckets } from './log-buckets.ts';

/**
 * Fold once this many buckets are pending, or as many as the sketch holds when that is more. A fold
 * sweeps the window of the sketch's buckets, so fewer, larger folds cost less per merged bucket
 * (4,096 rather than 1,024: 13% less consumer CPU per slice, bench/bus-consumer.ts, ADR 0036); a read
 * of the sketch folds and releases the buffer (LogHistogram.view), so idle runs keep none.
 */
export const FOLD_MIN_PENDING = 4096;
/** A fold sweeps a dense window of counts only when it is at most this many times the buckets it adds. */
const DENSE_SPAN_FACTOR = 8;
/** ... and at most this wide (512 KiB of counts); wider data is merged part by part, as before. */
const DENSE_SPAN_MAX = 1 << 16;

/** Counts by bucket offset, shared by every fold (JavaScript is single-threaded); all zero between folds. */
let dense = new Float64Array(0);

export class PendingBuckets {
  index = new Int32Array(0);
  counts = new Float64Array(0);
  size = 0;
  /** The level every pending bucket is at: the sketch's own level when they were added. */
  level = 0;
  /** Smallest and largest pending bucket index. */
  private lo = 0;
  private hi = 0;
  /** Where each added part starts (each part is ascending): the parts of a fold too wide for the window. */
  private readonly starts: number[] = [];

  /** Adds the buckets of one part at `level` (>= y.level): they are coarsened on the way in. */
  add(y: Buckets, level: number): void {
    if (y.size === 0) return;
    if (this.size === 0) this.level = level;
    this.ensure(this.size + y.size);
    const shift = level - y.level;
    const start = this.size;
    const index = this.index;
    const counts = this.counts;
    let n = start;
    if (shift === 0) {
      // At the part's own level its indices already ascend strictly (decoded or a sketch's): a copy.
      const yIndex = y.index;
      const yCounts = y.counts;
      for (let k = 0; k < y.size; k++) {
        index[n] = yIndex[k] as number;
        counts[n++] = yCounts[k] as number;
      }
    } else {
      n = this.addCoarsened(y, shift, start);
    }
    const first = index[start] as number;
    const last = index[n - 1] as number;
    if (start === 0 || first < this.lo) this.lo = first;
    if (start === 0 || last > this.hi) this.hi = last;
    this.starts.push(start);
    this.size = n;
  }

  /** y's buckets coarsened by `shift` levels, written from `start` (neighbours that meet are added); the new size. */
  private addCoarsened(y: Buckets, shift: number, start: number): number {
    const index = this.index;
    const counts = this.counts;
    let n = start;
    for (let k = 0; k < y.size; k++) {
      const j = (y.index[k] as number) >> shift;
      if (n > start && index[n - 1] === j) counts[n - 1] = (counts[n - 1] as number) + (y.counts[k] as number);
      else {
        index[n] = j;
        counts[n++] = y.counts[k] as number;
      }
    }
    return n;
  }

  private ensure(capacity: number): void {
    if (this.index.length >= capacity) return;
    const cap = Math.max(capacity, 2 * this.index.length, 256);
    const index = new Int32Array(cap);
    const counts = new Float64Array(cap);
    index.set(this.index.subarray(0, this.size));
    counts.set(this.counts.subarray(0, this.size));
    this.index = index;
    this.counts = counts;
  }

  /**
   * The union of `base` (at this.level, sorted) and the pending buckets, fitted to the budget; empties
   * this. `owned`: base's arrays may be written over (the union is then written into them when they fit).
   */
  foldInto(base: Buckets, owned: boolean): Buckets {
    const lo = base.size > 0 ? Math.min(this.lo, base.index[0] as number) : this.lo;
    const hi = base.size > 0 ? Math.max(this.hi, base.index[base.size - 1] as number) : this.hi;
    const span = hi - lo + 1;
    const out =
      span <= DENSE_SPAN_MAX && span <= DENSE_SPAN_FACTOR * (base.size + this.size)
        ? this.foldDense(base, owned, lo, span)
        : this.foldByParts(base, owned);
    this.size = 0;
    this.starts.length = 0;
    // A burst of large parts must not keep its buffer for the life of the run.
    if (this.index.length > 4 * FOLD_MIN_PENDING) {
      this.index = new Int32Array(0);
      this.counts = new Float64Array(0);
    }
    return out;
  }

  private foldDense(base: Buckets, owned: boolean, lo: number, span: number): Buckets {
    if (dense.length < span) dense = new Float64Array(Math.max(span, 2 * dense.length));
    const d = dense;
    for (let k = 0; k < base.size; k++) {
      const s = (base.index[k] as number) - lo;
      d[s] = (d[s] as number) + (base.counts[k] as number);
    }
    for (let k = 0; k < this.size; k++) {
      const s = (this.index[k] as number) - lo;
      d[s] = (d[s] as number) + (this.counts[k] as number);
    }
    const most = base.size + this.size;
    let out: Buckets;
    if (owned && base.index.length >= most) out = base;
    else {
      const cap = Math.max(most, 2 * base.index.length);
      out = { index: new Int32Array(cap), counts: new Float64Array(cap), size: 0, level: this.level };
    }
    const { index, counts } = out;
    let n = 0;
    for (let s = 0; s < span; s++) {
      const c = d[s] as number;
      if (c === 0) continue;
      index[n] = s + lo;
      counts[n++] = c;
      d[s] = 0;
    }
    out.size = n;
    out.level = this.level;
    return fitBudget(out);
  }

  /** Part by part, as merges were before (data spread too wide for a dense window). */
  private foldByParts(base: Buckets, owned: boolean): Buckets {
    // mergeInto writes into its first argument: a shared base is copied once.
    let out = owned
      ? base
      : { ...base, index: base.index.slice(0, base.size), counts: base.counts.slice(0, base.size) };
    for (const [i, start] of this.starts.entries()) {
      const end = this.starts[i + 1] ?? this.size;
      const part: Buckets = {
        index: this.index.subarray(start, end),
        counts: this.counts.subarray(start, end),
        size: end - start,
        level: this.level,
      };
      out = fitBudget(mergeInto(out, part));
    }
    return out;
  }
}
