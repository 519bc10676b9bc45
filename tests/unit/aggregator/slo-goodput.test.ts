// SLO attainment and goodput (agent/slo.ts counts per request, aggregator/slo.ts sums and divides;
// ADR 0030): the agent's slices, through the real aggregator, into goodput, attainment, J per SLO-met
// request and the configuration's percentile verdict.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Aggregator, sloResults, type SloResults } from '../../../aggregator/index.ts';
import { SliceRecorder } from '../../../agent/slices.ts';
import { requestMeetsSlo, type RequestSlo } from '../../../agent/slo.ts';
import type { RequestResult } from '../../../agent/load/client.ts';
import type { SketchMessage, SummaryMessage, WireMessage } from '../../../api/protocol.ts';
import { SloSchema, type SloSpec } from '../../../api/index.ts';
import { createLatencySketch } from '../../../lib/sketch/index.ts';
import { seededRandom } from '../../../api/random.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

function request(ttftMs: number | null, gaps: number[], ok = true): RequestResult {
  const e2e = (ttftMs ?? 0) + gaps.reduce((a, b) => a + b, 0);
  return {
    ok,
    ...(ok ? {} : { errorClass: 'timeout' as const }),
    startMs: 0,
    endMs: e2e,
    ttftMs,
    itlMs: gaps,
    e2eMs: e2e,
    tpotMs: gaps.length === 0 ? null : gaps.reduce((a, b) => a + b, 0) / gaps.length,
    inputTokens: 16,
    outputTokens: gaps.length + 1,
  };
}

/** A heavy tail: Pareto(alpha 1.2) TTFTs from 20 ms, so a few requests take seconds. */
function heavyTailed(n: number, seed: number): RequestResult[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const ttft = 20 / Math.pow(1 - random(), 1 / 1.2);
    const gaps = Array.from({ length: 15 }, () => 5 / Math.pow(1 - random(), 1 / 3));
    return request(ttft, gaps);
  });
}

/**
 * One run's messages from the shared test stream, with its sketch slices replaced by what the agent's
 * SliceRecorder makes of `requests` (spread over the slices) and the summary's counts made to match.
 */
function runWith(
  requests: RequestResult[],
  slo: RequestSlo | undefined,
): { plan: ReturnType<typeof makePlan>; messages: WireMessage[] } {
  const plan = makePlan({ configs: 1, cycles: 1 });
  const run = plan.runs[0]!;
  const base = replicaMessages(run, 0, plan.experimentUid, { seed: 5, slices: 4 });
  const sketches = base.filter((m): m is SketchMessage => m.kind === 'sketch');
  const per = Math.ceil(requests.length / sketches.length);
  const totals = { ok: 0, failed: 0, out: 0, in: 0 };
  const messages = base.map((m): WireMessage => {
    if (m.kind === 'sketch') {
      const rec = new SliceRecorder(createLatencySketch, m.sliceStartMs, slo);
      for (const r of requests.slice(m.slice * per, (m.slice + 1) * per)) {
        rec.addRequest(r);
        rec.addTokens(r.inputTokens, r.outputTokens);
      }
      const body = rec.cut(m.sliceEndMs);
      totals.ok += body.requestsOk;
      totals.failed += body.requestsFailed;
      totals.out += body.outputTokens;
      totals.in += body.inputTokens;
      return { ...m, ...body, slice: m.slice, sliceStartMs: m.sliceStartMs, sliceEndMs: m.sliceEndMs };
    }
    if (m.kind === 'summary') {
      const s: SummaryMessage = {
        ...m,
        requestsOk: totals.ok,
        requestsFailed: totals.failed,
        outputTokens: totals.out,
        inputTokens: totals.in,
      };
      return s;
    }
    return m;
  });
  return { plan, messages };
}

function evaluate(requests: RequestResult[], sloInput: unknown): { slo: SloResults; agg: Aggregator } {
  const spec: SloSpec = SloSchema.parse(sloInput);
  const { plan, messages } = runWith(requests, spec as RequestSlo);
  const agg = new Aggregator(plan);
  messages.forEach((m, i) => agg.apply(m, i + 1));
  const results = agg.results();
  return { slo: sloResults(spec, results, (id, m, q) => agg.runQuantile(id, m, q)), agg };
}

void describe('per-request SLO attainment', () => {
  void it('needs p% of a request’s own inter-token gaps within the target, counted in whole gaps', () => {
    const gaps = [...Array.from({ length: 98 }, () => 5), 50, 60];
    const r = request(10, gaps);
    assert.equal(requestMeetsSlo(r, { itlMs: { p: 99, ms: 20 } }), false, '98 of 100 gaps is below p99');
    assert.equal(requestMeetsSlo(r, { itlMs: { p: 98, ms: 20 } }), true);
    assert.equal(requestMeetsSlo(r, { itlMs: { p: 100, ms: 60 } }), true);
  });

  void it('never counts a failed request or one without a first token', () => {
    assert.equal(requestMeetsSlo(request(10, [1], false), { e2eMs: { p: 99, ms: 1e9 } }), false);
    assert.equal(requestMeetsSlo(request(null, []), { ttftMs: { p: 99, ms: 1e9 } }), false);
    assert.equal(requestMeetsSlo(request(null, []), { e2eMs: { p: 99, ms: 1e9 } }), true);
  });
});

void describe('goodput accounting', () => {
  void it('counts exactly the heavy-tailed requests that met every target, and judges the run by its percentile', () => {
    const requests = heavyTailed(400, 7);
    const target = { ttftMs: { p: 99, ms: 200 }, itlMs: { p: 90, ms: 12 } };
    const expected = requests.filter((r) => {
      const within = r.itlMs.filter((g) => g <= 12).length;
      return (r.ttftMs ?? Infinity) <= 200 && within >= Math.ceil(0.9 * r.itlMs.length);
    }).length;
    assert.ok(expected > 0 && expected < 400, `a mix of met and missed (${expected})`);
    const { slo, agg } = evaluate(requests, target);
    const run = slo.runs[0]!;
    const result = agg.results().runs[0]!;
    assert.equal(result.status, 'complete', result.reasons.join('; '));
    assert.equal(run.requestsSloMet, expected);
    assert.ok(Math.abs((run.attainmentPct ?? 0) - (100 * expected) / 400) < 1e-9);
    assert.ok(Math.abs((run.goodputRequestsPerSecond ?? 0) - expected / (result.metrics.windowSeconds ?? NaN)) < 1e-9);
    assert.ok(Math.abs((run.joulesPerSloMetRequest ?? 0) - (result.metrics.energyJoules ?? NaN) / expected) < 1e-9);
    // The 1% of TTFTs above ~930 ms (Pareto 1.2 from 20 ms) puts p99 far above 200 ms: the target breaks
    // although most requests met it.
    const exact = [...requests.map((r) => r.ttftMs ?? 0)].sort((a, b) => a - b)[Math.ceil(0.99 * 400) - 1]!;
    assert.ok(exact > 200);
    assert.ok(Math.abs((run.percentiles.ttftMs ?? 0) - exact) / exact < 0.05, 'the sketch percentile is within 5%');
    assert.equal(slo.configurations[0]!.meets, false);
    assert.match(slo.configurations[0]!.summary, /broken: ttftMs p99/);
    assert.equal(slo.choice.configId, null);
  });

  void it('gives zero goodput and no J per SLO-met request when every request failed', () => {
    const requests = Array.from({ length: 40 }, () => request(null, [], false));
    const { slo } = evaluate(requests, { ttftMs: { p: 99, ms: 200 } });
    const run = slo.runs[0]!;
    assert.equal(run.requestsSloMet, 0);
    assert.equal(run.goodputRequestsPerSecond, 0);
    assert.equal(run.attainmentPct, 0);
    assert.equal(run.joulesPerSloMetRequest, null);
    assert.match(run.missing['joulesPerSloMetRequest'] ?? '', /no request met the SLOs/);
    assert.notEqual(slo.configurations[0]!.meets, true);
  });

  void it('counts every request when all pass, and chooses that configuration', () => {
    const requests = Array.from({ length: 64 }, (_, i) =>
      request(
        30 + (i % 5),
        Array.from({ length: 10 }, () => 4),
      ),
    );
    const { slo, agg } = evaluate(requests, { ttftMs: { p: 99, ms: 200 }, e2eMs: { p: 50, ms: 500 } });
    const run = slo.runs[0]!;
    assert.equal(run.requestsSloMet, 64);
    assert.equal(run.attainmentPct, 100);
    assert.equal(slo.configurations[0]!.meets, true);
    assert.equal(slo.choice.configId, agg.results().configurations[0]!.configId);
    assert.match(slo.choice.statement, /It is the only one/);
  });

  void it('reports no SLO-met count, rather than zero, for an agent that sent none', () => {
    const requests = Array.from({ length: 16 }, () => request(30, [4, 4]));
    const spec = SloSchema.parse({ ttftMs: { p: 99, ms: 200 } });
    const { plan, messages } = runWith(requests, undefined);
    const agg = new Aggregator(plan);
    messages.forEach((m, i) => agg.apply(m, i + 1));
    const run = sloResults(spec, agg.results(), (id, m, q) => agg.runQuantile(id, m, q)).runs[0]!;
    assert.equal(run.requestsSloMet, null);
    assert.equal(run.goodputRequestsPerSecond, null);
    assert.match(run.missing['requestsSloMet'] ?? '', /no SLO-met count/);
  });
});
