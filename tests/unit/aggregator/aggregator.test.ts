import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TelemetryMessage, WireMessage } from '../../../api/protocol.ts';
import { Aggregator, type AggregatorPlan } from '../../../aggregator/index.ts';
import { CheckpointError, InvalidInputError } from '../../../lib/errors.ts';
import { experimentMessages, makePlan, replicaMessages } from '../../support/streams.ts';

function feed(agg: Aggregator, msgs: WireMessage[], from = agg.lastStreamSeq + 1): string[] {
  return msgs.map((m, i) => agg.apply(m, from + i).outcome);
}

function windowEnergyJoules(msgs: WireMessage[], gpuUuid: string): number {
  const at = (mark: string): number => {
    const t = msgs.find((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark === mark);
    return t?.samples.find((s) => s.gpuUuid === gpuUuid)?.energyMillijoules as number;
  };
  return (at('windowEnd') - at('windowStart')) / 1000;
}

const onePlan = (over: Partial<AggregatorPlan['runs'][number]> = {}): AggregatorPlan => {
  const plan = makePlan({ configs: 1, cycles: 1 });
  return { ...plan, runs: plan.runs.map((r) => ({ ...r, ...over })) };
};

void describe('Aggregator', () => {
  void it('reports a complete run with energy equal to the counter delta between the window marks', () => {
    const plan = makePlan({ configs: 1, cycles: 1, replicas: 2 });
    const msgs = experimentMessages(plan, { seed: 1, gpusPerReplica: 2 });
    const agg = new Aggregator(plan);
    assert.ok(feed(agg, msgs).every((o) => o === 'applied'));
    const run = agg.results().runs[0]!;
    assert.equal(run.status, 'complete', run.reasons.join('; '));
    assert.equal(run.gpus.length, 4);
    let expected = 0;
    for (const g of run.gpus) {
      const e = windowEnergyJoules(
        msgs.filter((m) => m.replica === g.replica),
        g.gpuUuid,
      );
      assert.ok(Math.abs((g.energyJoules as number) - e) < 1e-9);
      expected += e;
    }
    assert.ok(Math.abs((run.metrics.energyJoules as number) - expected) < 1e-6);
    assert.equal(run.metrics.joulesPerToken, (run.metrics.energyJoules as number) / run.counts.outputTokens);
    assert.equal(run.metrics.tokensPerJoule, run.counts.outputTokens / (run.metrics.energyJoules as number));
    const baseline = run.metrics.baselinePowerWatts as number;
    assert.ok(Math.abs(baseline - 4 * 70) < 1e-6, `baseline ${baseline}`);
    const win = run.metrics.windowSeconds as number;
    assert.ok(Math.abs((run.metrics.baselineSubtractedJoules as number) - (expected - baseline * win)) < 1e-6);
    assert.equal(run.simulated, true);
    assert.ok((run.latency.ttftMs.p99 as number) >= (run.latency.ttftMs.p50 as number));
    assert.equal(run.latency.ttftMs.count, run.counts.requestsOk);
  });

  void it('applies a re-sent message once and treats a redelivered stream sequence as a duplicate', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 2 });
    const once = new Aggregator(plan);
    feed(once, msgs);
    const twice = new Aggregator(plan);
    feed(twice, msgs.slice(0, 6));
    assert.equal(twice.apply(msgs[4]!, 100).outcome, 'duplicate');
    assert.equal(twice.apply(msgs[6]!, 50).outcome, 'duplicate', 'stream seq 50 is below the last seen (100)');
    feed(twice, msgs.slice(6), 101);
    const strip = (a: Aggregator): string => JSON.stringify({ ...a.results(), lastStreamSeq: 0 });
    assert.equal(strip(twice), strip(once));
  });

  void it('marks a run with a sequence gap incomplete and leaves it out of strict configuration results', () => {
    const plan = makePlan({ configs: 1, cycles: 2 });
    const msgs = experimentMessages(plan, { seed: 3 });
    const agg = new Aggregator(plan);
    const dropped = msgs.findIndex((m) => m.kind === 'sketch' && m.runId === 'c0-k1');
    feed(
      agg,
      msgs.filter((_, i) => i !== dropped),
    );
    const r = agg.results();
    assert.equal(r.runs[1]!.status, 'incomplete');
    assert.match(r.runs[1]!.reasons.join(' '), /messages missing/);
    assert.deepEqual(r.configurations[0]!.runsIncluded, ['c0-k0']);
    assert.equal(r.configurations[0]!.runsExcluded[0]!.runId, 'c0-k1');
    assert.equal(r.configurations[0]!.metrics.joulesPerToken.n, 1);
    assert.equal(r.experiment.runs.incomplete, 1);
  });

  void it('merges a finished run that lost a message under bestEffort and names it as partial', () => {
    const plan = makePlan({ configs: 1, cycles: 2, failurePolicy: 'bestEffort' });
    const msgs = experimentMessages(plan, { seed: 3 });
    const lost = msgs.find((m) => m.runId === 'c0-k1' && m.kind === 'sketch');
    const agg = new Aggregator(plan);
    feed(
      agg,
      msgs.filter((m) => m !== lost),
    );
    const c = agg.results().configurations[0]!;
    assert.equal(agg.results().runs.find((r) => r.runId === 'c0-k1')?.status, 'incomplete');
    assert.deepEqual(c.runsIncluded, ['c0-k0', 'c0-k1']);
    assert.deepEqual(c.partialRuns, ['c0-k1']);
  });

  void it('never merges a run still in flight (no summary) or an aborted one, even under bestEffort', () => {
    const plan = makePlan({ configs: 1, cycles: 3, failurePolicy: 'bestEffort' });
    const msgs = experimentMessages(plan, { seed: 3 });
    const agg = new Aggregator(plan);
    // c0-k1: everything but its summary (still running); c0-k2: cut short by an abort.
    const k2 = msgs.filter((m) => m.runId === 'c0-k2');
    const k2Cut = k2.slice(0, 6);
    const last = k2Cut[k2Cut.length - 1]!;
    const aborted = { ...last, kind: 'aborted' as const, seq: last.seq + 1, phase: 'measuring', reason: 'SIGTERM' };
    feed(agg, [
      ...msgs.filter((m) => m.runId === 'c0-k0'),
      ...msgs.filter((m) => m.runId === 'c0-k1' && m.kind !== 'summary'),
      ...k2Cut,
      aborted as (typeof msgs)[number],
    ]);
    const r = agg.results();
    assert.deepEqual(
      r.runs.map((x) => x.status),
      ['complete', 'incomplete', 'aborted'],
    );
    const c = r.configurations[0]!;
    assert.deepEqual(c.runsIncluded, ['c0-k0']);
    assert.deepEqual(c.partialRuns, []);
    assert.deepEqual(
      c.runsExcluded.map((x) => x.runId),
      ['c0-k1', 'c0-k2'],
    );
  });

  void it('ignores an older attempt and resets the run when a newer attempt starts', () => {
    const plan = onePlan();
    const run = plan.runs[0]!;
    const a0 = replicaMessages(run, 0, plan.experimentUid, { seed: 4, attempt: 0 });
    const a1 = replicaMessages(run, 0, plan.experimentUid, { seed: 5, attempt: 1 });
    const agg = new Aggregator(plan);
    feed(agg, a0.slice(0, 5));
    agg.startAttempt(run.runId, 1);
    feed(agg, a1);
    assert.ok(feed(agg, a0.slice(5)).every((o) => o === 'stale-attempt'));
    const only1 = new Aggregator(plan);
    only1.startAttempt(run.runId, 1);
    feed(only1, a1);
    const r = agg.results().runs[0]!;
    assert.equal(r.attempt, 1);
    assert.equal(r.status, 'complete');
    assert.deepEqual(r.metrics, only1.results().runs[0]!.metrics);
  });

  void it('reports an aborted run as aborted with the agent’s reason', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 6 }).slice(0, 4);
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    const base = msgs[3]!;
    agg.apply({ ...base, kind: 'aborted', seq: 5, phase: 'measuring', reason: 'SIGTERM' } as WireMessage, 99);
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'aborted');
    assert.match(r.reasons[0]!, /SIGTERM/);
    assert.equal(agg.results().configurations[0]!.runsIncluded.length, 0);
  });

  void it('integrates sampled power over a span where the energy counter went backwards, and says so', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 7, counterResetSlice: 2, samplesPerSlice: 4 });
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    const g = agg.results().runs[0]!.gpus[0]!;
    assert.ok(g.energyJoules !== null && g.energyJoules > 0);
    assert.ok(g.notes.some((n) => /reset or wrap/.test(n)));
    // Against an independent estimate: the mean sampled power times the window length.
    const truth = (g.sampledMeanPowerWatts as number) * (g.windowSeconds as number);
    assert.ok(Math.abs(g.energyJoules - truth) / truth < 0.1);
  });

  void it('gives null energy with a reason, not zero, when the counter is unavailable or a reset cannot be bridged', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 8 }).map((m) => {
      if (m.kind !== 'telemetry' || m.mark !== 'windowStart') return m;
      return {
        ...m,
        samples: m.samples.map((s) => ({
          ...s,
          energyMillijoules: null,
          unavailable: { energyMillijoules: 'NVML_ERROR_NOT_SUPPORTED' },
        })),
      };
    });
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    const r = agg.results().runs[0]!;
    assert.equal(r.metrics.energyJoules, null);
    assert.match(r.missing.energyJoules as string, /NVML_ERROR_NOT_SUPPORTED/);
    assert.equal(r.metrics.joulesPerToken, null);
    assert.ok(r.missing.joulesPerToken !== undefined);
    assert.ok(r.metrics.tokensPerSecond !== null, 'throughput does not depend on energy');

    const noPower = experimentMessages(plan, { seed: 9, counterResetSlice: 1, samplesPerSlice: 2 }).map((m) =>
      m.kind === 'telemetry' ? { ...m, samples: m.samples.map((s) => ({ ...s, powerWatts: null })) } : m,
    );
    const agg2 = new Aggregator(plan);
    feed(agg2, noPower);
    const r2 = agg2.results().runs[0]!;
    assert.equal(r2.metrics.energyJoules, null);
    assert.match(r2.missing.energyJoules as string, /no power samples cover/);
  });

  void it('rejects messages of other experiments, unknown runs, extra replicas and undecodable sketches', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 10 });
    const agg = new Aggregator(plan);
    assert.equal(agg.apply({ ...msgs[0]!, experimentUid: 'other' }, 1).outcome, 'rejected');
    assert.equal(agg.apply({ ...msgs[0]!, runId: 'nope' }, 2).outcome, 'rejected');
    assert.equal(agg.apply({ ...msgs[0]!, replica: 3 }, 3).outcome, 'rejected');
    const bad = msgs.map((m) =>
      m.kind === 'sketch' && m.slice === 1 ? { ...m, sketches: { ...m.sketches, ttftMs: 'AAAA' } } : m,
    );
    const outcomes = feed(agg, bad);
    assert.equal(outcomes.filter((o) => o === 'rejected').length, 1);
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /could not be decoded/);
  });

  void it('marks a run incomplete when an agent ran a different configuration than planned', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 14 }).map((m) =>
      m.kind === 'hello' ? { ...m, environment: { ...m.environment, configHash: 'something-else' } } : m,
    );
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /configuration hash something-else/);
  });

  void it('refuses a plan with duplicate run ids', () => {
    const plan = onePlan();
    assert.throws(() => new Aggregator({ ...plan, runs: [...plan.runs, ...plan.runs] }), InvalidInputError);
  });

  void it('computes mean, std and a Student-t 95% interval across cycles per configuration', () => {
    const plan = makePlan({ configs: 2, cycles: 3 });
    const agg = new Aggregator(plan);
    feed(agg, experimentMessages(plan, { seed: 12 }));
    const res = agg.results();
    const c0 = res.configurations[0]!;
    const values = res.runs.filter((r) => r.configId === 'c0').map((r) => r.metrics.joulesPerToken as number);
    const mean = values.reduce((a, b) => a + b, 0) / 3;
    const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / 2);
    const s = c0.metrics.joulesPerToken;
    assert.ok(Math.abs((s.mean as number) - mean) < 1e-12);
    assert.ok(Math.abs((s.std as number) - std) < 1e-12);
    assert.ok(Math.abs((s.ci95High as number) - (mean + (4.302652729911275 * std) / Math.sqrt(3))) < 1e-9);
    assert.equal(res.experiment.configurations, 2);
    assert.ok(res.experiment.bestConfiguration !== null);
    const best = Math.min(...res.configurations.map((c) => c.metrics.joulesPerToken.mean as number));
    assert.equal(res.experiment.bestConfiguration.joulesPerTokenMean, best);
  });

  void it('restores a checkpoint into byte-identical results and refuses unknown versions', () => {
    const plan = makePlan({ configs: 1, cycles: 2, replicas: 2 });
    const msgs = experimentMessages(plan, { seed: 13 });
    const straight = new Aggregator(plan);
    feed(straight, msgs);
    const first = new Aggregator(plan);
    const cut = Math.floor(msgs.length / 2);
    feed(first, msgs.slice(0, cut));
    const resumed = Aggregator.restore(first.checkpoint());
    assert.equal(resumed.lastStreamSeq, cut);
    feed(resumed, msgs.slice(cut));
    assert.equal(resumed.resultsJson(), straight.resultsJson());
    const text = new TextDecoder().decode(first.checkpoint()).replace('"version":2', '"version":3');
    assert.throws(() => Aggregator.restore(new TextEncoder().encode(text)), CheckpointError);
    assert.throws(() => Aggregator.restore(new Uint8Array([0xff, 0xfe])), CheckpointError);
  });
});
