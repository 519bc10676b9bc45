import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONDITION_TYPES,
  ConditionSchema,
  conditionsEqual,
  getCondition,
  initialConditions,
  isConditionTrue,
  REASONS,
  setCondition,
} from '../../../api/index.ts';

const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:05:00Z';

void describe('conditions', () => {
  void it('sets every condition type to Unknown on the first reconcile', () => {
    const c = initialConditions([], { now: T0, observedGeneration: 1 });
    assert.deepEqual(
      c.map((x) => x.type),
      [...CONDITION_TYPES],
    );
    assert.ok(c.every((x) => x.status === 'Unknown' && x.observedGeneration === 1 && x.lastTransitionTime === T0));
    for (const x of c) ConditionSchema.parse(x);
  });

  void it('moves lastTransitionTime only when the status flips', () => {
    const start = initialConditions([], { now: T0, observedGeneration: 1 });
    const running = setCondition(
      start,
      { type: 'Running', status: 'True', reason: REASONS.RunsInProgress, message: '1 of 4 runs done.' },
      { now: T1, observedGeneration: 1 },
    );
    assert.equal(getCondition(running, 'Running')?.lastTransitionTime, T1);
    const later = '2026-01-01T00:09:00Z';
    const again = setCondition(
      running,
      { type: 'Running', status: 'True', reason: REASONS.RunsInProgress, message: '2 of 4 runs done.' },
      { now: later, observedGeneration: 2 },
    );
    assert.equal(getCondition(again, 'Running')?.lastTransitionTime, T1);
    assert.equal(getCondition(again, 'Running')?.message, '2 of 4 runs done.');
    assert.equal(getCondition(again, 'Running')?.observedGeneration, 2);
    assert.ok(isConditionTrue(again, 'Running'));
  });

  void it('produces an equal list when the same update is applied twice', () => {
    const ctx = { now: T0, observedGeneration: 3 };
    const update = {
      type: 'Succeeded' as const,
      status: 'True' as const,
      reason: REASONS.AllRunsSucceeded,
      message: 'All 4 runs succeeded.',
    };
    const once = setCondition(initialConditions([], ctx), update, ctx);
    const twice = setCondition(once, update, { now: T1, observedGeneration: 3 });
    assert.ok(conditionsEqual(once, twice));
    assert.deepEqual(once, twice);
  });

  void it('keeps the documented type order whatever the update order', () => {
    const ctx = { now: T0, observedGeneration: 1 };
    let c = setCondition(
      [],
      { type: 'Degraded', status: 'False', reason: REASONS.AsExpected, message: 'No problems.' },
      ctx,
    );
    c = setCondition(
      c,
      { type: 'Validated', status: 'True', reason: REASONS.SpecValid, message: 'The spec is valid.' },
      ctx,
    );
    assert.deepEqual(
      c.map((x) => x.type),
      ['Validated', 'Degraded'],
    );
  });

  void it('uses one CamelCase word for every reason', () => {
    for (const r of Object.values(REASONS)) assert.match(r, /^[A-Z][A-Za-z]+$/);
  });
});
