// Every header field of a decoded LogHistogram checked against its buckets, so a lying or corrupt
// sketch is refused instead of silently moving quantiles (issue #17 item 3):
// - count, zeros and bucket counts are non-negative safe integers and count = zeros + Σ counts;
// - min, max and the sum are finite and non-negative (NaN, Infinity, negatives refused);
// - min lies in the first bucket and max in the last (bit-exact: the same bucket rule as add);
// - the sum lies between Σ count·(bucket's lower edge) and Σ count·(upper edge), the extreme
//   buckets bounded by min and max: a value's bucket bounds it;
// - sizes: at most 4,096 bytes (the codec), and the level is no coarser than the budget requires
//   (a sender cannot blur the run's quantiles by sending a needlessly coarse sketch).
import { ProtocolError } from '../errors.ts';
import type { HistogramParts } from './log-histogram-codec.ts';
import { BYTE_BUDGET, bucketOf, finerBytesBound, lowerEdge } from './log-histogram-layout.ts';

/** Relative slack on the sum bounds: the sum is accumulated in floating point, edges pass through exp. */
const SUM_TOLERANCE = 1e-9;

function fail(message: string): never {
  throw new ProtocolError(`latency sketch: ${message}`);
}

function checkNumber(name: string, x: number, integer: boolean): void {
  if (!Number.isFinite(x)) fail(`${name} ${x} is not a finite number`);
  if (x < 0) fail(`${name} ${x} is negative`);
  if (integer && !Number.isSafeInteger(x)) fail(`${name} ${x} is not a whole number`);
}

function checkSum(p: HistogramParts): void {
  const b = p.buckets;
  const sum = p.sumHi + p.sumLo;
  if (Math.abs(p.sumLo) > Math.abs(p.sumHi) * 1e-12 + Number.MIN_VALUE) {
    fail(`sum remainder ${p.sumLo} is not a remainder of ${p.sumHi}`);
  }
  if (b.size === 0) {
    if (sum !== 0 || p.min !== 0 || p.max !== 0) {
      fail(`sum/min/max are ${sum}/${p.min}/${p.max} for a sketch of zeros only`);
    }
    return;
  }
  let low = 0;
  let high = 0;
  // Adjacent buckets share an edge: bucket j's upper edge is bucket j + 1's lower one.
  let upperOf = Number.NaN;
  let upper = 0;
  for (let k = 0; k < b.size; k++) {
    const c = b.counts[k] as number;
    const j = b.index[k] as number;
    const lower = j === upperOf ? upper : lowerEdge(j, b.level);
    upperOf = j + 1;
    upper = lowerEdge(upperOf, b.level);
    low += c * (k === 0 ? p.min : lower);
    high += c * (k === b.size - 1 ? p.max : upper);
  }
  if (sum < low * (1 - SUM_TOLERANCE) || sum > high * (1 + SUM_TOLERANCE)) {
    fail(`sum ${sum} is outside [${low}, ${high}], the range the buckets allow`);
  }
}

/** Throws ProtocolError naming the first field that disagrees with the buckets. */
export function checkHistogram(p: HistogramParts): void {
  const b = p.buckets;
  checkNumber('count', p.count, true);
  checkNumber('zero count', p.zeros, true);
  checkNumber('sum', p.sumHi, false);
  if (!Number.isFinite(p.sumLo)) fail(`sum remainder ${p.sumLo} is not finite`);
  checkNumber('min', p.min, false);
  checkNumber('max', p.max, false);
  let inBuckets = 0;
  for (let k = 0; k < b.size; k++) {
    const c = b.counts[k] as number;
    if (!Number.isSafeInteger(c) || c < 1) fail(`bucket ${k} has count ${c}, not a whole number >= 1`);
    inBuckets += c;
  }
  if (inBuckets + p.zeros !== p.count) {
    fail(`count ${p.count} is not the ${inBuckets + p.zeros} the buckets and zeros hold`);
  }
  if (b.size > 0) {
    if (!(p.min > 0)) fail(`min ${p.min} of the non-zero values is not positive`);
    if (!(p.min <= p.max)) fail(`min ${p.min} is above max ${p.max}`);
    if (bucketOf(p.min, b.level) !== b.index[0]) fail(`min ${p.min} is not in the first bucket`);
    if (bucketOf(p.max, b.level) !== b.index[b.size - 1]) fail(`max ${p.max} is not in the last bucket`);
    if (b.level > 0 && finerBytesBound(b.index, b.counts, b.size) <= BYTE_BUDGET) {
      fail(`level ${b.level} is coarser than the ${BYTE_BUDGET}-byte budget requires (the protocol fixes it)`);
    }
  }
  checkSum(p);
}
