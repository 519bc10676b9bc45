// The chart's NATS configuration, run by a real nats-server: the controller (password from the
// chart's Secret) sets up JetStream; agent pods, which connect without credentials, may publish
// measurement data and receive start signals but cannot touch the JetStream API or other subjects.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { dataSubject, startSubject } from '../../../api/protocol.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/index.ts';
import { natsServerBinary, startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { findObject, helmSkipReason, natsConfigForTest, render } from './chart.ts';

function natsSkipReason(): string | undefined {
  try {
    natsServerBinary();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const skip = helmSkipReason() ?? natsSkipReason();
const PUBLISHER = { namespace: 'team-a', experimentUid: 'uid-1', runId: 'r0', attempt: 0, replica: 0 };
const FAST = { publishTimeoutMs: 1500, publishRetryMs: 1000, connectTimeoutMs: 5000, maxReconnectAttempts: 0 };

void describe('NATS as the chart configures it', { skip, timeout: 120_000 }, () => {
  let server: NatsServerHandle;
  let controller: NatsBus;
  let agent: NatsBus;
  const controllerPassword = `p${randomBytes(16).toString('hex')}`;

  before(async () => {
    const objs = await render('default');
    const conf = String((findObject(objs, 'ConfigMap', '-nats-config')['data'] as Record<string, string>)['nats.conf']);
    // The StatefulSet passes these from the generated Secret; nats-server reads them as $VARIABLES.
    process.env['POD_NAME'] = 'llem-nats-0';
    process.env['LLEM_CONTROLLER_PASSWORD'] = controllerPassword;
    process.env['LLEM_AGENT_PASSWORD'] = `p${randomBytes(16).toString('hex')}`;
    server = await startNatsServer({ configFor: (port, storeDir) => natsConfigForTest(conf, port, storeDir) });
    controller = await openNatsBus({ servers: server.url, user: 'controller', password: controllerPassword, ...FAST });
    await controller.ensureLayout();
    agent = await openNatsBus({ servers: server.url, ...FAST });
  });

  after(async () => {
    await agent?.close();
    await controller?.close();
    await server?.cleanup();
    for (const k of ['POD_NAME', 'LLEM_CONTROLLER_PASSWORD', 'LLEM_AGENT_PASSWORD']) delete process.env[k];
  });

  void test('the controller with the wrong password is refused', async () => {
    await assert.rejects(openNatsBus({ servers: server.url, user: 'controller', password: 'wrong', ...FAST }));
  });

  void test('an agent without credentials publishes measurement data into the stream', async () => {
    const ack = await agent.publish(dataSubject(PUBLISHER, 'ready'), new TextEncoder().encode('{}'), { msgId: 'ready-1' });
    assert.ok(ack.streamSeq >= 1);
    assert.equal(ack.duplicate, false);
  });

  void test('an agent receives the start signal the controller publishes', async () => {
    const subject = startSubject(PUBLISHER.namespace, PUBLISHER.experimentUid, PUBLISHER.runId);
    let resolveGot: (text: string) => void = () => undefined;
    const got = new Promise<string>((resolve) => (resolveGot = resolve));
    // subscribeControl resolves once the server has the subscription: no sleep needed before publishing.
    const sub = await agent.subscribeControl(subject, (data) => resolveGot(new TextDecoder().decode(data)));
    await controller.publishControl(subject, new TextEncoder().encode('go'));
    assert.equal(await got, 'go');
    await sub.unsubscribe();
  });

  void test('an agent cannot read checkpoints, consume the stream, publish dead letters or forge start signals', async () => {
    const denied = (err: unknown): boolean => /permission/i.test(`${String(err)} ${String((err as Error).cause)}`);
    await assert.rejects(agent.getCheckpoint('team-a.uid-1'), denied);
    // The bus refuses such a subject client-side already; a raw connection shows the server refuses it too.
    const raw = await connect({ servers: server.url, maxReconnectAttempts: 0 });
    try {
      await assert.rejects(jetstream(raw, { timeout: 1500 }).publish('llem.dlq.v1.team-a.uid-1.r0.0.0.ready', new Uint8Array([1])), denied);
      await assert.rejects(jetstream(raw, { timeout: 1500 }).publish(startSubject('team-a', 'uid-1', 'r0'), new Uint8Array([1])), denied);
    } finally {
      await raw.close();
    }
    // The controller's replies (the messages it pulls from the stream) use their own inbox prefix.
    const spy = await connect({ servers: server.url, maxReconnectAttempts: 0 });
    try {
      const refused = new Promise<Error | undefined>((resolve) => {
        spy.subscribe('_INBOX_llem_controller.>', { callback: (err) => resolve(err ?? undefined) });
      });
      assert.ok(denied(await refused), 'subscribing to the controller inbox must be refused');
    } finally {
      await spy.close().catch(() => undefined);
    }
    await assert.rejects(agent.consume({
      durable: 'stolen', filterSubject: 'llem.v1.>', afterStreamSeq: 0, handler: async () => 'ack',
    }), denied);
  });
});
