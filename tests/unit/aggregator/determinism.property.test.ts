// Property: for random message streams (duplicates, gaps, reordering within a run, stale and
// newer attempts) and checkpoint/restores at random points, the final results are
// byte-identical to an uninterrupted aggregator fed the same messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { WireMessage } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { experimentMessages, makePlan, replicaMessages } from '../../support/streams.ts';

type Fault = { kind: 'duplicate' | 'drop' | 'swap' | 'stale' | 'retry'; at: number };
/** The runtime starting a retry: part of the input, so it is replayed in the same order. */
type Start = { start: string; attempt: number };
type Event = WireMessage | Start;

function applyFaults(base: WireMessage[], faults: Fault[], plan: ReturnType<typeof makePlan>, seed: number): Event[] {
  const out: Event[] = [...base];
  for (const f of faults) {
    const i = f.at % out.length;
    const m = out[i]!;
    if ('start' in m) continue;
    if (f.kind === 'duplicate') out.splice(i + 1, 0, m);
    else if (f.kind === 'drop') out.splice(i, 1);
    else if (f.kind === 'swap' && i + 1 < out.length) [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
    else if (f.kind === 'stale') out.splice(i, 0, { ...m, attempt: Math.max(0, m.attempt - 1) });
    else if (f.kind === 'retry') {
      const run = plan.runs.find((r) => r.runId === m.runId)!;
      const retry = replicaMessages(run, 0, plan.experimentUid, {
        seed,
        attempt: m.attempt + 1,
        slices: 2,
        requestsPerSlice: 3,
      });
      out.splice(i, 0, { start: m.runId, attempt: m.attempt + 1 }, ...retry);
    }
  }
  return out;
}

function feed(agg: Aggregator, msgs: Event[], firstStreamSeq: number): void {
  msgs.forEach((m, i) => {
    if ('start' in m) agg.startAttempt(m.start, m.attempt);
    else agg.apply(m, firstStreamSeq + i);
  });
}

const faultArb = fc.record({
  kind: fc.constantFrom('duplicate', 'drop', 'swap', 'stale', 'retry'),
  at: fc.nat(10_000),
}) as fc.Arbitrary<Fault>;

/** The arbitraries of an experiment's shape and its stream's faults; each property adds its own after them. */
const scenarioFields = (maxConfigs: number) =>
  ({
    seed: fc.integer({ min: 1, max: 1_000_000 }),
    configs: fc.integer({ min: 1, max: maxConfigs }),
    cycles: fc.integer({ min: 1, max: 3 }),
    replicas: fc.integer({ min: 1, max: 2 }),
    policy: fc.constantFrom('strict' as const, 'bestEffort' as const),
    faults: fc.array(faultArb, { maxLength: 6 }),
  }) as const;

type Shape = { configs: number; cycles: number; replicas: number; policy: 'strict' | 'bestEffort' };
const planOf = (p: Shape): ReturnType<typeof makePlan> =>
  makePlan({ configs: p.configs, cycles: p.cycles, replicas: p.replicas, failurePolicy: p.policy });

/** Random points in a stream of n events: distinct, in stream order. */
const pointsIn = (xs: number[], n: number): number[] => [...new Set(xs.map((c) => c % (n + 1)))].sort((a, b) => a - b);

void describe('aggregator determinism', () => {
  void it('gives byte-identical results with or without a checkpoint/restore at a random point', () => {
    fc.assert(
      fc.property(
        fc.record({
          ...scenarioFields(2),
          cuts: fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 4 }),
          readsBeforeCut: fc.boolean(),
        }),
        (p) => {
          const plan = planOf(p);
          // Enough tokens per slice that the ITL sketches compress and flush: a restore that lost the
          // buffered state would then change the results.
          const base = experimentMessages(plan, {
            seed: p.seed,
            slices: 4,
            requestsPerSlice: 20,
            outputTokensPerRequest: 24,
          });
          const msgs = applyFaults(base, p.faults, plan, p.seed);
          const straight = new Aggregator(plan);
          feed(straight, msgs, 1);
          const twin = new Aggregator(plan);
          feed(twin, msgs, 1);
          assert.equal(twin.resultsJson(), straight.resultsJson(), 'same messages, same results');

          // One or more checkpoint/restore points, in stream order.
          let agg = new Aggregator(plan);
          let done = 0;
          for (const cut of pointsIn(p.cuts, msgs.length)) {
            feed(agg, msgs.slice(done, cut), done + 1);
            done = cut;
            if (p.readsBeforeCut) agg.results();
            const bytes = agg.checkpoint();
            agg = Aggregator.restore(bytes);
            assert.deepEqual(agg.checkpoint(), bytes, 'checkpoint of a restored aggregator is the same bytes');
          }
          feed(agg, msgs.slice(done), done + 1);
          assert.equal(agg.resultsJson(), straight.resultsJson());
        },
      ),
      { numRuns: 20, seed: 20261130 },
    );
  });

  void it('gives results and verdicts read between messages (kept where unchanged) equal to a fresh one', () => {
    fc.assert(
      fc.property(
        fc.record({
          ...scenarioFields(3),
          reads: fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 8 }),
        }),
        (p) => {
          const plan = planOf(p);
          const base = experimentMessages(plan, { seed: p.seed, slices: 3, requestsPerSlice: 10 });
          const msgs = applyFaults(base, p.faults, plan, p.seed);
          const incremental = new Aggregator(plan);
          let done = 0;
          for (const at of pointsIn(p.reads, msgs.length)) {
            feed(incremental, msgs.slice(done, at), done + 1);
            done = at;
            const fresh = new Aggregator(plan);
            feed(fresh, msgs.slice(0, at), 1);
            assert.equal(JSON.stringify(incremental.results()), fresh.resultsJson(), `results after ${at} messages`);
            // Verdicts are kept per run until a message touches it: the same as a fresh aggregator's.
            for (const r of plan.runs)
              assert.deepEqual(incremental.runVerdict(r.runId), fresh.runVerdict(r.runId), `${r.runId} after ${at}`);
          }
          feed(incremental, msgs.slice(done), done + 1);
          const fresh = new Aggregator(plan);
          feed(fresh, msgs, 1);
          assert.equal(incremental.resultsJson(), fresh.resultsJson());
        },
      ),
      { numRuns: 30, seed: 20261206 },
    );
  });
});
