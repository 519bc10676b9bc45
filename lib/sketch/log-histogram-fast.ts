// The aggregator's hot path (ADR 0027): decoding a LogHistogram and every check of
// log-histogram-checks.ts in one pass over the bytes, without a reader object, a method call per
// varint or an exp per bucket edge. It accepts exactly what decodeHistogram accepts, and returns the
// same parts; on anything it would refuse it returns null, and the caller runs decodeHistogram, whose
// error names the first lie. The two are compared on valid, corrupt and hostile sketches
// (tests/unit/sketch/log-histogram-fast.test.ts), and the reference stays the bench's baseline.
import type { Buckets } from './log-buckets.ts';
import type { HistogramParts } from './log-histogram-codec.ts';
import {
  BYTE_BUDGET,
  EDGE_OFFSET,
  edgeTable,
  FINEST_BITS,
  finerBytesBound,
  FIXED_HEADER_BYTES,
  LOG_HISTOGRAM_MAGIC,
  LOG_HISTOGRAM_VERSION,
  MAX_LEVEL,
} from './log-histogram-layout.ts';

const SCALE = 2 ** FINEST_BITS;
/** Relative slack on the sum bounds: the same as log-histogram-checks.ts. */
const SUM_TOLERANCE = 1e-9;
const INT32_MAX = 0x7fffffff;

/**
 * Where decoding is (-1: the bytes are refused) and what the counts pass sums on the way: the buckets'
 * total count and checkSum's bounds on the sum (low, high). One object, reused.
 */
const cursor = { at: 0, inBuckets: 0, low: 0, high: 0 };

/** LEB128 as ByteReader.varint reads it (at most 8 bytes, arithmetic); cursor.at = -1 when it cannot. */
function readVarint(buf: Uint8Array): number {
  let at = cursor.at;
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 8 && at < buf.length; i++) {
    const b = buf[at++] as number;
    result += (b & 0x7f) * scale;
    if (b < 0x80) {
      cursor.at = at;
      return result;
    }
    scale *= 0x80;
  }
  cursor.at = -1;
  return 0;
}

/**
 * Decoded and checked parts, or null when decodeHistogram would throw (it then says why). With
 * `into`, the buckets are written into its arrays (grown when too small) and the parts share them:
 * valid until `into` is used again. Without, they get arrays of their own.
 */
export function decodeHistogramFast(bytes: Uint8Array, into?: Buckets): HistogramParts | null {
  const parts = readHeader(bytes);
  if (parts === null) return null;
  const n = readVarint(bytes);
  if (cursor.at < 0 || n * 2 > bytes.length - cursor.at) return null;
  // Off-heap typed arrays cost more to allocate than a small sketch costs to decode: reuse `into`'s.
  let buckets: Buckets;
  if (into === undefined) buckets = { index: new Int32Array(n), counts: new Float64Array(n), size: n, level: 0 };
  else {
    if (into.index.length < n) {
      into.index = new Int32Array(Math.max(n, 2 * into.index.length));
      into.counts = new Float64Array(into.index.length);
    }
    buckets = into;
  }
  buckets.size = n;
  buckets.level = bytes[3] as number;
  parts.buckets = buckets;
  if (!readIndices(bytes, buckets) || !readCounts(bytes, parts)) return null;
  if (cursor.at !== bytes.length || cursor.inBuckets + parts.zeros !== parts.count) return null;
  return bucketsAgree(parts) && sumInBounds(parts) ? parts : null;
}

const NO_BUCKETS: Buckets = { index: new Int32Array(0), counts: new Float64Array(0), size: 0, level: 0 };

/** The fixed header, each field as checkNumber checks it; cursor.at after it. */
function readHeader(bytes: Uint8Array): HistogramParts | null {
  const len = bytes.length;
  if (len > BYTE_BUDGET || len < FIXED_HEADER_BYTES + 1) return null;
  if (bytes[0] !== LOG_HISTOGRAM_MAGIC || bytes[1] !== LOG_HISTOGRAM_VERSION || bytes[2] !== FINEST_BITS) return null;
  if ((bytes[3] as number) > MAX_LEVEL) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, len);
  const p: HistogramParts = {
    count: view.getFloat64(4, true),
    zeros: view.getFloat64(12, true),
    sumHi: view.getFloat64(20, true),
    sumLo: view.getFloat64(28, true),
    min: view.getFloat64(36, true),
    max: view.getFloat64(44, true),
    buckets: NO_BUCKETS,
  };
  cursor.at = FIXED_HEADER_BYTES;
  return headerOk(p) ? p : null;
}

const isCount = (x: number): boolean => Number.isSafeInteger(x) && x >= 0;
const isMagnitude = (x: number): boolean => Number.isFinite(x) && x >= 0;

function headerOk(p: HistogramParts): boolean {
  if (!isCount(p.count) || !isCount(p.zeros) || !isMagnitude(p.sumHi) || !Number.isFinite(p.sumLo)) return false;
  if (!isMagnitude(p.min) || !isMagnitude(p.max)) return false;
  return !(Math.abs(p.sumLo) > Math.abs(p.sumHi) * 1e-12 + Number.MIN_VALUE);
}

/** The first index (i32) and the gaps (varints >= 1) after it, into b.index. */
function readIndices(bytes: Uint8Array, b: Buckets): boolean {
  const n = b.size;
  if (n === 0) return true;
  const len = bytes.length;
  let at = cursor.at;
  if (at + 4 > len) return false;
  const index = b.index;
  // Little-endian i32, as DataView.getInt32 reads it.
  const x = bytes;
  let prev =
    (x[at] as number) | ((x[at + 1] as number) << 8) | ((x[at + 2] as number) << 16) | ((x[at + 3] as number) << 24);
  index[0] = prev;
  at += 4;
  for (let k = 1; k < n; k++) {
    let gap = at < len ? (bytes[at] as number) : 0x80;
    if (gap < 0x80) at++;
    else {
      cursor.at = at;
      gap = readVarint(bytes);
      at = cursor.at;
      if (at < 0) return false;
    }
    const next = prev + gap;
    if (gap < 1 || next > INT32_MAX) return false;
    index[k] = next;
    prev = next;
  }
  cursor.at = at;
  return true;
}

/**
 * The counts (varints >= 1, safe integers), into p.buckets.counts; their total in cursor.inBuckets, and
 * checkSum's bounds on the sum in cursor.low and cursor.high, summed in its order of floating-point
 * operations (so the same sketches pass): each count times its bucket's lower (upper) edge, min for
 * the first bucket's lower edge and max for the last's upper. One pass while the counts are read.
 */
function readCounts(bytes: Uint8Array, p: HistogramParts): boolean {
  const b = p.buckets;
  const n = b.size;
  if (n === 0) {
    cursor.inBuckets = 0;
    cursor.low = 0;
    cursor.high = 0;
    return true;
  }
  const len = bytes.length;
  const counts = b.counts;
  const index = b.index;
  const table = edgeTable();
  const step = 1 << b.level; // level <= MAX_LEVEL (20), checked with the header
  // Indices ascend: when the first lower and the last upper edge are in the table, every edge is.
  const inTable =
    (index[0] as number) * step + EDGE_OFFSET >= 0 &&
    ((index[n - 1] as number) + 1) * step + EDGE_OFFSET < table.length;
  const min = p.min;
  const max = p.max;
  let at = cursor.at;
  let inBuckets = 0;
  let low = 0;
  let high = 0;
  for (let k = 0; k < n; k++) {
    let c = at < len ? (bytes[at] as number) : 0x80;
    if (c < 0x80) at++;
    else {
      cursor.at = at;
      c = readVarint(bytes);
      at = cursor.at;
      if (at < 0 || !Number.isSafeInteger(c)) return false;
    }
    // A one-byte count is a whole number below 128: only zero is refused.
    if (c < 1) return false;
    counts[k] = c;
    inBuckets += c;
    let lower: number;
    let upper: number;
    if (inTable) {
      // A slot in the table is a small whole number: `| 0` keeps the index arithmetic in integers.
      const slot = ((index[k] as number) * step + EDGE_OFFSET) | 0;
      lower = k === 0 ? min : (table[slot] as number);
      upper = k === n - 1 ? max : (table[slot + step] as number);
    } else {
      const f = (index[k] as number) * step;
      lower = k === 0 ? min : edgeAt(table, f);
      upper = k === n - 1 ? max : edgeAt(table, f + step);
    }
    low += c * lower;
    high += c * upper;
  }
  cursor.at = at;
  cursor.inBuckets = inBuckets;
  cursor.low = low;
  cursor.high = high;
  return true;
}

/** exp(f / 2^FINEST_BITS): from the table where it has the edge, else Math.exp (the table's same value). */
function edgeAt(table: Float64Array, f: number): number {
  const slot = f + EDGE_OFFSET;
  return slot >= 0 && slot < table.length ? (table[slot] as number) : Math.exp(f / SCALE);
}

/** min in the first bucket, max in the last, and a level no coarser than the budget requires. */
function bucketsAgree(p: HistogramParts): boolean {
  const { index, size: n, level } = p.buckets;
  if (n === 0) return p.sumHi + p.sumLo === 0 && p.min === 0 && p.max === 0;
  if (!(p.min > 0) || !(p.min <= p.max)) return false;
  if (Math.floor(Math.log(p.min) * SCALE) >> level !== index[0]) return false;
  if (Math.floor(Math.log(p.max) * SCALE) >> level !== index[n - 1]) return false;
  // Only a coarsened sketch needs the bound on its size one level finer (level 0 is the finest).
  return !(level > 0 && finerBytesBound(index, p.buckets.counts, n) <= BYTE_BUDGET);
}

/** checkSum's bounds (summed by readCounts): the sum lies between them, within the same slack. */
function sumInBounds(p: HistogramParts): boolean {
  const sum = p.sumHi + p.sumLo;
  return !(sum < cursor.low * (1 - SUM_TOLERANCE) || sum > cursor.high * (1 + SUM_TOLERANCE));
}
