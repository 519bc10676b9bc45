// Attempts (issue #17 item 5): the runtime tells the Aggregator which attempts it started; a
// message for any other attempt is refused, and nothing replaces a complete attempt.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WireMessage } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { InvalidInputError } from '../../../lib/errors.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

function feed(agg: Aggregator, msgs: WireMessage[]): string[] {
  const from = agg.lastStreamSeq + 1;
  return msgs.map((m, i) => agg.apply(m, from + i).outcome);
}

const plan = makePlan({ configs: 1, cycles: 1 });
const run = plan.runs[0]!;
const attempt = (n: number, seed = 20 + n): WireMessage[] =>
  replicaMessages(run, 0, plan.experimentUid, { seed, attempt: n });

void describe('run attempts', () => {
  void it('refuses a message for attempt 99, which was never started, and keeps the complete attempt 0', () => {
    const agg = new Aggregator(plan);
    feed(agg, attempt(0));
    const before = agg.resultsJson();
    const outcome = agg.apply(attempt(99)[0]!, agg.lastStreamSeq + 1);
    assert.equal(outcome.outcome, 'rejected');
    assert.match((outcome as { reason: string }).reason, /attempt 99 of run c0-k0 was never started \(started: 0\)/);
    const r = agg.results().runs[0]!;
    assert.equal(r.attempt, 0);
    assert.equal(r.status, 'complete');
    assert.equal(agg.resultsJson().replace(/"lastStreamSeq":\d+/, ''), before.replace(/"lastStreamSeq":\d+/, ''));
  });

  void it('lets a started retry replace an unfinished attempt', () => {
    const agg = new Aggregator(plan);
    feed(agg, attempt(0).slice(0, 6));
    agg.startAttempt(run.runId, 1);
    assert.ok(feed(agg, attempt(1)).every((o) => o === 'applied'));
    const r = agg.results().runs[0]!;
    assert.equal(r.attempt, 1);
    assert.equal(r.status, 'complete');
  });

  void it('never lets a started later attempt wipe a complete one (a retry racing the summary)', () => {
    const agg = new Aggregator(plan);
    feed(agg, attempt(0));
    agg.startAttempt(run.runId, 1);
    const outcomes = feed(agg, attempt(1));
    assert.ok(
      outcomes.every((o) => o === 'rejected'),
      outcomes.join(','),
    );
    const r = agg.results().runs[0]!;
    assert.equal(r.attempt, 0);
    assert.equal(r.status, 'complete');
  });

  void it('remembers started attempts across a checkpoint and restore', () => {
    const agg = new Aggregator(plan);
    feed(agg, attempt(0).slice(0, 3));
    agg.startAttempt(run.runId, 2);
    const restored = Aggregator.restore(agg.checkpoint());
    assert.equal(restored.attemptStarted(run.runId, 2), true);
    assert.equal(restored.attemptStarted(run.runId, 1), false);
    assert.ok(feed(restored, attempt(2)).every((o) => o === 'applied'));
    assert.equal(restored.results().runs[0]!.attempt, 2);
    assert.deepEqual(Aggregator.restore(restored.checkpoint()).checkpoint(), restored.checkpoint());
  });

  void it('refuses to start an attempt of a run that is not planned, or a negative one', () => {
    const agg = new Aggregator(plan);
    assert.throws(() => agg.startAttempt('no-such-run', 1), InvalidInputError);
    assert.throws(() => agg.startAttempt(run.runId, -1), InvalidInputError);
    assert.throws(() => agg.startAttempt(run.runId, 1.5), InvalidInputError);
    agg.startAttempt(run.runId, 0);
    assert.equal(agg.attemptStarted(run.runId, 0), true);
  });
});
