// encodeMessage builds its bytes with Buffer rather than TextEncoder (ADR 0036): the wire bytes must
// stay exactly the UTF-8 of the message's JSON, for ASCII, multi-byte text and escaped characters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMessages, encodeMessage, type WireMessage } from '../../../api/protocol.ts';

const base = {
  v: 1,
  namespace: 'team-ä',
  experimentUid: 'uid-1',
  runId: 'run-é',
  attempt: 0,
  replica: 0,
  seq: 1,
  sentAtMs: 1_700_000_000_000,
  simulated: true,
} as const;

void describe('encodeMessage', () => {
  void it('writes the same bytes as TextEncoder over JSON.stringify, multi-byte text and escapes included', () => {
    const texts = ['plain', 'ünïcödé', '日本語', 'emoji 🚀', 'quote " backslash \\ newline \n', 'lone \ud800 half'];
    for (const text of texts) {
      const m = { ...base, kind: 'warning', code: 'x', message: text } as unknown as WireMessage;
      const bytes = encodeMessage(m);
      assert.deepEqual(bytes, new TextEncoder().encode(JSON.stringify(m)), `bytes of ${JSON.stringify(text)}`);
      assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype, 'a plain Uint8Array, not a Buffer');
    }
  });

  void it('gives bytes that decode back to the same message', () => {
    const m = { ...base, kind: 'ready' } as unknown as WireMessage;
    const d = decodeMessages(encodeMessage(m));
    assert.ok(d.ok, d.ok ? '' : d.error);
    assert.deepEqual(d.messages[0], m);
  });
});
