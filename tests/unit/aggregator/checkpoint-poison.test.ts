// Checkpoints cannot be poisoned (issue #17 item 4): input the Aggregator accepts always restores,
// and input that would not restore is refused at the door instead of being merged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WireMessage } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { createLatencySketch, sketchToBase64 } from '../../../lib/sketch/index.ts';
import { experimentMessages, makePlan } from '../../support/streams.ts';

function feed(agg: Aggregator, msgs: WireMessage[]): string[] {
  const from = agg.lastStreamSeq + 1;
  return msgs.map((m, i) => agg.apply(m, from + i).outcome);
}

const HOSTILE_CLASSES = [
  'constructor',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  '__defineGetter__',
  'prototype',
];

/** A wire sketch whose largest value (its max field) is overwritten with NaN. */
function sketchWithNaN(): string {
  const d = createLatencySketch();
  for (const v of [11, 12, 13.25]) d.add(v);
  const bytes = new Uint8Array(d.serialize());
  const pattern = new Uint8Array(new Float64Array([13.25]).buffer);
  let at = -1;
  for (let i = bytes.length - 8; i >= 0 && at < 0; i--) if (pattern.every((b, j) => bytes[i + j] === b)) at = i;
  assert.ok(at >= 0, 'the max is in the sketch bytes');
  bytes.set(new Uint8Array(new Float64Array([Number.NaN]).buffer), at);
  return Buffer.from(bytes).toString('base64');
}

void describe('checkpoints cannot be poisoned', () => {
  void it('restores a run whose error classes are named constructor, toString and other Object.prototype names', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    let slice = 0;
    const msgs = experimentMessages(plan, { seed: 1 }).map((m) => {
      if (m.kind !== 'sketch') return m;
      slice += 1;
      return { ...m, requestsFailed: 0, errorClasses: Object.fromEntries(HOSTILE_CLASSES.map((c) => [c, slice])) };
    });
    const agg = new Aggregator(plan);
    assert.ok(feed(agg, msgs).every((o) => o === 'applied'));
    const classes = agg.results().runs[0]!.counts.errorClasses;
    for (const c of HOSTILE_CLASSES) assert.equal(classes[c], 15, c);
    const restored = Aggregator.restore(agg.checkpoint());
    assert.equal(restored.resultsJson(), agg.resultsJson());
    assert.deepEqual(restored.checkpoint(), agg.checkpoint());
  });

  void it('refuses __proto__ as an error class instead of silently losing its count', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const msgs = experimentMessages(plan, { seed: 2 }).map((m) =>
      m.kind === 'sketch' && m.slice === 0
        ? { ...m, errorClasses: JSON.parse('{"__proto__": 3}') as Record<string, number> }
        : m,
    );
    const agg = new Aggregator(plan);
    assert.equal(feed(agg, msgs).filter((o) => o === 'rejected').length, 1);
    assert.match(agg.results().runs[0]!.reasons.join(' '), /__proto__/);
    assert.equal(Aggregator.restore(agg.checkpoint()).resultsJson(), agg.resultsJson());
  });

  void it('refuses a wire sketch with a NaN inside, and the checkpoint still restores', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const poisoned = sketchWithNaN();
    const msgs = experimentMessages(plan, { seed: 3 }).map((m) =>
      m.kind === 'sketch' && m.slice === 2 ? { ...m, sketches: { ...m.sketches, ttftMs: poisoned } } : m,
    );
    const agg = new Aggregator(plan);
    assert.equal(feed(agg, msgs).filter((o) => o === 'rejected').length, 1);
    const r = agg.results().runs[0]!;
    assert.equal(r.status, 'incomplete');
    assert.match(r.reasons.join(' '), /sketch ttftMs/);
    assert.ok(Number.isFinite(r.latency.ttftMs.mean));
    const restored = Aggregator.restore(agg.checkpoint());
    assert.equal(restored.resultsJson(), agg.resultsJson());
  });

  void it('refuses a wire sketch holding a latency of 2e10 ms (231 days)', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const d = createLatencySketch();
    d.add(2e10);
    d.add(10);
    const msgs = experimentMessages(plan, { seed: 4 }).map((m) =>
      m.kind === 'sketch' && m.slice === 1 ? { ...m, sketches: { ...m.sketches, e2eMs: sketchToBase64(d) } } : m,
    );
    const agg = new Aggregator(plan);
    assert.equal(feed(agg, msgs).filter((o) => o === 'rejected').length, 1);
    assert.match(
      agg.results().runs[0]!.reasons.join(' '),
      /sketch e2eMs is implausible: its maximum 20000000000 ms is above the plausible 10000000000 ms/,
    );
  });

  void it('repairs a version 1 checkpoint poisoned by a constructor error class instead of failing every restore', () => {
    const plan = makePlan({ configs: 1, cycles: 1 });
    const agg = new Aggregator(plan);
    feed(agg, experimentMessages(plan, { seed: 5 }));
    const v2 = JSON.parse(new TextDecoder().decode(agg.checkpoint())) as {
      version: number;
      started?: unknown;
      runs: Array<Record<string, unknown>>;
    };
    // What version 1 wrote after an error class named "constructor": Object's source text plus the count.
    v2.version = 1;
    delete v2.started;
    for (const r of v2.runs) r['errorClasses'] = { constructor: 'function Object() { [native code] }1', timeout: 2 };
    const restored = Aggregator.restore(new TextEncoder().encode(JSON.stringify(v2)));
    assert.deepEqual({ ...restored.results().runs[0]!.counts.errorClasses }, { timeout: 2 });
  });
});
