// Bus identity (ADR 0011) on a real nats-server in operator mode: each run's agent holds a user JWT
// the controller signed; the server refuses its publishes anywhere but its own run's subjects, and a
// message id pre-published by another tenant cannot make a real message be dropped as a duplicate.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { dataSubject, experimentSubjectFilter, messageId, startSubject } from '../../../api/protocol.ts';
import { BusIssuer, CONTROLLER_INBOX, type AgentScope } from '../../../lib/bus/identity.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import { natsServerSkipReason, startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

const enc = new TextEncoder();
const FAST = { publishTimeoutMs: 1500, publishRetryMs: 1000, connectTimeoutMs: 5000, maxReconnectAttempts: 0 };
const VICTIM: AgentScope = { namespace: 'team-b', experimentUid: 'uid-b', runId: 'r1' };
const ATTACKER: AgentScope = { namespace: 'team-a', experimentUid: 'uid-a', runId: 'r1' };
const key = (s: AgentScope, attempt = 0): Parameters<typeof dataSubject>[0] => ({ ...s, attempt, replica: 0 });
const denied = (err: unknown): boolean => /permission/i.test(`${String(err)} ${String((err as Error).cause)}`);

void describe('per-run bus identity on a real nats-server', { skip: natsServerSkipReason(), timeout: 60_000 }, () => {
  const issuer = new BusIssuer(randomBytes(32).toString('hex'));
  let server: NatsServerHandle;
  let controller: NatsBus;
  let attacker: NatsBus;
  let victim: NatsBus;
  const agent = (s: AgentScope): Promise<NatsBus> =>
    openNatsBus({ servers: server.url, creds: issuer.agentCreds(s), ...FAST });

  before(async () => {
    server = await startNatsServer({ config: issuer.serverConfig() });
    controller = await openNatsBus({
      servers: server.url,
      creds: issuer.controllerCreds(),
      inboxPrefix: CONTROLLER_INBOX,
      ...FAST,
    });
    await controller.ensureLayout();
    attacker = await agent(ATTACKER);
    victim = await agent(VICTIM);
  });
  after(async () => {
    await Promise.allSettled([attacker?.close(), victim?.close(), controller?.close()]);
    await server?.cleanup();
  });

  async function stored(s: AgentScope): Promise<string[]> {
    const got: string[] = [];
    const c = await controller.consume({
      durable: `check-${randomBytes(4).toString('hex')}`,
      filterSubject: experimentSubjectFilter(s.namespace, s.experimentUid),
      afterStreamSeq: 0,
      handler: async (m) => {
        got.push(`${m.subject} ${new TextDecoder().decode(m.data)}`);
        return 'ack';
      },
    });
    await c.idle();
    await c.stop();
    return got;
  }

  void it('refuses a connection without credentials or with credentials signed by another issuer', async () => {
    await assert.rejects(openNatsBus({ servers: server.url, ...FAST }), { name: 'BusError' });
    const stranger = new BusIssuer(randomBytes(32).toString('hex'));
    await assert.rejects(openNatsBus({ servers: server.url, creds: stranger.agentCreds(ATTACKER), ...FAST }), {
      name: 'BusError',
    });
  });

  void it("lets an agent publish to its own run's subjects and the controller consume them", async () => {
    const ack = await victim.publish(dataSubject(key(VICTIM), 'hello'), enc.encode('real-hello'), { msgId: 'b-hello' });
    assert.equal(ack.duplicate, false);
    assert.ok((await stored(VICTIM)).some((m) => m.endsWith('real-hello')));
  });

  void it('refuses a cross-namespace publish: an aborted forged into another namespace is not stored', async () => {
    await assert.rejects(
      attacker.publish(dataSubject(key(VICTIM), 'aborted'), enc.encode('forged'), { msgId: 'x' }),
      denied,
    );
    assert.ok(!(await stored(VICTIM)).some((m) => m.includes('forged')));
  });

  void it('refuses a cross-experiment publish and a publish into another run of the same experiment', async () => {
    const sameNamespace: AgentScope = { ...ATTACKER, experimentUid: 'uid-other' };
    await assert.rejects(
      attacker.publish(dataSubject(key(sameNamespace), 'aborted'), enc.encode('forged-exp'), { msgId: 'y' }),
      denied,
    );
    const otherRun: AgentScope = { ...ATTACKER, runId: 'r2' };
    await assert.rejects(
      attacker.publish(dataSubject(key(otherRun), 'aborted'), enc.encode('forged-run'), { msgId: 'z' }),
      denied,
    );
    assert.deepEqual(await stored(sameNamespace), []);
    assert.ok(!(await stored(ATTACKER)).some((m) => m.includes('forged')));
  });

  void it('refuses start-signal forgery and reading the stream with agent credentials', async () => {
    const raw = await connect({
      servers: server.url,
      authenticator: credsAuthenticator(enc.encode(issuer.agentCreds(ATTACKER))),
      maxReconnectAttempts: 0,
    });
    try {
      await assert.rejects(
        jetstream(raw, { timeout: 1500 }).publish(startSubject('team-b', 'uid-b', 'r1'), new Uint8Array([1])),
        denied,
      );
      await assert.rejects(
        attacker.consume({ durable: 'spy', filterSubject: 'llem.v1.>', afterStreamSeq: 0, handler: async () => 'ack' }),
        denied,
      );
    } finally {
      await raw.close();
    }
    await assert.rejects(
      attacker.subscribeControl(startSubject('team-b', 'uid-b', 'r1'), () => undefined),
      { name: 'BusError' },
    );
  });

  void it("does not let a pre-published message id suppress the real agent's message", async () => {
    const real = { experimentUid: VICTIM.experimentUid, runId: VICTIM.runId, attempt: 0, replica: 0, seq: 7 };
    const predictable = messageId(real);
    // The attacker publishes, on a subject it may use, every id the victim could plausibly send.
    const raw = await connect({
      servers: server.url,
      authenticator: credsAuthenticator(enc.encode(issuer.agentCreds(ATTACKER))),
      maxReconnectAttempts: 0,
    });
    try {
      const js = jetstream(raw, { timeout: 1500 });
      for (const id of [predictable, `${predictable}~`, `${predictable}~0`])
        await js.publish(dataSubject(key(ATTACKER), 'summary'), enc.encode('squat'), { msgID: id });
    } finally {
      await raw.close();
    }
    await attacker.publish(dataSubject(key(ATTACKER), 'summary'), enc.encode('squat-bus'), { msgId: predictable });
    const ack = await victim.publish(dataSubject(key(VICTIM), 'summary'), enc.encode('real-summary'), {
      msgId: predictable,
    });
    assert.equal(ack.duplicate, false, 'the real message must be stored');
    assert.ok((await stored(VICTIM)).some((m) => m.endsWith('real-summary')));
    // A retry from the same agent is still de-duplicated.
    assert.equal(
      (await victim.publish(dataSubject(key(VICTIM), 'summary'), enc.encode('real-summary'), { msgId: predictable }))
        .duplicate,
      true,
    );
  });
});
