// Statistics that hold with few cycles (issue #18 item 7): an interval never implies an impossible
// value, fewer than three cycles are flagged, and "best" says what it was chosen on, with the gross
// and the baseline-subtracted J/token side by side.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Aggregator, cycleStats, studentTQuantile } from '../../../aggregator/index.ts';
import { experimentMessages, makePlan } from '../../support/streams.ts';

void describe('statistics with few cycles', () => {
  void it('clamps a J/token interval that would go below zero at 0 and flags it and the two cycles', () => {
    // Two cycles that disagree, as the quickstart's do: mean - t(1) * s / sqrt(2) is far below zero.
    const values = [0.9, 1.4];
    const s = cycleStats(values, [], { nonNegative: true });
    const half = (studentTQuantile(0.975, 1) * (s.std as number)) / Math.sqrt(2);
    assert.ok((s.mean as number) - half < 0, 'the raw Student-t bound is negative');
    assert.equal(s.ci95Low, 0);
    assert.ok(Math.abs((s.ci95High as number) - ((s.mean as number) + half)) < 1e-12);
    assert.deepEqual(s.flags, ['fewCycles', 'ciClampedAtZero']);
  });

  void it('leaves a quantity that may be negative unclamped, and flags nothing with enough tight cycles', () => {
    const signed = cycleStats([0.9, 1.4]);
    assert.ok((signed.ci95Low as number) < 0);
    assert.deepEqual(signed.flags, ['fewCycles']);
    const tight = cycleStats([1, 1.01, 0.99, 1.02], [], { nonNegative: true });
    assert.deepEqual(tight.flags, []);
    assert.ok((tight.ci95Low as number) > 0.9);
    assert.deepEqual(cycleStats([2], [], { nonNegative: true }).flags, ['fewCycles']);
  });

  void it('never reports a negative interval bound for any non-negative run metric or latency percentile', () => {
    const plan = makePlan({ configs: 2, cycles: 2 });
    const agg = new Aggregator(plan);
    // Very different cycles (seeds): wide two-cycle intervals.
    experimentMessages(plan, { seed: 31, slices: 3 }).forEach((m, i) => agg.apply(m, i + 1));
    const res = agg.results();
    for (const c of res.configurations) {
      for (const [name, s] of Object.entries(c.metrics)) {
        assert.ok(s.flags.includes('fewCycles'), `${name} is flagged: two cycles`);
        if (!name.startsWith('baselineSubtracted'))
          assert.ok(s.ci95Low === null || s.ci95Low >= 0, `${c.configId} ${name}: ${s.ci95Low}`);
      }
      for (const per of Object.values(c.latency))
        for (const s of Object.values(per)) assert.ok(s.ci95Low === null || s.ci95Low >= 0);
    }
  });

  void it('names the metric of the best configuration and shows gross and baseline-subtracted J/token', () => {
    const plan = makePlan({ configs: 2, cycles: 3 });
    const agg = new Aggregator(plan);
    experimentMessages(plan, { seed: 12 }).forEach((m, i) => agg.apply(m, i + 1));
    const res = agg.results();
    const best = res.experiment.bestConfiguration;
    assert.ok(best !== null);
    const c = res.configurations.find((x) => x.configId === best.configId)!;
    assert.equal(best.metric, 'joulesPerToken');
    assert.equal(best.joulesPerTokenMean, c.metrics.joulesPerToken.mean);
    assert.equal(best.baselineSubtractedJoulesPerTokenMean, c.metrics.baselineSubtractedJoulesPerToken.mean);
    assert.ok(
      (best.baselineSubtractedJoulesPerTokenMean as number) < best.joulesPerTokenMean,
      'the idle floor is removed',
    );
    assert.equal(best.cycles, 3);
    assert.deepEqual(best.joulesPerToken, c.metrics.joulesPerToken);
  });
});
