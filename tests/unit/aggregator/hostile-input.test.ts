// Plausibility at the door (issue #17 item 2): readings a broken or hostile agent can send, each
// fed straight to the Aggregator (as a caller that skipped decodeMessage would), and what must
// come out: the run incomplete or failed with a sentence saying why, never merged, never "best".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SummaryMessage, TelemetryMessage, WireMessage } from '../../../api/protocol.ts';
import { Aggregator, type AggregatorPlan } from '../../../aggregator/index.ts';
import { experimentMessages, makePlan, replicaMessages } from '../../support/streams.ts';

function feed(agg: Aggregator, msgs: WireMessage[]): string[] {
  const from = agg.lastStreamSeq + 1;
  return msgs.map((m, i) => agg.apply(m, from + i).outcome);
}

const onePlan = (): AggregatorPlan => makePlan({ configs: 1, cycles: 1 });

function mapTelemetry(msgs: WireMessage[], f: (m: TelemetryMessage, index: number) => TelemetryMessage): WireMessage[] {
  let i = 0;
  return msgs.map((m) => (m.kind === 'telemetry' ? f(m, i++) : m));
}

function markTime(msgs: WireMessage[], mark: string): number {
  const t = msgs.find((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark === mark);
  return t?.samples[0]?.tMs as number;
}

void describe('plausibility at the door', () => {
  void it('never picks as best a configuration whose counter reset came with negative power samples', () => {
    const plan = makePlan({ configs: 2, cycles: 1 });
    const good = replicaMessages(plan.runs[0]!, 0, plan.experimentUid, { seed: 1, samplesPerSlice: 4 });
    // c1: the counter resets mid-window and the power samples bridging it are negative: before
    // the fix the span integrated to a large negative energy and c1 "won" with negative J/token.
    const bad = mapTelemetry(
      replicaMessages(plan.runs[1]!, 0, plan.experimentUid, { seed: 2, samplesPerSlice: 4, counterResetSlice: 2 }),
      (t) => (t.phase === 'measuring' ? { ...t, samples: t.samples.map((s) => ({ ...s, powerWatts: -50_000 })) } : t),
    );
    const agg = new Aggregator(plan);
    const outcomes = feed(agg, [...good, ...bad]);
    assert.ok(outcomes.includes('rejected'), 'negative power is refused');
    const r = agg.results();
    const c1 = r.runs.find((x) => x.runId === 'c1-k0')!;
    assert.equal(c1.status, 'incomplete');
    assert.equal(c1.inputRejected, true);
    assert.match(c1.reasons.join(' '), /wire schema.*powerWatts/s);
    assert.equal(r.experiment.bestConfiguration?.configId, 'c0');
    assert.ok(r.runs.every((x) => x.metrics.energyJoules === null || x.metrics.energyJoules > 0));
  });

  void it('refuses NaN, Infinity and negative energy readings handed to apply() directly', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      const plan = onePlan();
      const msgs = mapTelemetry(experimentMessages(plan, { seed: 3 }), (t, i) =>
        i === 3 ? { ...t, samples: t.samples.map((s) => ({ ...s, energyMillijoules: bad })) } : t,
      );
      const agg = new Aggregator(plan);
      assert.equal(feed(agg, msgs).filter((o) => o === 'rejected').length, 1, String(bad));
      const run = agg.results().runs[0]!;
      assert.equal(run.status, 'incomplete', String(bad));
      assert.match(run.reasons.join(' '), /energyMillijoules/);
      assert.deepEqual(agg.results().configurations[0]!.runsIncluded, []);
    }
  });

  void it('refuses a counter jump of 1e15 mJ (2e11 W on a 700 W card) instead of reporting it complete', () => {
    const plan = onePlan();
    const msgs = mapTelemetry(experimentMessages(plan, { seed: 4 }), (t, i) =>
      i >= 4
        ? { ...t, samples: t.samples.map((s) => ({ ...s, energyMillijoules: (s.energyMillijoules as number) + 1e15 })) }
        : t,
    );
    const agg = new Aggregator(plan);
    assert.ok(
      feed(agg, msgs).every((o) => o === 'applied'),
      'each reading is well-formed on its own',
    );
    const run = agg.results().runs[0]!;
    assert.equal(run.status, 'incomplete');
    assert.equal(run.inputRejected, true);
    assert.equal(run.metrics.energyJoules, null);
    assert.match(
      run.missing.energyJoules as string,
      /implies \d+ W, above the plausible 1050 W \(1.5 x its 700 W power limit\)/,
    );
    assert.match(run.reasons.join(' '), /energy counter jump/);
    assert.equal(agg.results().experiment.bestConfiguration, null);
  });

  void it('bounds counter-implied power by an absolute ceiling when the GPU reports no power limit', () => {
    const plan = onePlan();
    const base = experimentMessages(plan, { seed: 5 }).map((m) =>
      m.kind === 'hello'
        ? {
            ...m,
            environment: { ...m.environment, gpus: m.environment.gpus.map((g) => ({ ...g, powerLimitWatts: null })) },
          }
        : m,
    );
    const ok = new Aggregator(plan);
    feed(ok, base);
    assert.equal(ok.results().runs[0]!.status, 'complete', 'a real ~500 W window passes the ceiling');
    // 3 kW sustained over a 1 s slice: over the 2000 W ceiling.
    const jump = mapTelemetry(base, (t, i) =>
      i >= 4
        ? {
            ...t,
            samples: t.samples.map((s) => ({ ...s, energyMillijoules: (s.energyMillijoules as number) + 3_000_000 })),
          }
        : t,
    );
    const agg = new Aggregator(plan);
    feed(agg, jump);
    assert.match(agg.results().runs[0]!.reasons.join(' '), /above the plausible 2000 W \(absolute ceiling/);
  });

  void it('refuses two replicas reporting the same GPU UUID (a shared GPU) instead of counting it twice', () => {
    const plan = makePlan({ configs: 1, cycles: 1, replicas: 2 });
    const run = plan.runs[0]!;
    const r1 = replicaMessages(run, 1, plan.experimentUid, { seed: 6 });
    const uuid0 = 'GPU-c0-k0-r0-0';
    const shared = r1.map((m) => {
      if (m.kind === 'hello')
        return {
          ...m,
          environment: { ...m.environment, gpus: m.environment.gpus.map((g) => ({ ...g, uuid: uuid0 })) },
        };
      if (m.kind === 'telemetry') return { ...m, samples: m.samples.map((s) => ({ ...s, gpuUuid: uuid0 })) };
      return m;
    });
    const agg = new Aggregator(plan);
    feed(agg, [...replicaMessages(run, 0, plan.experimentUid, { seed: 6 }), ...shared]);
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /GPU GPU-c0-k0-r0-0 is reported by replicas 0 and 1: a shared GPU/);
    assert.deepEqual(agg.results().configurations[0]!.runsIncluded, []);
  });

  void it('refuses a summary whose window ends before it starts; windowSeconds is never negative', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 7 }).map((m) =>
      m.kind === 'summary'
        ? ({ ...m, windowStartMs: m.windowEndMs, windowEndMs: m.windowStartMs } satisfies SummaryMessage)
        : m,
    );
    const agg = new Aggregator(plan);
    assert.equal(feed(agg, msgs).at(-1), 'rejected');
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /windowEndMs precedes windowStartMs/);
    assert.ok(r.metrics.windowSeconds === null || r.metrics.windowSeconds > 0);
  });

  void it('counts the energy across a wall-clock step back at the window end, and flags the window', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const msgs = experimentMessages(plan, { seed: 8, slices: 20, samplesPerSlice: 1 });
    const start = msgs.find((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark === 'windowStart')!
      .samples[0]!;
    const end = msgs.find((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark === 'windowEnd')!.samples[0]!;
    const truthJ = ((end.energyMillijoules as number) - (start.energyMillijoules as number)) / 1000;
    // NTP steps the clock back 1.5 s just before the windowEnd reading: 500 ms behind the last reading.
    const stepped = mapTelemetry(msgs, (t) =>
      t.mark === 'windowEnd' ? { ...t, samples: t.samples.map((s) => ({ ...s, tMs: s.tMs - 1500 })) } : t,
    );
    assert.ok(markTime(stepped, 'windowEnd') > markTime(stepped, 'windowStart'));
    const agg = new Aggregator(plan);
    feed(agg, stepped);
    const r = agg.results().runs[0]!;
    assert.ok(
      Math.abs((r.gpus[0]!.energyJoules as number) - truthJ) < 1e-9,
      `${r.gpus[0]!.energyJoules} J vs ${truthJ} J`,
    );
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /wall clock stepped back 500 ms before the windowEnd mark/);
  });

  void it('marks a run in which every request failed as failed, and leaves it out of statistics', () => {
    const plan = makePlan({ configs: 1, cycles: 2 });
    const run = plan.runs[1]!;
    const failing = replicaMessages(run, 0, plan.experimentUid, { seed: 9 }).map((m) => {
      if (m.kind === 'sketch')
        return {
          ...m,
          requestsOk: 0,
          requestsFailed: 8,
          errorClasses: { http_5xx: 8 },
          inputTokens: 0,
          outputTokens: 0,
          sketches: {},
        };
      if (m.kind === 'summary') return { ...m, requestsOk: 0, requestsFailed: 40, inputTokens: 0, outputTokens: 0 };
      return m;
    });
    const agg = new Aggregator(plan);
    feed(agg, [...replicaMessages(plan.runs[0]!, 0, plan.experimentUid, { seed: 9 }), ...failing]);
    const res = agg.results();
    const r = res.runs[1]!;
    assert.equal(r.status, 'failed');
    assert.match(r.reasons[0]!, /every request failed \(40: http_5xx 40\)/);
    assert.deepEqual(res.configurations[0]!.runsIncluded, ['c0-k0']);
    assert.equal(res.experiment.runs.failed, 1);
    assert.equal(res.configurations[0]!.metrics.joulesPerToken.n, 1);
  });

  void it('never merges a finished run with rejected input, even under bestEffort', () => {
    const plan = makePlan({ configs: 1, cycles: 2, failurePolicy: 'bestEffort' });
    const msgs = experimentMessages(plan, { seed: 10 }).map((m) =>
      m.kind === 'sketch' && m.runId === 'c0-k1' && m.slice === 1
        ? { ...m, sketches: { ...m.sketches, ttftMs: 'AAAA' } }
        : m,
    );
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    const c = agg.results().configurations[0]!;
    assert.deepEqual(c.runsIncluded, ['c0-k0']);
    assert.deepEqual(c.partialRuns, []);
    assert.equal(agg.results().runs[1]!.inputRejected, true);
  });

  void it('records a message for a replica outside the plan against the run', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 11 });
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    assert.equal(agg.results().runs[0]!.status, 'complete');
    assert.equal(agg.apply({ ...msgs[1]!, replica: 5, seq: 1 }, agg.lastStreamSeq + 1).outcome, 'rejected');
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /replica 5 is outside the 1 planned/);
  });

  void it('refuses telemetry naming more GPUs than a replica can have, instead of growing the state', () => {
    const plan = onePlan();
    const msgs = experimentMessages(plan, { seed: 12 });
    const agg = new Aggregator(plan);
    feed(agg, msgs);
    const t = msgs.find((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark === undefined)!;
    const flood = {
      ...t,
      seq: 999,
      samples: Array.from({ length: 5000 }, (_, i) => ({ ...t.samples[0]!, gpuUuid: `GPU-flood-${i}` })),
    };
    assert.equal(agg.apply(flood, agg.lastStreamSeq + 1).outcome, 'rejected');
    const r = agg.results().runs[0]!;
    assert.equal(r.gpus.length, 1);
    assert.match(r.reasons.join(' '), /would report 5001 GPUs, more than the 64/);
  });

  void it('refuses a message that is not an object at all, without throwing', () => {
    const agg = new Aggregator(onePlan());
    for (const [i, junk] of [null, 42, 'hello', []].entries()) {
      assert.equal(agg.apply(junk as unknown as WireMessage, i + 1).outcome, 'rejected');
    }
  });
});
