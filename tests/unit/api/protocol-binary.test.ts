// The binary batch envelope (api/protocol-binary.ts, ADR 0033): it carries exactly what the JSON
// form carries, the consumer still reads the JSON form (agents of the previous release), and the
// decoder refuses hostile bytes cleanly: never a throw, a hang or an allocation the bytes do not hold.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeMessages,
  encodeBatch,
  encodeMessage,
  MAX_BATCH_MESSAGES,
  type SketchMessage,
  type WireMessage,
} from '../../../api/protocol.ts';
import {
  BINARY_BATCH_MAGIC,
  encodeBinaryBatch,
  encodeBinaryMember,
  isBinaryBatch,
} from '../../../api/protocol-binary.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

const plan = makePlan({ configs: 1, cycles: 1 });
const STREAM = replicaMessages(plan.runs[0] as (typeof plan.runs)[number], 0, plan.experimentUid, {
  seed: 7,
  slices: 6,
});
/** A publisher's messages as they share batches: everything but the summary (it always goes alone). */
const MEMBERS = STREAM.filter((m) => m.kind !== 'summary');
const SLICES = STREAM.filter((m): m is SketchMessage => m.kind === 'sketch');

const binary = (messages: readonly WireMessage[]): Uint8Array =>
  encodeBinaryBatch(messages[0] as WireMessage, messages.map(encodeBinaryMember));
const json = (messages: readonly WireMessage[]): Uint8Array => encodeBatch(messages.map(encodeMessage));

function refused(data: Uint8Array): string {
  const d = decodeMessages(data);
  assert.equal(d.ok, false, 'refused');
  return d.ok ? '' : d.error;
}

/** A valid binary batch with its bytes after the magic replaced: [shared header, count, members...]. */
function handMade(parts: Array<number | string | Uint8Array>): Uint8Array {
  const bytes: number[] = [...BINARY_BATCH_MAGIC];
  for (const p of parts) {
    if (typeof p === 'number') bytes.push(p);
    else if (typeof p === 'string') bytes.push(...new TextEncoder().encode(p));
    else bytes.push(...p);
  }
  return Uint8Array.from(bytes);
}
/** A length as the envelope writes it (7 bits a byte, low first). */
function varint(n: number): number[] {
  const out: number[] = [];
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) return [...out, v];
    out.push((v % 128) | 0x80);
  }
}
const SHARED = JSON.stringify({
  v: 1,
  namespace: 'ns',
  experimentUid: 'uid',
  runId: 'run',
  attempt: 0,
  replica: 0,
  simulated: true,
});
const READY = JSON.stringify({ seq: 1, sentAtMs: 1, kind: 'ready' });

/** The messages as JSON carries them: a binary batch's sketch bytes as base64. */
function asJsonForm(messages: readonly WireMessage[]): unknown[] {
  return messages.map((m) => {
    if (m.kind !== 'sketch') return m;
    const entries = Object.entries(m.sketches).map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('base64')]);
    return { ...m, sketches: Object.fromEntries(entries) };
  });
}

void describe('binary batch envelope', () => {
  void it('decodes to exactly the messages the JSON array form decodes to, for every kind a batch holds', () => {
    assert.ok(new Set(MEMBERS.map((m) => m.kind)).size >= 3, 'hello, ready, telemetry and sketch members');
    const fromBinary = decodeMessages(binary(MEMBERS));
    const fromJson = decodeMessages(json(MEMBERS));
    assert.ok(fromBinary.ok && fromJson.ok, JSON.stringify([fromBinary, fromJson]).slice(0, 300));
    // The sketches arrive as their bytes (no base64 round trip for the Aggregator), the same bytes JSON's base64 holds.
    const sketchValues = fromBinary.messages.flatMap((m) => (m.kind === 'sketch' ? Object.values(m.sketches) : []));
    assert.ok(sketchValues.length > 0 && sketchValues.every((v) => v instanceof Uint8Array));
    assert.deepEqual(asJsonForm(fromBinary.messages), fromJson.messages);
    assert.deepEqual(asJsonForm(fromBinary.messages), JSON.parse(JSON.stringify(MEMBERS)));
    assert.equal(fromBinary.batch, true);
  });

  void it('a batch of sketch slices is at least a quarter smaller than the same batch as a JSON array', () => {
    const b = binary(SLICES).length;
    const j = json(SLICES).length;
    assert.ok(b < j * 0.75, `binary ${b} bytes, JSON ${j}`);
    assert.ok(isBinaryBatch(binary(SLICES)) && !isBinaryBatch(json(SLICES)));
  });

  void it('still reads what an agent of the previous release sends: lone JSON messages and JSON arrays', () => {
    const lone = decodeMessages(encodeMessage(SLICES[0] as WireMessage));
    assert.ok(lone.ok && !lone.batch && lone.messages[0]?.seq === SLICES[0]?.seq);
    const arr = decodeMessages(json(SLICES));
    assert.ok(arr.ok && arr.batch);
    assert.deepEqual(
      arr.messages.map((m) => m.seq),
      SLICES.map((m) => m.seq),
    );
  });

  void it('refuses every truncation of a valid batch, and bytes after its last member', () => {
    const whole = binary(MEMBERS.slice(0, 4));
    for (let n = 0; n < whole.length; n++) refused(whole.subarray(0, n));
    assert.match(refused(Uint8Array.from([...whole, 0])), /1 bytes after the last member/);
  });

  void it('refuses lying counts, huge varints, oversized lengths and a wrong format with a clean error', () => {
    const member = [READY.length, READY, 0];
    assert.ok(decodeMessages(handMade([SHARED.length, SHARED, 1, ...member])).ok, 'the hand-made batch is valid');
    assert.match(refused(handMade([SHARED.length, SHARED, 2, ...member])), /truncated|cannot fit/);
    assert.match(refused(handMade([SHARED.length, SHARED, 0])), /1 to 256 messages, this one 0/);
    // 300 as a varint (0xac 0x02), and 2^28 - 1 with lengths that claim far more than the bytes hold.
    assert.match(refused(handMade([SHARED.length, SHARED, 0xac, 0x02, ...member])), /this one 300/);
    assert.match(refused(handMade([0xff, 0xff, 0xff, 0x7f, SHARED])), /says 268435455 bytes, \d+ are left/);
    assert.match(refused(handMade([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), /longer than 4 bytes/);
    assert.match(refused(handMade([SHARED.length, SHARED, 1, 0xff, 0xff, 0x03, READY, 0])), /says 65535 bytes/);
    assert.match(refused(Uint8Array.from([0x4c, 0x4c, 0x42, 0x02, 1, 0x7b, 0x7d])), /format 2 is not one/);
    assert.match(refused(Uint8Array.from([0x4c, 0x4c, 0x42])), /format missing/);
    assert.match(refused(Uint8Array.from([0x00, 0x01, 0x02])), /not JSON/);
  });

  void it('refuses members that carry the shared identity, unknown sketches, oversized sketches or garbage', () => {
    const spoof = JSON.stringify({ seq: 1, sentAtMs: 1, kind: 'ready', runId: 'other' });
    assert.match(refused(handMade([SHARED.length, SHARED, 1, spoof.length, spoof, 0])), /carries runId/);
    assert.match(refused(handMade([SHARED.length, SHARED, 1, READY.length, READY, 1, 0])), /not a sketch message/);
    const sketch = JSON.stringify({ ...JSON.parse(JSON.stringify(SLICES[0])), sketches: undefined });
    const own = JSON.stringify(
      Object.fromEntries(
        Object.entries(JSON.parse(sketch) as Record<string, unknown>).filter(
          ([k]) => !['v', 'namespace', 'experimentUid', 'runId', 'attempt', 'replica', 'simulated'].includes(k),
        ),
      ),
    );
    assert.match(
      refused(handMade([SHARED.length, SHARED, 1, ...varint(own.length), own, 0x10])),
      /mask 16 names unknown/,
    );
    assert.match(
      refused(handMade([SHARED.length, SHARED, 1, ...varint(own.length), own, 0x01, 0x81, 0x20])),
      /4097 bytes, at most 4096/,
    );
    // Sketch bytes are the aggregator's to check (ADR 0012), exactly as base64 in the JSON form is.
    const garbage = decodeMessages(handMade([SHARED.length, SHARED, 1, ...varint(own.length), own, 0x01, 3, 1, 2, 3]));
    assert.ok(garbage.ok && garbage.messages[0]?.kind === 'sketch');
    assert.deepEqual(garbage.messages[0].sketches, { ttftMs: Uint8Array.of(1, 2, 3) });
    const nested = '['.repeat(100_000);
    assert.match(
      refused(handMade([SHARED.length, SHARED, 1, ...varint(nested.length), nested, 0])),
      /member 0 is not JSON/,
    );
    assert.match(refused(handMade([2, '[]', 1, ...member()])), /shared header is not a JSON object/);
    const extra = JSON.stringify({ ...JSON.parse(SHARED), seq: 1 });
    assert.match(refused(handMade([extra.length, extra, 1, ...member()])), /exactly v, namespace/);
    const badShared = JSON.stringify({ ...JSON.parse(SHARED), attempt: -1 });
    assert.match(refused(handMade([badShared.length, badShared, 1, ...member()])), /batch member 0: .*attempt/s);
    function member(): Array<number | string> {
      return [READY.length, READY, 0];
    }
  });

  void it('never throws, and refuses or accepts only valid messages, for random corruptions of a valid batch', () => {
    const whole = binary(MEMBERS.slice(0, 5));
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(whole.length - 1), byte: fc.nat(255) }), { minLength: 1, maxLength: 8 }),
        fc.nat(whole.length),
        (edits, cut) => {
          const bytes = Uint8Array.from(whole.subarray(0, Math.max(cut, 4)));
          for (const e of edits) if (e.at < bytes.length) bytes[e.at] = e.byte;
          const d = decodeMessages(bytes);
          if (d.ok) {
            assert.ok(d.messages.length >= 1 && d.messages.length <= MAX_BATCH_MESSAGES);
            for (const m of d.messages)
              assert.ok(decodeMessages(encodeMessage(m)).ok, 'each member is a valid message');
          } else assert.ok(d.error.length > 0);
        },
      ),
      { numRuns: 3000 },
    );
  });

  void it('never throws on random bytes behind the magic, and answers in bounded time', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (tail) => {
        const started = performance.now();
        const d = decodeMessages(Uint8Array.from([...BINARY_BATCH_MAGIC, ...tail]));
        assert.ok(!d.ok || d.messages.length > 0);
        assert.ok(performance.now() - started < 250, 'no hang');
      }),
      { numRuns: 3000 },
    );
  });
});
