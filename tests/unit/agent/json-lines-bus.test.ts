// `llem agent` without a broker writes one JSON line per wire message, batches included (ADR 0021).
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { Publisher } from '../../../agent/publisher.ts';
import { JsonLinesBus } from '../../../agent/json-lines-bus.ts';

void test('messages the publisher batched are written one line each, under their own subject and msg id', async () => {
  const out = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  const bus = new JsonLinesBus(out);
  let handOvers = 0;
  const publish = bus.publish.bind(bus);
  bus.publish = async (subject, data, opts) => {
    handOvers++;
    return await publish(subject, data, opts);
  };
  const p = new Publisher(bus, { namespace: 'ns', experimentUid: 'uid', runId: 'run', attempt: 0, replica: 0 }, true);
  await Promise.all(Array.from({ length: 5 }, () => p.publish('ready', {})));
  const lines = chunks
    .join('')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { subject: string; msgId: string; message: { seq: number; kind: string } });
  assert.ok(handOvers < 5, `some messages shared a hand-over (${handOvers} for 5)`);
  assert.deepEqual(
    lines.map((l) => [l.subject.split('.').at(-1), l.msgId, l.message.seq]),
    [1, 2, 3, 4, 5].map((seq) => ['ready', `uid/run/0/0/${seq}`, seq]),
  );
});
