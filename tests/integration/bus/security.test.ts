// Per-role permissions (docs/nats-security.md) enforced by a real nats-server, and each way to
// authenticate: user/password, NKey, token, TLS.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createUser } from '@nats-io/nkeys';
import { dataSubject, experimentSubjectFilter, startSubject } from '../../../api/protocol.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The sample in docs/nats-security.md, with test passwords. */
function rolesConfig(nkeyPublic: string): string {
  const agent = (ns: string): string => `{
      publish: { allow: ["llem.v1.${ns}.>"] }
      subscribe: { allow: ["llem.control.v1.${ns}.>", "_INBOX_llem_agent_${ns}.>"] }
    }`;
  return `authorization {
  users = [
    { user: controller, password: "controller-pass", permissions: {
      publish: { allow: ["$JS.API.>", "$JS.ACK.LLEM.>", "$JS.FC.>", "$KV.llem-checkpoints.>", "$O.llem-artifacts.>", "llem.control.v1.>", "llem.dlq.v1.>"] }
      subscribe: { allow: ["_INBOX_llem_controller.>"] }
    } }
    { user: agent-team-a, password: "agent-a-pass", permissions: ${agent('team-a')} }
    { nkey: ${nkeyPublic}, permissions: ${agent('team-b')} }
  ]
}`;
}

void describe('NATS permissions per role', () => {
  let server: NatsServerHandle;
  let controller: NatsBus;
  let agentA: NatsBus;
  const agentB = createUser();
  const key = (ns: string): Parameters<typeof dataSubject>[0] => ({
    namespace: ns,
    experimentUid: 'uid-1',
    runId: 'r1',
    attempt: 0,
    replica: 0,
  });

  void before(async () => {
    server = await startNatsServer({ config: rolesConfig(agentB.getPublicKey()) });
    controller = await openNatsBus({
      servers: server.url,
      user: 'controller',
      password: 'controller-pass',
      inboxPrefix: '_INBOX_llem_controller',
    });
    await controller.ensureLayout();
    agentA = await openNatsBus({
      servers: server.url,
      user: 'agent-team-a',
      password: 'agent-a-pass',
      inboxPrefix: '_INBOX_llem_agent_team-a',
      publishTimeoutMs: 1000,
      publishRetryMs: 2000,
    });
  });
  void after(async () => {
    await agentA.close();
    await controller.close();
    await server.cleanup();
  });

  void it('lets an agent publish under its own namespace and the controller consume it', async () => {
    const ack = await agentA.publish(dataSubject(key('team-a'), 'hello'), enc.encode('hi'), { msgId: 'a-1' });
    assert.equal(ack.duplicate, false);
    const got: string[] = [];
    const c = await controller.consume({
      durable: 'agg-team-a',
      filterSubject: experimentSubjectFilter('team-a', 'uid-1'),
      afterStreamSeq: 0,
      handler: async (m) => {
        got.push(dec.decode(m.data));
        return 'ack';
      },
    });
    await c.idle();
    await c.stop();
    assert.deepEqual(got, ['hi']);
    await controller.putCheckpoint('team-a.uid-1', { state: enc.encode('s'), lastStreamSeq: ack.streamSeq });
    assert.equal((await controller.getCheckpoint('team-a.uid-1'))?.lastStreamSeq, ack.streamSeq);
    await controller.putArtifact('team-a/uid-1/results.json', enc.encode('{}'));
    assert.equal(dec.decode((await controller.getArtifact('team-a/uid-1/results.json')) ?? new Uint8Array()), '{}');
  });

  void it("refuses an agent's publish into another namespace, and nothing is stored", async () => {
    await assert.rejects(
      agentA.publish(dataSubject(key('team-b'), 'hello'), enc.encode('forged'), { msgId: 'b-forged' }),
      (err: Error) => {
        assert.equal(err.name, 'BusError');
        assert.match(err.message, /Permission/i);
        return true;
      },
    );
    const got: string[] = [];
    const c = await controller.consume({
      durable: 'agg-team-b',
      filterSubject: experimentSubjectFilter('team-b', 'uid-1'),
      afterStreamSeq: 0,
      handler: async (m) => {
        got.push(dec.decode(m.data));
        return 'ack';
      },
    });
    await c.idle();
    await c.stop();
    assert.deepEqual(got, []);
  });

  void it('refuses an agent reading the stream or creating consumers', async () => {
    await assert.rejects(
      agentA.consume({ durable: 'spy', filterSubject: 'llem.v1.>', afterStreamSeq: 0, handler: async () => 'ack' }),
      { name: 'BusError' },
    );
    await assert.rejects(agentA.getCheckpoint('team-a.uid-1'));
  });

  void it('delivers start signals to agents of the namespace and refuses other namespaces and forgeries', async () => {
    const got: string[] = [];
    const sub = await agentA.subscribeControl(startSubject('team-a', 'uid-1', 'r1'), (d) => got.push(dec.decode(d)));
    await assert.rejects(
      agentA.subscribeControl(startSubject('team-b', 'uid-1', 'r1'), () => undefined),
      { name: 'BusError' },
    );
    await agentA.publishControl(startSubject('team-a', 'uid-1', 'r1'), enc.encode('forged-start'));
    await controller.publishControl(startSubject('team-a', 'uid-1', 'r1'), enc.encode('start'));
    // Delivery is asynchronous: wait for the real signal (a slow machine may take a while), then a
    // little longer so a forged one, had the server let it through, would have arrived too.
    for (const until = Date.now() + 10_000; !got.includes('start') && Date.now() < until;)
      await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    await sub.unsubscribe();
    assert.deepEqual(got, ['start']);
  });

  void it('authenticates an agent by NKey and confines it to its namespace', async () => {
    const bus = await openNatsBus({
      servers: server.url,
      nkeySeed: dec.decode(agentB.getSeed()),
      inboxPrefix: '_INBOX_llem_agent_team-b',
      publishTimeoutMs: 1000,
      publishRetryMs: 2000,
    });
    try {
      assert.equal(
        (await bus.publish(dataSubject(key('team-b'), 'hello'), enc.encode('b'), { msgId: 'b-1' })).duplicate,
        false,
      );
      await assert.rejects(bus.publish(dataSubject(key('team-a'), 'hello'), enc.encode('x'), { msgId: 'a-forged' }), {
        name: 'BusError',
      });
    } finally {
      await bus.close();
    }
  });

  void it('rejects a wrong password at connect time', async () => {
    await assert.rejects(
      openNatsBus({ servers: server.url, user: 'agent-team-a', password: 'wrong', maxReconnectAttempts: 0 }),
      { name: 'BusError' },
    );
  });
});

void describe('NATS authentication methods', () => {
  void it('connects with a token', async () => {
    const server = await startNatsServer({ config: 'authorization { token: "s3cret-token" }' });
    try {
      await assert.rejects(openNatsBus({ servers: server.url, token: 'nope' }), { name: 'BusError' });
      const bus = await openNatsBus({ servers: server.url, token: 's3cret-token' });
      await bus.ensureLayout();
      await bus.close();
    } finally {
      await server.cleanup();
    }
  });

  void it('connects over TLS, verifying the server against the given CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-tls-'));
    const server = await (async () => {
      makeCertificates(dir);
      return await startNatsServer({
        config: `tls { cert_file: "${join(dir, 'server.pem')}", key_file: "${join(dir, 'server-key.pem')}" }`,
      });
    })();
    try {
      const url = server.url.replace('nats://', 'tls://');
      await assert.rejects(
        openNatsBus({ servers: url, maxReconnectAttempts: 0 }),
        { name: 'BusError' },
        'an unknown CA is refused',
      );
      const bus = await openNatsBus({ servers: url, tls: { caFile: join(dir, 'ca.pem') } });
      await bus.ensureLayout();
      await bus.close();
    } finally {
      await server.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function makeCertificates(dir: string): void {
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  run(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=llem-test-ca',
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
  );
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'server-key.pem',
    '-out',
    'server.csr',
  );
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca-key.pem',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.ext',
    '-out',
    'server.pem',
  );
}
