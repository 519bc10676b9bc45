// Binary batches (ADR 0033) hand the Aggregator each sketch as its bytes, not base64 (ADR 0036,
// amended): the results must be byte-equal to the JSON form's, and a lying sketch must be refused the
// same way, whichever form carried it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMessages, encodeBatch, encodeMessage, type WireMessage } from '../../../api/protocol.ts';
import { encodeBinaryBatch, encodeBinaryMember } from '../../../api/protocol-binary.ts';
import { Aggregator } from '../../../aggregator/index.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';

const plan = makePlan({ configs: 1, cycles: 1 });
const run = plan.runs[0]!;
const stream = replicaMessages(run, 0, plan.experimentUid, { seed: 11, slices: 12 });

/** The stream as bus messages of up to 5 members: JSON arrays or binary batches (summary alone, as JSON). */
function busMessages(format: 'json' | 'binary', messages: readonly WireMessage[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const body = messages.filter((m) => m.kind !== 'summary');
  for (let i = 0; i < body.length; i += 5) {
    const part = body.slice(i, i + 5);
    out.push(
      format === 'json'
        ? encodeBatch(part.map(encodeMessage))
        : encodeBinaryBatch(part[0]!, part.map(encodeBinaryMember)),
    );
  }
  for (const m of messages) if (m.kind === 'summary') out.push(encodeMessage(m));
  return out;
}

function feed(format: 'json' | 'binary', messages: readonly WireMessage[]): Aggregator {
  const agg = new Aggregator(plan);
  busMessages(format, messages).forEach((data, i) => {
    const d = decodeMessages(data);
    assert.ok(d.ok, d.ok ? '' : d.error);
    agg.applyBatch(d.messages, i + 1);
  });
  return agg;
}

void describe('sketches carried as bytes by binary batches', () => {
  void it('a run fed in binary batches gives byte-equal results to the same run fed in JSON arrays', () => {
    const binary = feed('binary', stream);
    const json = feed('json', stream);
    assert.equal(binary.results().runs[0]?.status, 'complete');
    assert.equal(binary.resultsJson(), json.resultsJson());
    assert.deepEqual(binary.checkpoint(), json.checkpoint());
  });

  void it('a sketch whose bytes lie is refused the same way in both forms and leaves the run incomplete', () => {
    // One sketch slice's ttft sketch with its count field's last byte changed: a lying header.
    let done = false;
    const forged = stream.map((m): WireMessage => {
      if (done || m.kind !== 'sketch' || m.sketches.ttftMs === undefined) return m;
      done = true;
      const bytes = Buffer.from(m.sketches.ttftMs as string, 'base64');
      bytes[bytes.length - 1] = (bytes[bytes.length - 1]! + 1) & 0xff;
      return { ...m, sketches: { ...m.sketches, ttftMs: bytes.toString('base64') } };
    });
    assert.ok(done);
    const binary = feed('binary', forged).results().runs[0];
    const json = feed('json', forged).results().runs[0];
    assert.notEqual(binary?.status, 'complete');
    assert.deepEqual(binary, json);
    assert.ok(JSON.stringify(binary).includes('sketch ttftMs'), JSON.stringify(binary).slice(0, 400));
  });

  void it('JSON encoding turns a sketch given as bytes into base64, so a JSON publisher never sends bytes', () => {
    const slice = stream.find((m) => m.kind === 'sketch')!;
    const d = decodeMessages(encodeBinaryBatch(slice, [encodeBinaryMember(slice)]));
    assert.ok(d.ok && d.messages[0]?.kind === 'sketch');
    assert.ok(d.messages[0].sketches.ttftMs instanceof Uint8Array);
    assert.deepEqual(JSON.parse(Buffer.from(encodeMessage(d.messages[0])).toString()), slice);
  });
});
