// The W3C trace context crosses NATS JetStream in message headers (real nats-server): what the
// agent's publisher sets is what the aggregator's consumer reads, and untraced messages carry none.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dataSubject, experimentSubjectFilter } from '../../../api/protocol.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import type { DeliveredMessage } from '../../../lib/bus/types.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

const NS = 'otel';
const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('trace context in NATS message headers', { timeout: 60_000 }, () => {
  let server: NatsServerHandle;
  let bus: NatsBus;
  before(async () => {
    server = await startNatsServer();
    bus = await openNatsBus({ servers: server.url });
    await bus.ensureLayout();
  });
  after(async () => {
    await bus?.close();
    await server?.cleanup();
  });

  it('delivers traceparent and tracestate to the consumer, and no headers for untraced messages', async () => {
    const key = { namespace: NS, experimentUid: 'uid-h', runId: 'run-0', attempt: 0, replica: 0 };
    const subject = dataSubject(key, 'ready');
    await bus.publish(subject, new TextEncoder().encode('{}'), {
      msgId: 'h-1',
      headers: { traceparent: TP, tracestate: 'llem=1' },
    });
    await bus.publish(subject, new TextEncoder().encode('{}'), { msgId: 'h-2' });
    // Only trace headers pass: a publisher cannot set others through this option.
    await bus.publish(subject, new TextEncoder().encode('{}'), {
      msgId: 'h-3',
      headers: { traceparent: TP, 'Nats-Expected-Stream': 'nope' },
    });
    const got: DeliveredMessage[] = [];
    const c = await bus.consume({
      durable: 'otel-h',
      filterSubject: experimentSubjectFilter(NS, 'uid-h'),
      afterStreamSeq: 0,
      handler: (m) => {
        got.push(m);
        return Promise.resolve('ack');
      },
    });
    const deadline = Date.now() + 10_000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await c.stop();
    assert.equal(got.length, 3);
    assert.deepEqual(got[0]?.headers, { traceparent: TP, tracestate: 'llem=1' });
    assert.equal(got[1]?.headers, undefined);
    assert.deepEqual(got[2]?.headers, { traceparent: TP });
  });
});
