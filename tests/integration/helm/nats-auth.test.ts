// The chart's NATS, run by a real nats-server with the configuration its init container writes
// (ADR 0011): nothing connects without credentials; the controller's own credentials (signed with the
// chart's issuer secret) set up JetStream; a run's credentials publish only into that run.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { dataSubject, startSubject } from '../../../api/protocol.ts';
import { BusIssuer, CONTROLLER_INBOX, openNatsBus, type NatsBus } from '../../../lib/bus/index.ts';
import { natsServerSkipReason, startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { findObject, helmSkipReason, natsConfigForTest, render, trustedNatsConfig } from './chart.ts';

const skip = helmSkipReason() ?? natsServerSkipReason();
const RUN = { namespace: 'team-a', experimentUid: 'uid-1', runId: 'r0' };
const PUBLISHER = { ...RUN, attempt: 0, replica: 0 };
const FAST = { publishTimeoutMs: 1500, publishRetryMs: 1000, connectTimeoutMs: 5000, maxReconnectAttempts: 0 };
const denied = (err: unknown): boolean => /permission/i.test(`${String(err)} ${String((err as Error).cause)}`);

void describe('NATS as the chart configures it', { skip, timeout: 120_000 }, () => {
  let server: NatsServerHandle;
  let controller: NatsBus;
  let agent: NatsBus;
  let issuer: BusIssuer;

  before(async () => {
    const objs = await render('default');
    const secret = findObject(objs, 'Secret', '-nats-auth')['data'] as Record<string, string>;
    const issuerSecret = Buffer.from(secret['issuerSecret'] ?? '', 'base64').toString('utf8');
    issuer = new BusIssuer(issuerSecret);
    const conf = await trustedNatsConfig(objs, issuerSecret);
    process.env['POD_NAME'] = 'llem-nats-0';
    server = await startNatsServer({ configFor: (port, storeDir) => natsConfigForTest(conf, port, storeDir) });
    controller = await openNatsBus({
      servers: server.url,
      creds: issuer.controllerCreds(),
      inboxPrefix: CONTROLLER_INBOX,
      ...FAST,
    });
    await controller.ensureLayout();
    agent = await openNatsBus({ servers: server.url, creds: issuer.agentCreds(RUN), ...FAST });
  });

  after(async () => {
    await agent?.close();
    await controller?.close();
    await server?.cleanup();
    delete process.env['POD_NAME'];
  });

  void test('the generated Secret holds a long random issuer secret and no passwords', async () => {
    const data = findObject(await render('default'), 'Secret', '-nats-auth')['data'] as Record<string, string>;
    assert.deepEqual(Object.keys(data), ['issuerSecret']);
    assert.ok(Buffer.from(data['issuerSecret'] ?? '', 'base64').length >= 32);
  });

  void test("a client without credentials, or with another issuer's, is refused: there is no anonymous user", async () => {
    await assert.rejects(openNatsBus({ servers: server.url, ...FAST }), { name: 'BusError' });
    const other = new BusIssuer(randomBytes(32).toString('hex'));
    await assert.rejects(openNatsBus({ servers: server.url, creds: other.agentCreds(RUN), ...FAST }), {
      name: 'BusError',
    });
  });

  void test("a run's agent publishes its own measurement data into the stream and receives its start signal", async () => {
    const ack = await agent.publish(dataSubject(PUBLISHER, 'ready'), new TextEncoder().encode('{}'), {
      msgId: 'ready-1',
    });
    assert.ok(ack.streamSeq >= 1);
    const subject = startSubject(RUN.namespace, RUN.experimentUid, RUN.runId);
    let resolveGot: (text: string) => void = () => undefined;
    const got = new Promise<string>((resolve) => (resolveGot = resolve));
    const sub = await agent.subscribeControl(subject, (data) => resolveGot(new TextDecoder().decode(data)));
    await controller.publishControl(subject, new TextEncoder().encode('go'));
    assert.equal(await got, 'go');
    await sub.unsubscribe();
  });

  void test('an agent cannot publish into another namespace, experiment or run, nor read the stream or checkpoints', async () => {
    for (const other of [{ namespace: 'team-b' }, { experimentUid: 'uid-2' }, { runId: 'r1' }]) {
      await assert.rejects(
        agent.publish(dataSubject({ ...PUBLISHER, ...other }, 'aborted'), new Uint8Array([1]), { msgId: 'f' }),
        denied,
      );
    }
    await assert.rejects(agent.getCheckpoint('team-a.uid-1'), denied);
    await assert.rejects(
      agent.consume({ durable: 'stolen', filterSubject: 'llem.v1.>', afterStreamSeq: 0, handler: async () => 'ack' }),
      denied,
    );
  });
});
