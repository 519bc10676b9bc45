import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../../lib/errors.ts';
import {
  deserializeSketch,
  MergingDigest,
  sketchFromBase64,
  sketchToBase64,
  TDigestSketch,
} from '../../../lib/sketch/index.ts';
import { normal, seededRandom } from '../../support/streams.ts';

function lognormal(n: number, seed: number): Float64Array {
  const r = seededRandom(seed);
  return Float64Array.from({ length: n }, () => Math.exp(Math.log(40) + 0.7 * normal(r)));
}

function exact(sorted: Float64Array, q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number;
}

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

void describe('MergingDigest', () => {
  void it('estimates lognormal quantiles within 0.1% up to p99 and 0.5% at p99.9', () => {
    const v = lognormal(200_000, 1);
    const d = new MergingDigest();
    for (const x of v) d.add(x);
    const s = v.slice().sort();
    for (const q of [0.5, 0.9, 0.99]) assert.ok(relErr(d.quantile(q), exact(s, q)) <= 0.001, `q=${q}`);
    assert.ok(relErr(d.quantile(0.999), exact(s, 0.999)) <= 0.005);
    assert.equal(d.count, v.length);
    assert.equal(d.min, s[0]);
    assert.equal(d.max, s[s.length - 1]);
  });

  void it('keeps that accuracy after merging 200 partial digests sent through their binary form', () => {
    const v = lognormal(200_000, 2);
    const merged = new MergingDigest();
    for (let p = 0; p < 200; p++) {
      const part = new MergingDigest();
      for (let i = p * 1000; i < (p + 1) * 1000; i++) part.add(v[i] as number);
      merged.merge(deserializeSketch(part.serialize()));
    }
    const s = v.slice().sort();
    for (const q of [0.5, 0.9, 0.99]) assert.ok(relErr(merged.quantile(q), exact(s, q)) <= 0.001, `q=${q}`);
    assert.ok(relErr(merged.quantile(0.999), exact(s, 0.999)) <= 0.005);
    assert.ok(merged.serialize().length <= 4096, `serialised size ${merged.serialize().length}`);
  });

  void it('gives byte-identical serialisations for the same values in the same order', () => {
    const v = lognormal(50_000, 3);
    const a = new MergingDigest();
    const b = new MergingDigest();
    for (const x of v) a.add(x);
    v.forEach((x, i) => {
      b.add(x);
      if (i % 997 === 0) b.quantile(0.5); // reads in between must not change the outcome
    });
    assert.ok(same(a.serialize(), b.serialize()));
    const c = new MergingDigest();
    for (const x of v.slice().reverse()) c.add(x);
    assert.ok(!same(a.serialize(), c.serialize()), 'a different order may (and here does) give a different digest');
  });

  void it('continues identically after a lossless state round trip mid-stream', () => {
    const v = lognormal(30_000, 4);
    const straight = new MergingDigest();
    let restored = new MergingDigest();
    v.forEach((x, i) => {
      straight.add(x);
      restored.add(x);
      if (i === 12_345) restored = MergingDigest.deserialize(restored.serializeState());
    });
    assert.ok(same(straight.serialize(), restored.serialize()));
    assert.ok(same(straight.serializeState(), restored.serializeState()));
  });

  void it('answers rank as the inverse of quantile', () => {
    const d = new MergingDigest();
    for (const x of lognormal(20_000, 5)) d.add(x);
    for (const q of [0.1, 0.5, 0.9, 0.99]) assert.ok(Math.abs(d.rank(d.quantile(q)) - q) < 0.002, `q=${q}`);
    assert.equal(d.rank(d.min - 1), 0);
    assert.equal(d.rank(d.max + 1), 1);
  });

  void it('reports NaN for an empty digest and round-trips it', () => {
    const d = new MergingDigest();
    assert.ok(Number.isNaN(d.quantile(0.5)) && Number.isNaN(d.rank(1)) && Number.isNaN(d.min) && Number.isNaN(d.mean));
    const e = MergingDigest.deserialize(d.serialize());
    assert.equal(e.count, 0);
    assert.ok(same(d.serialize(), e.serialize()));
  });

  void it('returns the exact value for a single or constant input and honours weights', () => {
    const d = new MergingDigest();
    d.add(7);
    assert.equal(d.quantile(0.5), 7);
    for (let i = 0; i < 1000; i++) d.add(7);
    assert.equal(d.quantile(0.99), 7);
    const w = new MergingDigest();
    w.add(1, 99);
    w.add(1000, 1);
    assert.equal(w.count, 100);
    assert.equal(w.quantile(0.25), 1);
    assert.equal(w.quantile(1), 1000);
    assert.equal(w.mean, (99 + 1000) / 100);
  });

  void it('rejects values and weights it cannot represent', () => {
    const d = new MergingDigest();
    assert.throws(() => d.add(Number.NaN), RangeError);
    assert.throws(() => d.add(Number.POSITIVE_INFINITY), RangeError);
    assert.throws(() => d.add(1, 0), RangeError);
    assert.throws(() => new MergingDigest({ compression: 5 }), RangeError);
    assert.throws(() => d.merge(new TDigestSketch()), TypeError);
  });

  void it('rejects truncated, foreign and future-version bytes with a ProtocolError', () => {
    const d = new MergingDigest();
    for (const x of lognormal(1000, 6)) d.add(x);
    const bytes = d.serialize();
    assert.throws(() => MergingDigest.deserialize(bytes.subarray(0, bytes.length - 3)), ProtocolError);
    const future = bytes.slice();
    future[1] = 99;
    assert.throws(() => MergingDigest.deserialize(future), /unsupported version 99/);
    assert.throws(() => deserializeSketch(new Uint8Array([1, 2, 3])), ProtocolError);
    assert.throws(() => deserializeSketch(new Uint8Array(0)), ProtocolError);
    const extra = new Uint8Array(bytes.length + 1);
    extra.set(bytes);
    assert.throws(() => MergingDigest.deserialize(extra), /trailing/);
  });

  void it('travels as base64 and decodes by its format byte, as does the npm tdigest adapter', () => {
    const d = new MergingDigest();
    const t = new TDigestSketch();
    for (const x of lognormal(5000, 7)) {
      d.add(x);
      t.add(x);
    }
    const d2 = sketchFromBase64(sketchToBase64(d));
    const t2 = sketchFromBase64(sketchToBase64(t));
    assert.ok(d2 instanceof MergingDigest && t2 instanceof TDigestSketch);
    assert.equal(d2.quantile(0.9), d.quantile(0.9));
    assert.ok(relErr(t2.quantile(0.9), t.quantile(0.9)) < 1e-9);
    assert.equal(t2.count, t.count);
  });
});
