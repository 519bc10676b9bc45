// Binary form of LogHistogram, version 1 (little-endian), at most BYTE_BUDGET (4,096) bytes:
//   u8 magic 0x48 ('H') | u8 version 1 | u8 finest bits (10) | u8 level
//   f64 count | f64 zeros | f64 sumHi | f64 sumLo | f64 min | f64 max
//   varint n | [n > 0: i32 first bucket index | n-1 varint gaps (>= 1)] | n varint counts (>= 1)
// min/max are the smallest and largest positive values (0 when there are none); zeros are counted
// apart. The finest bits and the budget are the protocol's, not the sender's: any other is refused.
// decode∘encode is the identity, so a checkpoint restores the exact state.
import { ProtocolError } from '../errors.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import type { Buckets } from './log-buckets.ts';
import { checkHistogram } from './log-histogram-checks.ts';
import {
  BYTE_BUDGET,
  FINEST_BITS,
  LOG_HISTOGRAM_MAGIC,
  LOG_HISTOGRAM_VERSION,
  MAX_LEVEL,
} from './log-histogram-layout.ts';

export interface HistogramParts {
  count: number;
  zeros: number;
  sumHi: number;
  sumLo: number;
  min: number;
  max: number;
  buckets: Buckets;
}

export function encodeHistogram(p: HistogramParts): Uint8Array {
  const b = p.buckets;
  const w = new ByteWriter(64 + b.size * 4);
  w.u8(LOG_HISTOGRAM_MAGIC);
  w.u8(LOG_HISTOGRAM_VERSION);
  w.u8(FINEST_BITS);
  w.u8(b.level);
  for (const x of [p.count, p.zeros, p.sumHi, p.sumLo, p.min, p.max]) w.f64(x);
  w.varint(b.size);
  if (b.size > 0) w.i32(b.index[0] as number);
  for (let k = 1; k < b.size; k++) w.varint((b.index[k] as number) - (b.index[k - 1] as number));
  for (let k = 0; k < b.size; k++) w.varint(b.counts[k] as number);
  return w.bytes();
}

function fail(message: string): never {
  throw new ProtocolError(`latency sketch: ${message}`);
}

/** Decodes and validates every field against the buckets; throws ProtocolError naming the lie. */
export function decodeHistogram(bytes: Uint8Array): HistogramParts {
  if (bytes.length > BYTE_BUDGET) fail(`${bytes.length} bytes, more than the protocol's ${BYTE_BUDGET}`);
  const r = new ByteReader(bytes, 'latency sketch');
  const magic = r.u8();
  if (magic !== LOG_HISTOGRAM_MAGIC) {
    fail(`bad format byte 0x${magic.toString(16)} (expected a log-histogram sketch, 0x48)`);
  }
  const version = r.u8();
  if (version !== LOG_HISTOGRAM_VERSION) {
    fail(`unsupported version ${version} (this build reads ${LOG_HISTOGRAM_VERSION})`);
  }
  const bits = r.u8();
  if (bits !== FINEST_BITS) fail(`resolution 2^-${bits} is not the protocol's 2^-${FINEST_BITS}`);
  const level = r.u8();
  if (level > MAX_LEVEL) fail(`level ${level} is above the maximum ${MAX_LEVEL}`);
  const [count, zeros, sumHi, sumLo, min, max] = [r.f64(), r.f64(), r.f64(), r.f64(), r.f64(), r.f64()] as const;
  const n = r.varint();
  // Every bucket takes at least two bytes (gap and count).
  if (n * 2 > r.remaining) fail(`bucket count ${n} exceeds the data`);
  const index = new Int32Array(n);
  const counts = new Float64Array(n);
  if (n > 0) index[0] = r.i32();
  for (let k = 1; k < n; k++) {
    const gap = r.varint();
    if (gap < 1) fail(`bucket ${k} does not follow bucket ${k - 1} (gap ${gap})`);
    const next = (index[k - 1] as number) + gap;
    if (next > 0x7fffffff) fail(`bucket ${k} index overflows`);
    index[k] = next;
  }
  for (let k = 0; k < n; k++) counts[k] = r.varint();
  r.end();
  const parts: HistogramParts = { count, zeros, sumHi, sumLo, min, max, buckets: { index, counts, size: n, level } };
  checkHistogram(parts);
  return parts;
}
