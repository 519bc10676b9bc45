// The agent's slices carry each sketch as its serialized bytes (ADR 0036, amended): the default binary
// batches send them as they are; a JSON message carries the same bytes as base64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessages, encodeMessage, type WireMessage } from '../../../api/protocol.ts';
import { encodeBinaryBatch, encodeBinaryMember } from '../../../api/protocol-binary.ts';
import { SliceRecorder } from '../../../agent/slices.ts';
import { createLatencySketch, sketchFromBase64 } from '../../../lib/sketch/index.ts';

function slice(): WireMessage {
  const rec = new SliceRecorder(createLatencySketch, 0);
  for (let i = 1; i <= 20; i++) {
    rec.addRequest({
      ok: true,
      startMs: i,
      endMs: i + 50,
      ttftMs: 10 + i,
      itlMs: [2, 3, 4],
      e2eMs: 50 + i,
      tpotMs: 3,
      inputTokens: 8,
      outputTokens: 4,
    });
  }
  const key = { namespace: 'ns', experimentUid: 'uid', runId: 'run', attempt: 0, replica: 0 };
  return { v: 1, ...key, seq: 1, sentAtMs: 1000, simulated: true, kind: 'sketch', ...rec.cut(1000) };
}

void test('a slice carries each sketch as its bytes, sent as they are in a binary batch and as base64 in JSON', () => {
  const m = slice();
  assert.ok(m.kind === 'sketch');
  const ttft = m.sketches.ttftMs;
  assert.ok(ttft instanceof Uint8Array, 'bytes, not base64 text');
  const fromBinary = decodeMessages(encodeBinaryBatch(m, [encodeBinaryMember(m)]));
  assert.ok(fromBinary.ok && fromBinary.messages[0]?.kind === 'sketch');
  assert.deepEqual(Buffer.from(fromBinary.messages[0].sketches.ttftMs as Uint8Array), Buffer.from(ttft));
  const fromJson = decodeMessages(encodeMessage(m));
  assert.ok(fromJson.ok && fromJson.messages[0]?.kind === 'sketch');
  const b64 = fromJson.messages[0].sketches.ttftMs;
  assert.equal(typeof b64, 'string');
  const back = sketchFromBase64(b64 as string);
  assert.equal(back.count, 20);
  assert.deepEqual(Buffer.from(back.serialize()), Buffer.from(ttft));
});
