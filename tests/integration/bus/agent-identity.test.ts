// The real `llem agent` process with the per-run credentials a pod gets (ADR 0011), against a real
// nats-server in operator mode: its run's permissions are enough for the whole protocol (hello,
// ready, the start signal, sketches, telemetry, summary), and nothing it sends is refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeMessages, experimentSubjectFilter, PROTOCOL_VERSION, startSubject } from '../../../api/protocol.ts';
import { BusIssuer, CONTROLLER_INBOX } from '../../../lib/bus/identity.ts';
import { openNatsBus } from '../../../lib/bus/nats.ts';
import { freePort } from '../../support/ports.ts';
import { natsServerSkipReason, startNatsServer } from '../../support/nats-server.ts';

const FIXTURE = new URL('../agent/fixtures/backend.mjs', import.meta.url).pathname;
const CLI = new URL('../../../cli/main.ts', import.meta.url).pathname;

void test(
  "an agent with only its run's credentials completes the protocol over the start signal",
  { skip: natsServerSkipReason(), timeout: 120_000 },
  async (t) => {
    const issuer = new BusIssuer(randomBytes(32).toString('hex'));
    const server = await startNatsServer({ config: issuer.serverConfig() });
    const dir = mkdtempSync(join(tmpdir(), 'llem-agent-identity-'));
    const controller = await openNatsBus({
      servers: server.url,
      creds: issuer.controllerCreds(),
      inboxPrefix: CONTROLLER_INBOX,
    });
    t.after(async () => {
      await controller.close();
      await server.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });
    await controller.ensureLayout();
    const scope = { namespace: 'team-a', experimentUid: 'uid-agent', runId: 'r1' };
    writeFileSync(join(dir, 'nats.creds'), issuer.agentCreds(scope), { mode: 0o600 });
    const port = await freePort();
    const config = {
      publisher: scope,
      model: 'fixture',
      backend: { name: 'fixture', baseUrl: `http://127.0.0.1:${port}`, readinessTimeoutSeconds: 60 },
      workload: { requests: 24, concurrency: 4, inputTokens: 8, outputTokens: 4 },
      measurement: {
        warmupRequests: 2,
        baselineSeconds: 0.2,
        sampleIntervalMs: 50,
        telemetryBatchMs: 100,
        sliceMs: 200,
      },
      start: { mode: 'signal', timeoutSeconds: 60 },
      telemetry: { source: 'simulated' },
    };
    writeFileSync(join(dir, 'agent.json'), JSON.stringify(config));

    const kinds: string[] = [];
    let started = false;
    const consumption = await controller.consume({
      durable: 'agent-identity',
      filterSubject: experimentSubjectFilter(scope.namespace, scope.experimentUid),
      afterStreamSeq: 0,
      handler: async (m) => {
        // A bus message is one wire message or a batch of them (ADR 0021, 0036: what an agent publishes
        // in one turn leaves together), so the kinds are those of every member.
        const decoded = decodeMessages(m.data);
        assert.ok(decoded.ok, decoded.ok ? '' : decoded.error);
        for (const msg of decoded.messages) kinds.push(msg.kind);
        if (kinds.includes('ready') && !started) {
          started = true;
          const signal = {
            v: PROTOCOL_VERSION,
            experimentUid: scope.experimentUid,
            runId: scope.runId,
            attempt: 0,
            startAtMs: Date.now() + 200,
          };
          await controller.publishControl(
            startSubject(scope.namespace, scope.experimentUid, scope.runId),
            new TextEncoder().encode(JSON.stringify(signal)),
          );
        }
        return 'ack';
      },
    });
    t.after(() => consumption.stop());

    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        CLI,
        'agent',
        '--config',
        join(dir, 'agent.json'),
        '--',
        process.execPath,
        FIXTURE,
        String(port),
        join(dir, 'pid'),
      ],
      {
        env: {
          ...process.env,
          LLEM_LOG_LEVEL: 'warn',
          LLEM_NATS_URL: server.url,
          LLEM_NATS_CREDS_FILE: join(dir, 'nats.creds'),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    t.after(() => child.kill('SIGKILL'));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0, stderr.slice(-3000));
    await consumption.idle();
    assert.ok(started, 'the agent reported ready');
    for (const kind of ['hello', 'ready', 'sketch', 'telemetry', 'summary'])
      assert.ok(kinds.includes(kind), `${kind} arrived (got ${kinds.join(',')})`);
    assert.doesNotMatch(stderr, /permission/i);
  },
);
