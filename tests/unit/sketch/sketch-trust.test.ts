import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { WireMessage } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { ProtocolError } from '../../../lib/errors.ts';
import { LogHistogram, MergingDigest } from '../../../lib/sketch/index.ts';
import { coarsen } from '../../../lib/sketch/log-buckets.ts';
import { decodeHistogram, encodeHistogram, type HistogramParts } from '../../../lib/sketch/log-histogram-codec.ts';
import {
  experimentMessages,
  makePlan,
  replicaMessages,
  seededRandom,
  type StreamOptions,
} from '../../support/streams.ts';

function honest(n = 5000, seed = 1): LogHistogram {
  const r = seededRandom(seed);
  const h = new LogHistogram();
  for (let i = 0; i < n; i++) h.add(Math.exp(Math.log(40) + 2 * (r() - 0.5)));
  for (let i = 0; i < 10; i++) h.add(0);
  return h;
}

function lie(change: (p: HistogramParts) => void, h = honest()): Uint8Array {
  const p = decodeHistogram(h.serialize());
  change(p);
  return encodeHistogram(p);
}

const refused = (bytes: Uint8Array, pattern: RegExp): void => {
  const named = (e: unknown): boolean => e instanceof ProtocolError && pattern.test(e.message);
  assert.throws(() => LogHistogram.deserialize(bytes), named);
};

void describe('latency sketch decoding trusts no field', () => {
  void it('accepts an honest sketch and reproduces its bytes', () => {
    const h = honest();
    assert.ok(Buffer.from(LogHistogram.deserialize(h.serialize()).serialize()).equals(Buffer.from(h.serialize())));
  });

  void it('refuses a count that is not the buckets plus the zeros', () => {
    refused(
      lie((p) => (p.count += 1)),
      /count .* is not the/,
    );
    refused(
      lie((p) => (p.count = 1e6)),
      /count .* is not the/,
    );
    refused(
      lie((p) => (p.zeros += 3)),
      /count .* is not the/,
    );
    refused(
      lie((p) => (p.count = 4.5)),
      /not a whole number/,
    );
  });

  void it('refuses a min or max that is not in the first or last bucket', () => {
    refused(
      lie((p) => (p.min /= 1.01)),
      /min .* not in the first bucket/,
    );
    refused(
      lie((p) => (p.min *= 1.5)),
      /min .* (not in the first bucket|above max)/,
    );
    refused(
      lie((p) => (p.max *= 1.01)),
      /max .* not in the last bucket/,
    );
    refused(
      lie((p) => (p.max /= 1.5)),
      /max .* not in the last bucket/,
    );
  });

  void it('refuses a sum outside what the buckets allow', () => {
    refused(
      lie((p) => (p.sumHi *= 1.2)),
      /sum .* outside/,
    );
    refused(
      lie((p) => (p.sumHi *= 0.8)),
      /sum .* outside/,
    );
    refused(
      lie((p) => (p.sumLo = p.sumHi)),
      /remainder/,
    );
  });

  void it('refuses NaN, Infinity and negative values in every numeric field', () => {
    for (const field of ['count', 'zeros', 'sumHi', 'min', 'max'] as const) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
        refused(
          lie((p) => (p[field] = bad)),
          /not a finite number|negative/,
        );
      }
    }
    refused(
      lie((p) => (p.sumLo = Number.NaN)),
      /not finite/,
    );
  });

  void it('refuses empty or unsorted buckets', () => {
    refused(
      lie((p) => (p.buckets.counts[3] = 0)),
      /count 0/,
    );
    const unsorted = lie((p) => (p.buckets.index[2] = p.buckets.index[1] as number));
    refused(unsorted, /does not follow/);
  });

  void it('refuses a sketch coarser than the byte budget requires: one sender cannot blur the run', () => {
    refused(
      lie((p) => (p.buckets = coarsen(p.buckets, p.buckets.level + 4))),
      /coarser than/,
    );
  });

  void it('refuses another resolution, another format, an oversized sketch, truncation and trailing bytes', () => {
    const bytes = honest().serialize();
    const otherBits = bytes.slice();
    otherBits[2] = 8;
    refused(otherBits, /resolution 2\^-8 is not the protocol's 2\^-10/);
    const old = new MergingDigest();
    old.add(1);
    refused(old.serialize(), /bad format byte 0x4d/);
    refused(new Uint8Array(4097).fill(0x48), /more than the protocol's 4096/);
    refused(bytes.subarray(0, bytes.length - 1), /truncated/);
    const extra = new Uint8Array(bytes.length + 1);
    extra.set(bytes);
    refused(extra, /trailing/);
  });

  void it('either refuses a corrupted byte with a ProtocolError or decodes to a self-consistent sketch', () => {
    const bytes = honest(2000, 4).serialize();
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const bad = bytes.slice();
        bad[at] = (bad[at] as number) ^ xor;
        let h: LogHistogram;
        try {
          h = LogHistogram.deserialize(bad);
        } catch (err) {
          assert.ok(err instanceof ProtocolError, String(err));
          return;
        }
        assert.ok(Buffer.from(h.serialize()).equals(Buffer.from(bad)), 'decode∘encode is the identity');
        for (const q of [0.5, 0.99, 0.999]) assert.ok(h.quantile(q) >= h.min && h.quantile(q) <= h.max);
        assert.ok(h.mean >= h.min && h.mean <= h.max);
      }),
      { numRuns: 500 },
    );
  });
});

void describe('the aggregator and a lying sketch', () => {
  function runWith(replace: (b64: string) => string): ReturnType<Aggregator['results']>['runs'][number] {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const msgs = experimentMessages(plan, { seed: 3 });
    let done = false;
    const forged = msgs.map((m): WireMessage => {
      if (done || m.kind !== 'sketch' || m.sketches.ttftMs === undefined) return m;
      done = true;
      // The test streams are JSON's: base64.
      return { ...m, sketches: { ...m.sketches, ttftMs: replace(m.sketches.ttftMs as string) } };
    });
    const agg = new Aggregator(plan);
    forged.forEach((m, i) => agg.apply(m, i + 1));
    return agg.results().runs[0]!;
  }

  void it('keeps a run with honest sketches complete', () => {
    assert.equal(runWith((b) => b).status, 'complete');
  });

  const lies: [string, (p: HistogramParts) => void, RegExp][] = [
    ['a count', (p) => (p.count *= 2), /count/],
    ['a max', (p) => (p.max *= 100), /max/],
    ['a sum', (p) => (p.sumHi *= 3), /sum/],
    ['its resolution (a coarse sketch)', (p) => (p.buckets = coarsen(p.buckets, p.buckets.level + 6)), /coarser/],
  ];
  for (const [what, change, reason] of lies) {
    void it(`makes the run incomplete, naming the sketch, when one sketch lies about ${what}`, () => {
      const run = runWith((b64) => {
        const p = decodeHistogram(Buffer.from(b64, 'base64'));
        change(p);
        return Buffer.from(encodeHistogram(p)).toString('base64');
      });
      assert.equal(run.status, 'incomplete');
      const text = run.reasons.join(' ');
      assert.match(text, /sketch ttftMs could not be decoded/);
      assert.match(text, reason);
    });
  }
});

void describe('the aggregator merges sketches independently of arrival order', () => {
  void it("reports identical latency percentiles whichever replica's slices arrive first", () => {
    const plan = makePlan({ configs: 1, cycles: 1, replicas: 3 });
    const run = plan.runs[0]!;
    const options = (r: number): StreamOptions => ({ seed: 20 + r, slices: 6, requestsPerSlice: 40 });
    const streams = [0, 1, 2].map((r) => replicaMessages(run, r, plan.experimentUid, options(r)));
    const orders: WireMessage[][] = [
      streams.flat(),
      [...streams].reverse().flat(),
      // Round-robin interleaving, as a shared stream would deliver them.
      Array.from({ length: Math.max(...streams.map((s) => s.length)) }, (_, i) => streams.map((s) => s[i]))
        .flat()
        .filter((m): m is WireMessage => m !== undefined),
    ];
    const latencies = orders.map((msgs) => {
      const agg = new Aggregator(plan);
      msgs.forEach((m, i) => agg.apply(m, i + 1));
      const r = agg.results().runs[0]!;
      assert.equal(r.status, 'complete');
      return JSON.stringify(r.latency);
    });
    assert.equal(latencies[1], latencies[0]);
    assert.equal(latencies[2], latencies[0]);
  });
});
