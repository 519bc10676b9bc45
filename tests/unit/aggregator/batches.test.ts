// Batches (ADR 0021): several wire messages of one publisher in one bus message, so one stream
// sequence. The Aggregator applies them in order, each at most once per (replica, seq).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMessages, encodeBatch, encodeMessage, MAX_BATCH_MESSAGES } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

const plan = makePlan({ configs: 1, cycles: 1 });
const run = plan.runs[0]!;
const stream = replicaMessages(run, 0, plan.experimentUid, { seed: 7 });

void describe('batches of wire messages', () => {
  void it('a run fed in batches, one stream sequence each, ends as complete as one fed message by message', () => {
    const single = new Aggregator(plan);
    stream.forEach((m, i) => single.apply(m, i + 1));
    const batched = new Aggregator(plan);
    let streamSeq = 0;
    for (let i = 0; i < stream.length; i += 5) {
      const outcomes = batched.applyBatch(stream.slice(i, i + 5), ++streamSeq);
      assert.ok(
        outcomes.every((o) => o.outcome === 'applied'),
        JSON.stringify(outcomes),
      );
    }
    assert.equal(batched.results().runs[0]?.status, 'complete');
    const strip = (json: string): string => json.replace(/"lastStreamSeq":\d+/, '');
    assert.equal(strip(batched.resultsJson()), strip(single.resultsJson()));
  });

  void it('a redelivered batch is a duplicate as a whole, and members already applied elsewhere are duplicates by seq', () => {
    const agg = new Aggregator(plan);
    assert.ok(agg.applyBatch(stream.slice(0, 4), 1).every((o) => o.outcome === 'applied'));
    assert.deepEqual(
      agg.applyBatch(stream.slice(0, 4), 1).map((o) => o.outcome),
      ['duplicate', 'duplicate', 'duplicate', 'duplicate'],
    );
    // The same messages re-sent in a new batch (a new bus message) with one new one: only that one applies.
    assert.deepEqual(
      agg.applyBatch(stream.slice(2, 5), 2).map((o) => o.outcome),
      ['duplicate', 'duplicate', 'applied'],
    );
  });

  void it('decodes a batch member by member and refuses an empty, oversized or partly invalid one', () => {
    const encoded = stream.slice(0, 3).map(encodeMessage);
    const ok = decodeMessages(encodeBatch(encoded));
    assert.ok(ok.ok && ok.batch);
    assert.deepEqual(
      ok.messages.map((m) => m.seq),
      [1, 2, 3],
    );
    const one = decodeMessages(encoded[0]!);
    assert.ok(one.ok && !one.batch && one.messages.length === 1);
    const empty = decodeMessages(new TextEncoder().encode('[]'));
    assert.ok(!empty.ok && /1 to 256 messages, this one 0/.test(empty.error));
    const huge = decodeMessages(encodeBatch(Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => encoded[0]!)));
    assert.ok(!huge.ok && /this one 257/.test(huge.error));
    const bad = decodeMessages(encodeBatch([encoded[0]!, new TextEncoder().encode('{"v":1,"kind":"ready"}')]));
    assert.ok(!bad.ok && /^batch member 1:/.test(bad.error), bad.ok ? '' : bad.error);
  });
});
