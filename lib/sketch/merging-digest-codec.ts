// Binary form of MergingDigest, version 1 (little-endian):
//   u8 magic 0x4d ('M') | u8 version 1 | u8 flags | varint compression
//   f64 count | f64 sum | f64 min | f64 max | varint n | n means (f64) | n weights
//   [flags & HAS_BUFFERS: varint u, u unit values (f64) | varint p, p × (f64 mean, f64 weight)]
// flags: bits 0-1 scale (k1/k2/k3); INTEGER_WEIGHTS = weights as varints (the usual case), else f64.
// Means stay f64 so a decoded digest is bit-identical to the encoded one (checkpoints rely on it).
import { ProtocolError } from '../errors.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { scaleCode, scaleFromCode, type ScaleName } from './scale.ts';

export const MERGING_DIGEST_MAGIC = 0x4d;
export const MERGING_DIGEST_VERSION = 1;
const INTEGER_WEIGHTS = 1 << 2;
const HAS_BUFFERS = 1 << 4;
const KNOWN_FLAGS = 0b11 | INTEGER_WEIGHTS | HAS_BUFFERS;

export interface DigestParts {
  compression: number;
  scale: ScaleName;
  count: number;
  sum: number;
  min: number;
  max: number;
  means: Float64Array;
  weights: Float64Array;
  units: Float64Array;
  pointMeans: Float64Array;
  pointWeights: Float64Array;
}

function allSafeIntegers(a: Float64Array): boolean {
  for (const w of a) if (!Number.isSafeInteger(w)) return false;
  return true;
}

export function encodeDigest(p: DigestParts): Uint8Array {
  const hasBuffers = p.units.length > 0 || p.pointMeans.length > 0;
  const integerWeights = allSafeIntegers(p.weights);
  const w = new ByteWriter(48 + p.means.length * 11);
  w.u8(MERGING_DIGEST_MAGIC);
  w.u8(MERGING_DIGEST_VERSION);
  w.u8(scaleCode(p.scale) | (integerWeights ? INTEGER_WEIGHTS : 0) | (hasBuffers ? HAS_BUFFERS : 0));
  w.varint(p.compression);
  w.f64(p.count);
  w.f64(p.sum);
  w.f64(p.min);
  w.f64(p.max);
  w.varint(p.means.length);
  for (const m of p.means) w.f64(m);
  for (const x of p.weights) {
    if (integerWeights) w.varint(x);
    else w.f64(x);
  }
  if (hasBuffers) {
    w.varint(p.units.length);
    for (const u of p.units) w.f64(u);
    w.varint(p.pointMeans.length);
    for (let i = 0; i < p.pointMeans.length; i++) {
      w.f64(p.pointMeans[i] as number);
      w.f64(p.pointWeights[i] as number);
    }
  }
  return w.bytes();
}

function readHeader(r: ByteReader): { scale: ScaleName; flags: number; compression: number } {
  const magic = r.u8();
  if (magic !== MERGING_DIGEST_MAGIC) throw new ProtocolError(`merging digest: bad magic byte 0x${magic.toString(16)}`);
  const version = r.u8();
  if (version !== MERGING_DIGEST_VERSION) {
    throw new ProtocolError(
      `merging digest: unsupported version ${version} (this build reads ${MERGING_DIGEST_VERSION})`,
    );
  }
  const flags = r.u8();
  const scale = scaleFromCode(flags & 0b11);
  if (scale === undefined || (flags & ~KNOWN_FLAGS) !== 0)
    throw new ProtocolError(`merging digest: bad flags 0x${flags.toString(16)}`);
  const compression = r.varint();
  if (compression < 10 || compression > 10000)
    throw new ProtocolError(`merging digest: compression ${compression} out of range`);
  return { scale, flags, compression };
}

/** Read-only by convention: decoded digests never write into their buffers (they copy on first write). */
const NO_VALUES = new Float64Array(0);

function readF64s(r: ByteReader, n: number): Float64Array {
  return r.f64Array(n);
}

function checkCount(n: number, r: ByteReader, bytesEach: number, what: string): number {
  if (n * bytesEach > r.remaining) throw new ProtocolError(`merging digest: ${what} count ${n} exceeds the data`);
  return n;
}

export function decodeDigest(bytes: Uint8Array): DigestParts {
  const r = new ByteReader(bytes, 'merging digest');
  const { scale, flags, compression } = readHeader(r);
  const count = r.f64();
  const sum = r.f64();
  const min = r.f64();
  const max = r.f64();
  const n = checkCount(r.varint(), r, 9, 'centroid');
  const means = readF64s(r, n);
  const weights = new Float64Array(n);
  if (flags & INTEGER_WEIGHTS) for (let i = 0; i < n; i++) weights[i] = r.varint();
  else for (let i = 0; i < n; i++) weights[i] = r.f64();
  // Wire digests carry no buffers: share one empty array instead of allocating three per decode.
  let units: Float64Array = NO_VALUES;
  let pointMeans: Float64Array = NO_VALUES;
  let pointWeights: Float64Array = NO_VALUES;
  if (flags & HAS_BUFFERS) {
    units = readF64s(r, checkCount(r.varint(), r, 8, 'buffered value'));
    const p = checkCount(r.varint(), r, 16, 'buffered point');
    pointMeans = new Float64Array(p);
    pointWeights = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      pointMeans[i] = r.f64();
      pointWeights[i] = r.f64();
    }
  }
  r.end();
  validate(means, weights, count);
  return {
    compression,
    scale,
    count,
    sum,
    min,
    max,
    means,
    weights,
    units,
    pointMeans,
    pointWeights,
  };
}

function validate(means: Float64Array, weights: Float64Array, count: number): void {
  if (!(count >= 0) || !Number.isFinite(count)) throw new ProtocolError(`merging digest: bad count ${count}`);
  for (let i = 0; i < means.length; i++) {
    if (!Number.isFinite(means[i] as number) || !((weights[i] as number) > 0)) {
      throw new ProtocolError(`merging digest: centroid ${i} is not a finite mean with positive weight`);
    }
    if (i > 0 && (means[i] as number) < (means[i - 1] as number))
      throw new ProtocolError(`merging digest: centroids out of order at ${i}`);
  }
}
