import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Aggregator } from '../../../aggregator/index.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

describe('reading one run and pooled CDFs', () => {
  it('runResult(id) equals that run in results(), and a CDF is monotonic over the included runs', () => {
    const plan = makePlan({ configs: 2, cycles: 2 });
    const agg = new Aggregator(plan);
    let seq = 0;
    for (const run of plan.runs)
      for (const m of replicaMessages(run, 0, plan.experimentUid, { seed: 3 })) agg.apply(m, ++seq);
    const all = agg.results();
    for (const r of all.runs) assert.deepEqual(agg.runResult(r.runId), r);
    assert.equal(agg.runResult('no-such-run'), null);
    const config = all.configurations[0]!;
    const cdf = agg.latencyCdf(config.runsIncluded, 'ttftMs');
    assert.equal(cdf.length, 51);
    for (let i = 1; i < cdf.length; i += 1) {
      assert.ok(cdf[i]![0] >= cdf[i - 1]![0] && cdf[i]![1] > cdf[i - 1]![1]);
    }
    assert.ok(
      Math.abs(cdf[25]![0] - (config.latencyPooled.ttftMs.p50 ?? NaN)) < 1e-9,
      'the CDF agrees with the pooled p50',
    );
    assert.deepEqual(agg.latencyCdf([], 'ttftMs'), []);
  });
});

describe('backend-native metrics', () => {
  it("carries each replica's backend metrics from its summary into the run result, across a checkpoint", () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const run = plan.runs[0]!;
    const backendMetrics = {
      backend: 'vllm',
      source: 'vllm-prometheus',
      metrics: {
        preemptions: { value: 3, unit: 'count', reason: null },
        kvCacheUsageMaxFraction: { value: null, unit: 'fraction', reason: 'not exported' },
      },
    };
    const msgs = replicaMessages(run, 0, plan.experimentUid, { seed: 1 }).map((m) =>
      m.kind === 'summary' ? { ...m, backendMetrics } : m,
    );
    const agg = new Aggregator(plan);
    msgs.forEach((m, i) => agg.apply(m, i + 1));
    const restored = Aggregator.restore(agg.checkpoint());
    for (const a of [agg, restored])
      assert.deepEqual(a.runResult(run.runId)?.backendMetrics, [{ replica: 0, ...backendMetrics }]);
    assert.equal(agg.runResult(run.runId)?.status, 'complete');
  });
});
