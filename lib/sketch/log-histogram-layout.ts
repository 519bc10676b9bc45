// Layout rules of LogHistogram shared by the sketch, its codec and its checks (docs/adr/0012).
// A positive value x falls in finest bucket floor(ln(x)·2^FINEST_BITS); at level L the bucket is
// that index >> L (nested grids: coarsening by one level merges bucket pairs 2j, 2j+1 exactly).
import { SKETCH_FORMAT } from '../../api/protocol.ts';

/** Finest bucket width 2^-10 in ln units (≈ 0.098% relative). Fixed by the protocol. */
export const FINEST_BITS: number = SKETCH_FORMAT.finestBits;
/** The serialised form never exceeds this; the level is the finest at which it fits. Fixed by the protocol. */
export const BYTE_BUDGET: number = SKETCH_FORMAT.maxBytes;
/** Level 20 buckets are 1,024 ln units wide: every double lands in one of two; no level beyond is needed. */
export const MAX_LEVEL = 20;
export const LOG_HISTOGRAM_MAGIC: number = SKETCH_FORMAT.magic; // 'H'
export const LOG_HISTOGRAM_VERSION: number = SKETCH_FORMAT.version;
/**
 * magic, version, finest bits, level (4 × u8) + count, zeros, sumHi, sumLo, min, max (6 × f64).
 * The bucket count (varint) and first index (i32) follow.
 */
export const FIXED_HEADER_BYTES = 4 + 6 * 8;
const SCALE = 2 ** FINEST_BITS;
/** Where sumHi and sumLo sit in the serialised form (after the 4 u8s, count and zeros). */
const SUM_OFFSET = 4 + 2 * 8;

/**
 * The serialised form with the sum zeroed: the part that is exactly independent of how the values
 * were split and merged (the floating-point sum can differ in its last bits between merge orders).
 */
export function withoutSum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out.fill(0, SUM_OFFSET, SUM_OFFSET + 16);
  return out;
}

/** Finest-level bucket of a positive finite value. */
export function finestIndex(value: number): number {
  return Math.floor(Math.log(value) * SCALE);
}

export function bucketOf(value: number, level: number): number {
  return finestIndex(value) >> level;
}

/** ln of bucket j's lower edge at a level. */
export function lowerEdgeLn(index: number, level: number): number {
  return (index * 2 ** level) / SCALE;
}

/** exp of finest-grid edges f / 2^FINEST_BITS for f in [-EDGE_OFFSET, EDGE_TABLE - EDGE_OFFSET): 1e-3 .. 8.6e10 ms. */
export const EDGE_OFFSET = 8192;
const EDGE_TABLE = 32768;
/** Filled on first use: the same Math.exp of the same argument as outside it, so bit-identical results. */
let edgeValues: Float64Array | null = null;

/** The table of edges (slot f + EDGE_OFFSET holds Math.exp(f / 2^FINEST_BITS)), filled once (~0.3 ms). */
export function edgeTable(): Float64Array {
  if (edgeValues !== null) return edgeValues;
  const table = new Float64Array(EDGE_TABLE);
  for (let slot = 0; slot < EDGE_TABLE; slot++) table[slot] = Math.exp((slot - EDGE_OFFSET) / SCALE);
  edgeValues = table;
  return table;
}

/**
 * Math.exp(lowerEdgeLn(index, level)), from a table for the edges latencies use: checking every
 * decoded sketch's sum against its buckets needs two per bucket, which cost more than the decoding.
 */
export function lowerEdge(index: number, level: number): number {
  const f = index * 2 ** level;
  const slot = f + EDGE_OFFSET;
  if (!(slot >= 0 && slot < EDGE_TABLE)) return Math.exp(f / SCALE);
  return edgeTable()[slot] as number;
}

export function varintBytes(x: number): number {
  if (x < 0x80) return 1;
  if (x < 0x4000) return 2;
  if (x < 0x200000) return 3;
  if (x < 0x10000000) return 4;
  let n = 4;
  for (let v = Math.floor(x / 0x10000000); v > 0; v = Math.floor(v / 0x80)) n++;
  return n;
}

/**
 * Exact serialised size of buckets (sorted indices, counts). Fixed-width fields and varints only,
 * so the size can only grow when buckets or counts are added: the finest level that fits a union of
 * data is never finer than the one that fits a part, which makes the level (and the whole sketch)
 * independent of how the data was split and in which order it was merged.
 */
export function encodedBytes(index: Int32Array, counts: Float64Array, n: number): number {
  let bytes = FIXED_HEADER_BYTES + varintBytes(n) + (n > 0 ? 4 : 0);
  for (let k = 0; k < n; k++) {
    bytes += varintBytes(counts[k] as number);
    if (k > 0) bytes += varintBytes((index[k] as number) - (index[k - 1] as number));
  }
  return bytes;
}

/**
 * An upper bound on the size the same data would have one level finer: each bucket splits into at
 * most two, each with at most its count, one apart, and a gap d between buckets becomes at most 2d+1.
 * A level-L sketch whose bound fits the budget was coarsened more than the rules allow.
 */
export function finerBytesBound(index: Int32Array, counts: Float64Array, n: number): number {
  let bytes = FIXED_HEADER_BYTES + varintBytes(2 * n) + (n > 0 ? 4 : 0);
  for (let k = 0; k < n; k++) {
    bytes += 2 * varintBytes(counts[k] as number) + 1;
    if (k > 0) bytes += varintBytes(2 * ((index[k] as number) - (index[k - 1] as number)) + 1);
  }
  return bytes;
}
