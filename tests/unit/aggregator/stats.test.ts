import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cycleStats, studentTQuantile } from '../../../aggregator/index.ts';

void describe('across-cycle statistics', () => {
  void it('computes Student t 97.5% quantiles that match the published table', () => {
    const table: [number, number][] = [
      [1, 12.7062],
      [2, 4.3027],
      [3, 3.1824],
      [5, 2.5706],
      [10, 2.2281],
      [30, 2.0423],
      [120, 1.9799],
    ];
    for (const [df, t] of table)
      assert.ok(Math.abs(studentTQuantile(0.975, df) - t) < 5e-4, `df=${df}: ${studentTQuantile(0.975, df)}`);
    assert.ok(Math.abs(studentTQuantile(0.975, 1e6) - 1.95996) < 1e-4);
  });

  void it('gives mean, sample std and the t interval, and says why spread is unknown for one cycle', () => {
    const s = cycleStats([1, 2, 3, 4]);
    assert.equal(s.mean, 2.5);
    assert.ok(Math.abs((s.std as number) - Math.sqrt(5 / 3)) < 1e-12);
    const half = (studentTQuantile(0.975, 3) * Math.sqrt(5 / 3)) / 2;
    assert.ok(Math.abs((s.ci95Low as number) - (2.5 - half)) < 1e-12);
    assert.equal(s.reason, null);
    const one = cycleStats([7], ['run-b: energy counter unavailable']);
    assert.equal(one.mean, 7);
    assert.equal(one.std, null);
    assert.match(one.reason as string, /one cycle.*run-b/);
    const none = cycleStats([]);
    assert.equal(none.mean, null);
    assert.match(none.reason as string, /no cycle/);
  });
});
