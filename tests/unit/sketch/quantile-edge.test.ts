import assert from 'node:assert/strict';
import { test } from 'node:test';
import { positionOf } from '../../../lib/sketch/log-buckets.ts';
import { LogHistogram } from '../../../lib/sketch/index.ts';

test('a rank on the lower edge of a bucket whose right neighbour is far fuller gives the edge, not NaN', () => {
  assert.equal(positionOf(0, 2), 0);
  assert.ok(Number.isFinite(positionOf(0, 2)));
});

test('every quantile of a sparse bucket beside a dense one is a finite value (p99 ITL was null on an H100)', () => {
  // One value alone in a bucket, thousands in the next: the steep density that made the fit 0 / 0.
  for (const dense of [4, 50, 5000]) {
    const h = new LogHistogram();
    h.add(1);
    for (let i = 0; i < 3; i++) h.add(4 + i * 0.01);
    for (let i = 0; i < dense; i++) h.add(4.6 + (i % 7) * 0.001);
    h.add(1000);
    for (let q = 0.001; q < 1; q += 0.0005) {
      const v = h.quantile(q);
      assert.ok(Number.isFinite(v), `q=${q.toFixed(4)} with ${dense} dense values gave ${v}`);
    }
  }
});
