import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TDigestSketch } from '../../../lib/sketch/index.ts';
import { seededRandom } from '../../support/streams.ts';

void describe('TDigestSketch (npm tdigest behind LatencySketch)', () => {
  void it('merges partial digests and answers quantiles close to the exact ones', () => {
    const r = seededRandom(11);
    const values = Array.from({ length: 20_000 }, () => r() * 100);
    const merged = new TDigestSketch();
    for (let p = 0; p < 20; p++) {
      const part = new TDigestSketch();
      for (const x of values.slice(p * 1000, (p + 1) * 1000)) part.add(x);
      merged.merge(TDigestSketch.deserialize(part.serialize()));
    }
    const sorted = values.slice().sort((a, b) => a - b);
    assert.equal(merged.count, values.length);
    assert.ok(Math.abs(merged.quantile(0.5) - (sorted[9999] as number)) < 0.5);
    assert.equal(merged.min, sorted[0]);
    assert.equal(merged.max, sorted[sorted.length - 1]);
    assert.ok(Math.abs(merged.rank(50) - 0.5) < 0.01);
  });

  void it('reports NaN when empty', () => {
    const t = new TDigestSketch();
    assert.ok(Number.isNaN(t.quantile(0.5)) && Number.isNaN(t.rank(3)) && Number.isNaN(t.mean));
  });
});
