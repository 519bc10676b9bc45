// The npm `tdigest` package behind LatencySketch, kept for the comparison in docs/adr/0004 and
// bench/sketch.ts. Not the default: it is slower and several times larger than MergingDigest,
// and once a digest passes K/delta (2,500) centroids it recompresses in Math.random order, so
// serialisations are then no longer deterministic. Binary form v1: u8 0x54 ('T') | u8 1 | f64 sum | f64 min | f64 max |
// varint n | n × (f64 mean, f64 weight).
import tdigestPackage from 'tdigest';
import type { LatencySketch } from './types.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { ProtocolError } from '../errors.ts';

export const TDIGEST_MAGIC = 0x54;
const VERSION = 1;

export class TDigestSketch implements LatencySketch {
  private readonly digest = new tdigestPackage.TDigest();
  private sum = 0;
  private minValue = Number.POSITIVE_INFINITY;
  private maxValue = Number.NEGATIVE_INFINITY;

  get count(): number {
    return this.digest.n;
  }
  get min(): number {
    return this.count === 0 ? Number.NaN : this.minValue;
  }
  get max(): number {
    return this.count === 0 ? Number.NaN : this.maxValue;
  }
  get mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count;
  }
  get centroidCount(): number {
    return this.digest.size();
  }

  add(value: number, weight = 1): void {
    this.digest.push(value, weight);
    this.sum += value * weight;
    if (value < this.minValue) this.minValue = value;
    if (value > this.maxValue) this.maxValue = value;
  }

  merge(other: LatencySketch): void {
    if (!(other instanceof TDigestSketch)) throw new TypeError('TDigestSketch can only merge another TDigestSketch');
    if (other.count === 0) return;
    this.digest.push_centroid(other.digest.toArray());
    this.sum += other.sum;
    this.minValue = Math.min(this.minValue, other.minValue);
    this.maxValue = Math.max(this.maxValue, other.maxValue);
  }

  quantile(q: number): number {
    if (this.count === 0 || !(q >= 0 && q <= 1)) return Number.NaN;
    if (q === 0) return this.minValue;
    if (q === 1) return this.maxValue;
    return this.digest.percentile(q) ?? Number.NaN;
  }

  rank(value: number): number {
    if (this.count === 0) return Number.NaN;
    return this.digest.p_rank(value) ?? Number.NaN;
  }

  serialize(): Uint8Array {
    const centroids = this.digest.toArray();
    const w = new ByteWriter(32 + centroids.length * 16);
    w.u8(TDIGEST_MAGIC);
    w.u8(VERSION);
    w.f64(this.sum);
    w.f64(this.count === 0 ? 0 : this.minValue);
    w.f64(this.count === 0 ? 0 : this.maxValue);
    w.varint(centroids.length);
    for (const c of centroids) {
      w.f64(c.mean);
      w.f64(c.n);
    }
    return w.bytes();
  }

  static deserialize(bytes: Uint8Array): TDigestSketch {
    const r = new ByteReader(bytes, 'tdigest sketch');
    if (r.u8() !== TDIGEST_MAGIC) throw new ProtocolError('tdigest sketch: bad magic byte');
    const version = r.u8();
    if (version !== VERSION) throw new ProtocolError(`tdigest sketch: unsupported version ${version}`);
    const s = new TDigestSketch();
    const sum = r.f64();
    const min = r.f64();
    const max = r.f64();
    const n = r.varint();
    if (n * 16 > r.remaining) throw new ProtocolError(`tdigest sketch: centroid count ${n} exceeds the data`);
    const centroids = [];
    for (let i = 0; i < n; i++) centroids.push({ mean: r.f64(), n: r.f64() });
    r.end();
    s.digest.push_centroid(centroids);
    s.sum = sum;
    if (n > 0) {
      s.minValue = min;
      s.maxValue = max;
    }
    return s;
  }
}
