import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Aggregator } from '../../../aggregator/index.ts';
import type { WireMessage } from '../../../api/protocol.ts';
import { gpuWarnings, reportHtml } from '../../../report/html.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

/** The stream's window marks become counter step edges; its window samples run throttled at a low clock. */
function throttledAndAligned(msgs: WireMessage[]): WireMessage[] {
  return msgs.map((m) => {
    if (m.kind !== 'telemetry') return m;
    if (m.mark !== undefined) {
      const waitedMs = m.mark === 'windowStart' ? 60 : 20;
      return {
        ...m,
        samples: m.samples.map((s) => ({
          ...s,
          powerWatts: 300,
          tick: { aligned: true, uncertaintyMs: 2, waitedMs, periodMs: 100 },
        })),
      };
    }
    return {
      ...m,
      samples: m.samples.map((s) => ({ ...s, throttleReasons: 0x40, smClockMhz: 1200, temperatureC: 91 })),
    };
  });
}

describe('window conditions and tick alignment in results', () => {
  it('keeps throttle reasons, clock and temperature, and the tick summary, per GPU, across a checkpoint', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const run = plan.runs[0]!;
    const msgs = throttledAndAligned(replicaMessages(run, 0, plan.experimentUid, { seed: 2 }));
    const agg = new Aggregator(plan);
    msgs.forEach((m, i) => agg.apply(m, i + 1));
    const restored = Aggregator.restore(agg.checkpoint());
    for (const a of [agg, restored]) {
      const gpu = a.runResult(run.runId)?.gpus[0];
      assert.ok(gpu?.conditions !== null && gpu?.conditions !== undefined);
      // Every periodic window sample was throttled; the end mark (not throttled here) counts too.
      assert.ok(gpu.conditions.throttledSamples > 0 && gpu.conditions.throttledSamples === gpu.conditions.samples - 1);
      assert.deepEqual(gpu.conditions.throttleReasons, ['hardware thermal slowdown']);
      assert.equal(gpu.conditions.smClockMinMhz, 1200);
      assert.equal(gpu.conditions.temperatureMaxC, 91);
      const t = gpu.ticks;
      assert.ok(t !== null && t.aligned);
      assert.equal(t.edgeUncertaintyMs, 4);
      assert.equal(t.ticks, Math.round(((gpu.windowSeconds ?? 0) * 1000) / 100));
      // 300 W over 20 ms gained at the end, 60 ms lost at the start: 6 J - 18 J.
      assert.ok(Math.abs((t.residualJoules ?? NaN) - -12) < 1e-9, String(t.residualJoules));
    }
  });

  it('marks from an agent without tick alignment leave the tick summary null', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const run = plan.runs[0]!;
    const agg = new Aggregator(plan);
    replicaMessages(run, 0, plan.experimentUid, { seed: 2 }).forEach((m, i) => agg.apply(m, i + 1));
    assert.equal(agg.runResult(run.runId)?.gpus[0]?.ticks, null);
  });
});

describe('the report shows GPU warnings on top', () => {
  it('lists a throttled run under "GPU warnings", from the agent\'s warning or, without one, from the window conditions', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const run = plan.runs[0]!;
    const agg = new Aggregator(plan);
    throttledAndAligned(replicaMessages(run, 0, plan.experimentUid, { seed: 2 })).forEach((m, i) =>
      agg.apply(m, i + 1),
    );
    const results = agg.results();
    assert.deepEqual(
      gpuWarnings(results).map((w) => w.replace(/GPU \S+/, 'GPU x')),
      [
        `${run.runId}: GPU x throttled in ${results.runs[0]?.gpus[0]?.conditions?.throttledSamples} of ${results.runs[0]?.gpus[0]?.conditions?.samples} window samples (hardware thermal slowdown)`,
      ],
    );
    const html = reportHtml({
      title: 't',
      simulated: true,
      manifestPath: 'm.yaml',
      generatedAt: 'now',
      results,
      configLabels: {},
      cdfs: {},
      power: [],
      windows: [],
      environment: {},
    });
    assert.match(html, /<h2>GPU warnings<\/h2><ul class="warn"><li>[^<]*throttled in/);
    const plain = new Aggregator(plan);
    replicaMessages(run, 0, plan.experimentUid, { seed: 2 }).forEach((m, i) => plain.apply(m, i + 1));
    assert.doesNotMatch(
      reportHtml({
        title: 't',
        simulated: true,
        manifestPath: 'm.yaml',
        generatedAt: 'now',
        results: plain.results(),
        configLabels: {},
        cdfs: {},
        power: [],
        windows: [],
        environment: {},
      }),
      /GPU warnings/,
    );
  });
});
