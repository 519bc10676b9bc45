// Property: for random message streams (duplicates, gaps, reordering within a run, stale and
// newer attempts) and a checkpoint/restore at a random point, the final results are
// byte-identical to an uninterrupted aggregator fed the same messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { WireMessage } from '../../../api/protocol.ts';
import { Aggregator } from '../../../controller/aggregator/index.ts';
import { experimentMessages, makePlan, replicaMessages } from '../../support/streams.ts';

type Fault = { kind: 'duplicate' | 'drop' | 'swap' | 'stale' | 'retry'; at: number };

function applyFaults(base: WireMessage[], faults: Fault[], plan: ReturnType<typeof makePlan>, seed: number): WireMessage[] {
  const out = [...base];
  for (const f of faults) {
    const i = f.at % out.length;
    const m = out[i]!;
    if (f.kind === 'duplicate') out.splice(i + 1, 0, m);
    else if (f.kind === 'drop') out.splice(i, 1);
    else if (f.kind === 'swap' && i + 1 < out.length) [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
    else if (f.kind === 'stale') out.splice(i, 0, { ...m, attempt: Math.max(0, m.attempt - 1) });
    else if (f.kind === 'retry') {
      const run = plan.runs.find((r) => r.runId === m.runId)!;
      out.splice(i, 0, ...replicaMessages(run, 0, plan.experimentUid, { seed, attempt: m.attempt + 1, slices: 2, requestsPerSlice: 3 }));
    }
  }
  return out;
}

function feed(agg: Aggregator, msgs: WireMessage[], firstStreamSeq: number): void {
  msgs.forEach((m, i) => agg.apply(m, firstStreamSeq + i));
}

describe('aggregator determinism', () => {
  it('gives byte-identical results with or without a checkpoint/restore at a random point', () => {
    const faultArb = fc.record({ kind: fc.constantFrom('duplicate', 'drop', 'swap', 'stale', 'retry'), at: fc.nat(10_000) }) as fc.Arbitrary<Fault>;
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer({ min: 1, max: 1_000_000 }),
          configs: fc.integer({ min: 1, max: 2 }),
          cycles: fc.integer({ min: 1, max: 3 }),
          replicas: fc.integer({ min: 1, max: 2 }),
          policy: fc.constantFrom('strict' as const, 'bestEffort' as const),
          faults: fc.array(faultArb, { maxLength: 6 }),
          cut: fc.double({ min: 0, max: 1, noNaN: true }),
          readsBeforeCut: fc.boolean(),
        }),
        (p) => {
          const plan = makePlan({ configs: p.configs, cycles: p.cycles, replicas: p.replicas, failurePolicy: p.policy });
          const base = experimentMessages(plan, { seed: p.seed, slices: 3, requestsPerSlice: 3 });
          const msgs = applyFaults(base, p.faults, plan, p.seed);
          const straight = new Aggregator(plan);
          feed(straight, msgs, 1);
          const twin = new Aggregator(plan);
          feed(twin, msgs, 1);
          assert.equal(twin.resultsJson(), straight.resultsJson(), 'same messages, same results');

          const cut = Math.floor(p.cut * msgs.length);
          const before = new Aggregator(plan);
          feed(before, msgs.slice(0, cut), 1);
          if (p.readsBeforeCut) before.results();
          const bytes = before.checkpoint();
          const resumed = Aggregator.restore(bytes);
          assert.deepEqual(resumed.checkpoint(), bytes, 'checkpoint of a restored aggregator is the same bytes');
          feed(resumed, msgs.slice(cut), cut + 1);
          assert.equal(resumed.resultsJson(), straight.resultsJson());
        },
      ),
      { numRuns: 30, seed: 20261130 },
    );
  });
});
