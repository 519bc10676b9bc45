import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WireMessage } from '../../../api/protocol.ts';
import type { RunSummary } from '../../../api/status.ts';
import { measurementWeaknesses, statusMetrics, withAggregatorRunMetrics } from '../../../controller/aggregate-view.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { bestConfiguration, decidePhase, stat } from '../../../controller/status.ts';
import { experimentMessages, makePlan } from '../../support/streams.ts';

function aggregate(cycles: number): Aggregator {
  const plan = makePlan({ configs: 1, cycles });
  const agg = new Aggregator(plan);
  experimentMessages(plan, { seed: 9 }).forEach((m: WireMessage, i) => agg.apply(m, i + 1));
  return agg;
}

void test('one cycle has a mean but no spread: std and the 95% interval are absent, never zero-width', () => {
  assert.deepEqual(stat([2]), { n: 1, mean: 2, flags: ['fewCycles'] });
  const two = stat([1, 3]);
  assert.ok(two.ci95Low !== undefined && two.ci95High !== undefined && two.ci95Low < 1 && two.ci95High > 3);
  const one = statusMetrics(aggregate(1).results()).get('c0')?.['joulesPerToken'];
  assert.ok(one !== undefined && one.n === 1 && Number.isFinite(one.mean));
  assert.deepEqual(Object.keys(one).sort(), ['flags', 'mean', 'n']);
  const best = bestConfiguration([
    { id: 'c0', backend: 'b', configHash: 'h', point: {}, cyclesSucceeded: 1, metrics: { joulesPerToken: one } },
  ]);
  assert.equal(best?.ci95Low, undefined);
  const three = statusMetrics(aggregate(3).results()).get('c0')?.['joulesPerToken'];
  assert.ok(three?.ci95Low !== undefined && three.ci95Low < three.mean && (three.ci95High ?? 0) > three.mean);
});

void test("status.runs[].joulesPerToken is the Aggregator's run figure; a ledger value is never kept", () => {
  const results = aggregate(2).results();
  const fromAgg = results.runs.find((r) => r.runId === 'c0-k0')?.metrics.joulesPerToken;
  assert.ok(typeof fromAgg === 'number');
  const runs: RunSummary[] = [
    { id: 'c0-k0', configurationId: 'c0', cycle: 0, phase: 'Succeeded', attempt: 0, joulesPerToken: 123 },
    { id: 'c0-k1', configurationId: 'c0', cycle: 1, phase: 'Running', attempt: 0, joulesPerToken: 7 },
    { id: 'elsewhere', configurationId: 'c0', cycle: 2, phase: 'Succeeded', attempt: 0, joulesPerToken: 9 },
  ];
  const out = withAggregatorRunMetrics(runs, results);
  assert.equal(out[0]?.joulesPerToken, Number(fromAgg.toPrecision(6)));
  assert.equal(out[1]?.joulesPerToken, undefined, 'a running run has no J/token yet');
  assert.equal(out[2]?.joulesPerToken, undefined, 'the Aggregator has no figure for it: none is shown');
  assert.deepEqual(
    withAggregatorRunMetrics(runs, null).map((r) => r.joulesPerToken),
    [undefined, undefined, undefined],
  );
});

void test('Degraded names the most serious weakness: retrying, then messages lost, then short windows, then simulated', () => {
  const runs: RunSummary[] = [{ id: 'r', configurationId: 'c', cycle: 0, phase: 'Succeeded', attempt: 0 }];
  const reason = (o: Partial<Parameters<typeof decidePhase>[1]>): string | undefined =>
    decidePhase(runs, { suspended: false, strict: true, simulated: false, retrying: 0, ...o }).updates.find(
      (u) => u.type === 'Degraded',
    )?.reason;
  assert.equal(reason({}), 'AsExpected');
  assert.equal(reason({ simulated: true }), 'Simulated');
  assert.equal(reason({ simulated: true, shortWindows: 2 }), 'ShortWindow');
  assert.equal(reason({ simulated: true, clientSaturated: 1 }), 'ClientSaturated');
  assert.equal(reason({ shortWindows: 1, clientSaturated: 1 }), 'ShortWindow');
  assert.equal(reason({ shortWindows: 2, partialRuns: 1 }), 'MessagesLost');
  assert.equal(reason({ partialRuns: 1, retrying: 1 }), 'Retrying');
});

void test('weaknesses come from the Aggregator: windows under 5 s and partial runs are counted', () => {
  const weaknesses = (o: { slices: number; sliceMs: number }): ReturnType<typeof measurementWeaknesses> => {
    const plan = makePlan({ configs: 1, cycles: 2, failurePolicy: 'bestEffort' });
    const msgs = experimentMessages(plan, { seed: 4, ...o });
    const agg = new Aggregator(plan);
    const lost = msgs.find((m) => m.runId === 'c0-k1' && m.kind === 'sketch');
    msgs.filter((m) => m !== lost).forEach((m, i) => agg.apply(m, i + 1));
    return measurementWeaknesses(agg.results());
  };
  assert.deepEqual(weaknesses({ slices: 4, sliceMs: 500 }), { partialRuns: 1, shortWindows: 2, clientSaturated: 0 });
  assert.deepEqual(weaknesses({ slices: 12, sliceMs: 1000 }), { partialRuns: 1, shortWindows: 0, clientSaturated: 0 });
  assert.deepEqual(measurementWeaknesses(null), { partialRuns: 0, shortWindows: 0, clientSaturated: 0 });
  // Under strict the run that lost a message is excluded: its short window weakens nothing reported.
  const plan = makePlan({ configs: 1, cycles: 2, failurePolicy: 'strict' });
  const msgs = experimentMessages(plan, { seed: 4, slices: 4, sliceMs: 500 });
  const agg = new Aggregator(plan);
  const lost = msgs.find((m) => m.runId === 'c0-k1' && m.kind === 'sketch');
  msgs.filter((m) => m !== lost).forEach((m, i) => agg.apply(m, i + 1));
  assert.deepEqual(measurementWeaknesses(agg.results()), { partialRuns: 0, shortWindows: 1, clientSaturated: 0 });
});

void test("a failed experiment's Failed condition quotes why its first failed run failed (the image it could not pull)", () => {
  const runs = [
    {
      id: 'r0',
      configurationId: 'c0',
      cycle: 0,
      phase: 'Failed',
      attempt: 0,
      message: 'Attempt 0 failed: ErrImagePull: Pod p: backend: failed to pull image "localhost/nope:0"',
    },
    {
      id: 'r1',
      configurationId: 'c0',
      cycle: 1,
      phase: 'Failed',
      attempt: 0,
      message: 'Attempt 0 failed: ErrImagePull: again',
    },
  ] as RunSummary[];
  const failed = decidePhase(runs, { suspended: false, strict: true, simulated: false, retrying: 0 }).updates.find(
    (u) => u.type === 'Failed',
  );
  assert.equal(failed?.status, 'True');
  assert.match(
    failed?.message ?? '',
    /2 of 2 run\(s\) failed.*First: Attempt 0 failed: ErrImagePull: .*"localhost\/nope:0"/,
  );
});
