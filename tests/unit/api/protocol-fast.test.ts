// The field-by-field check of sketch slices (api/protocol-fast.ts, ADR 0027) must never accept what
// the wire schema refuses, and what it accepts must be exactly what the schema returns.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeMessages, SketchMessageSchema, WireMessageSchema, type SketchMessage } from '../../../api/protocol.ts';
import { fastSketchMessage } from '../../../api/protocol-fast.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

const plan = makePlan({ configs: 1, cycles: 1 });
const SLICES = replicaMessages(plan.runs[0] as (typeof plan.runs)[number], 0, plan.experimentUid, {
  seed: 3,
  slices: 4,
}).filter((m): m is SketchMessage => m.kind === 'sketch');

/** Values a hostile or broken agent might put in any field. */
const hostile = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    1,
    0.5,
    1e15,
    1e15 + 1,
    2 ** 53,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -0,
    '',
    'x',
    null,
    true,
    false,
    [],
    {},
    { __proto__: null },
    { timeout: 1 },
    { 'bad key!': 1 },
    { timeout: -1 },
    { ttftMs: 5 },
    { itlMs: 'AAAA', extra: 'x' },
    1,
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 70 }),
  fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.integer(), fc.double(), fc.string())),
);

const FIELDS = [...Object.keys(SLICES[0] as object), 'unknownField', '__proto__'];

function mutated(base: SketchMessage, edits: Array<{ field: string; value: unknown; drop: boolean }>): unknown {
  // Through JSON, as a consumer receives it (JSON.parse makes `__proto__` an own key).
  const m = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  for (const e of edits) {
    if (e.drop) delete m[e.field];
    else if (e.field === '__proto__')
      Object.defineProperty(m, '__proto__', { value: e.value, enumerable: true, configurable: true, writable: true });
    else m[e.field] = e.value;
  }
  return JSON.parse(JSON.stringify(m)) as unknown;
}

void describe('the field-by-field sketch slice check', () => {
  void it('accepts real slices, returning what the schema returns', () => {
    for (const s of SLICES) {
      const raw = JSON.parse(JSON.stringify(s)) as unknown;
      const fast = fastSketchMessage(raw);
      assert.ok(fast !== null);
      assert.deepEqual(fast, SketchMessageSchema.parse(raw));
    }
  });

  void it(
    'accepts sketches as bytes (a binary batch decodes them so) exactly as the schema does, ' + 'and nothing else',
    () => {
      const raw = JSON.parse(JSON.stringify(SLICES[0])) as SketchMessage;
      const sketches = Object.fromEntries(
        Object.entries(raw.sketches).map(([k, v]) => [k, Buffer.from(v as string, 'base64').subarray(0)]),
      );
      const bytes = { ...raw, sketches };
      assert.deepEqual(fastSketchMessage(bytes), SketchMessageSchema.parse(bytes));
      for (const wrong of [[1, 2], { 0: 1 }, new Uint16Array(2), new ArrayBuffer(2), null]) {
        const m = { ...raw, sketches: { ...sketches, itlMs: wrong } };
        assert.equal(fastSketchMessage(m), null, `fast path took ${Object.prototype.toString.call(wrong)}`);
        assert.equal(
          WireMessageSchema.safeParse(m).success,
          false,
          `schema took ${Object.prototype.toString.call(wrong)}`,
        );
      }
    },
  );

  void it('never accepts a message the schema refuses, nor one the schema would change', () => {
    const edit = fc.record({ field: fc.constantFrom(...FIELDS), value: hostile, drop: fc.boolean() });
    fc.assert(
      fc.property(fc.nat(SLICES.length - 1), fc.array(edit, { minLength: 1, maxLength: 3 }), (i, edits) => {
        const raw = mutated(SLICES[i] as SketchMessage, edits);
        const fast = fastSketchMessage(raw);
        const schema = WireMessageSchema.safeParse(raw);
        if (fast === null) return;
        assert.ok(schema.success, `accepted what the schema refuses: ${JSON.stringify(edits)}`);
        assert.deepEqual(fast, schema.data);
      }),
      { numRuns: 3000, seed: 27 },
    );
  });

  void it('still refuses, with the schema error naming the field, a slice with a wrong or hostile field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ requestsOk: -1 }, /requestsOk/],
      [{ sliceEndMs: 1 }, /sliceEndMs/],
      [{ seq: 0 }, /seq/],
      [{ errorClasses: { 'no spaces': 1 } }, /errorClasses/],
      [{ sketches: { ttftMs: 5 } }, /ttftMs/],
      [{ sentAtMs: 1e16 }, /sentAtMs/],
      [{ v: 2 }, /v/],
    ];
    for (const [change, field] of bad) {
      const m = { ...(SLICES[0] as SketchMessage), ...change };
      const d = decodeMessages(new TextEncoder().encode(JSON.stringify([m])));
      assert.ok(!d.ok && field.test(d.error), d.ok ? 'accepted' : d.error);
    }
    const proto = JSON.stringify(SLICES[0]).replace('"errorClasses":{}', '"errorClasses":{"__proto__":1}');
    const d = decodeMessages(new TextEncoder().encode(proto));
    assert.ok(!d.ok && /__proto__/.test(d.error), d.ok ? 'accepted' : d.error);
  });
});
