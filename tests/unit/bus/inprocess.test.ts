import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dataSubject } from '../../../api/protocol.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { subjectMatches } from '../../../lib/bus/subjects.ts';
import { busContract } from './bus-contract.ts';

void busContract('in-process', async () => {
  const bus = new InProcessBus({ retryInitialMs: 5 });
  return { bus, peer: async () => bus, close: () => bus.close() };
});

void describe('InProcessBus specifics', () => {
  void it('forgets a msgId once the de-duplication window has passed', async () => {
    let now = 1000;
    const bus = new InProcessBus({ duplicateWindowMs: 100, nowMs: () => now });
    const subject = dataSubject({ namespace: 'n', experimentUid: 'u', runId: 'r', attempt: 0, replica: 0 }, 'ready');
    const a = await bus.publish(subject, new Uint8Array([1]), { msgId: 'id' });
    now += 50;
    assert.equal((await bus.publish(subject, new Uint8Array([1]), { msgId: 'id' })).duplicate, true);
    now += 100;
    const late = await bus.publish(subject, new Uint8Array([1]), { msgId: 'id' });
    assert.equal(late.duplicate, false);
    assert.ok(late.streamSeq > a.streamSeq);
    await bus.close();
  });

  void it('keeps dead-lettered copies under llem.dlq.v1', async () => {
    const bus = new InProcessBus();
    const subject = dataSubject({ namespace: 'n', experimentUid: 'u', runId: 'r', attempt: 0, replica: 0 }, 'sketch');
    await bus.publish(subject, new TextEncoder().encode('{'), { msgId: 'bad' });
    const c = await bus.consume({
      durable: 'd',
      filterSubject: 'llem.v1.n.u.>',
      afterStreamSeq: 0,
      handler: async () => 'dead-letter',
    });
    await c.idle();
    await c.stop();
    assert.deepEqual(
      bus.deadLetters().map((m) => m.subject),
      ['llem.dlq.v1.n.u.r.0.0.sketch'],
    );
    await bus.close();
  });

  void it('refuses work once closed', async () => {
    const bus = new InProcessBus();
    await bus.close();
    await assert.rejects(bus.publish('llem.v1.a.b', new Uint8Array(), { msgId: 'x' }), { name: 'BusError' });
  });
});

void describe('subjectMatches', () => {
  void it('matches NATS wildcards the way the server does', () => {
    assert.equal(subjectMatches('llem.v1.>', 'llem.v1.a'), true);
    assert.equal(subjectMatches('llem.v1.>', 'llem.v1'), false);
    assert.equal(subjectMatches('llem.v1.*.b', 'llem.v1.a.b'), true);
    assert.equal(subjectMatches('llem.v1.*.b', 'llem.v1.a.b.c'), false);
    assert.equal(subjectMatches('llem.v1.a', 'llem.v1.a.b'), false);
    assert.equal(subjectMatches('llem.v1.a.b', 'llem.v1.a.b'), true);
  });
});
