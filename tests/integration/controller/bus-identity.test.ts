// The whole cluster path of ADR 0011 on real servers: a controller holding the issuer secret creates
// each run's credentials Secret through a real kube-apiserver, its pods (played locally, the Secret
// mounted as the kubelet would) publish with only those credentials to a nats-server in operator
// mode, and the experiment succeeds. Anonymous clients are refused by that server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Controller } from '../../../controller/index.ts';
import { BusIssuer, CONTROLLER_INBOX, openNatsBus, type NatsBus } from '../../../lib/bus/index.ts';
import { rootLogger } from '../../../lib/log.ts';
import { kubeSkipReason, localAgentRunner, startKube, type KubeCluster, type NodePlayer } from '../../support/kube.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { manifest, waitFor } from './env.ts';

const NS = 'team-ident';

void describe('per-run bus identity through the controller', { skip: kubeSkipReason(), timeout: 600_000 }, () => {
  const issuer = new BusIssuer(randomBytes(32).toString('hex'));
  const dir = mkdtempSync(join(tmpdir(), 'llem-ident-'));
  let kube: KubeCluster;
  let nats: NatsServerHandle;
  let player: NodePlayer;
  let bus: NatsBus;
  let controller: Controller;
  const credsSeen = new Set<string>();

  before(async () => {
    kube = await startKube();
    nats = await startNatsServer({ config: issuer.serverConfig() });
    const real = localAgentRunner({ env: { LLEM_NATS_URL: nats.url, LLEM_LOG_LEVEL: 'warn' } });
    player = await kube.startNodePlayer({
      run: async (run, signal) => {
        // The kubelet's part: the pod's Secret volume becomes a file at LLEM_NATS_CREDS_FILE.
        const volume = run.pod.spec?.volumes?.find((v) => v.secret !== undefined);
        const name = volume?.secret?.secretName ?? '';
        const secret = JSON.parse(await kube.kubectlOk(['get', 'secret', name, '-n', NS, '-o', 'json'])) as {
          data: Record<string, string>;
        };
        const file = join(dir, `${name}.creds`);
        writeFileSync(file, Buffer.from(secret.data['nats.creds'] ?? '', 'base64'));
        credsSeen.add(name);
        return await real({ ...run, env: { ...run.env, LLEM_NATS_CREDS_FILE: file } }, signal);
      },
    });
    bus = await openNatsBus(
      { servers: nats.url, creds: issuer.controllerCreds(), inboxPrefix: CONTROLLER_INBOX },
      'test',
    );
    controller = new Controller({
      kubeConfig: kube.kubeConfig('admin'),
      bus,
      workers: 2,
      podOptions: {
        agentImage: 'llem/agent:test',
        backendImages: {},
        agentEnv: [{ name: 'LLEM_NATS_URL', value: nats.url }],
        simulate: true,
        busIssuer: issuer,
      },
      leaderElection: { enabled: false, namespace: 'default', name: 'llem-controller' },
      probe: { host: '127.0.0.1', port: 0 },
      retryBaseMs: 500,
      checkpointMs: 200,
      log: rootLogger.child({ component: 'controller-under-test' }),
    });
    await controller.start();
    await kube.kubectlOk(['create', 'namespace', NS]);
  });

  after(async () => {
    await controller?.stop();
    await bus?.close();
    await player?.stop();
    await kube?.stop();
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an experiment succeeds with every run publishing under its own credentials, one Secret per run', async () => {
    await kube.kubectlOk(['apply', '-f', '-'], { input: manifest('ident', NS, { configs: 2, cycles: 1 }) });
    const done = await waitFor(
      'experiment finished',
      async () => {
        const r = await kube.kubectl(['get', 'ee', 'ident', '-n', NS, '-o', 'json']);
        const e =
          r.code === 0 ? (JSON.parse(r.stdout) as { status?: { phase?: string; conditions?: unknown } }) : undefined;
        return ['Succeeded', 'Failed'].includes(e?.status?.phase ?? '') ? e : undefined;
      },
      300_000,
    );
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.conditions));
    const secrets = JSON.parse(
      await kube.kubectlOk([
        'get',
        'secrets',
        '-n',
        NS,
        '-l',
        'app.kubernetes.io/component=bus-identity',
        '-o',
        'json',
      ]),
    ) as { items: { metadata: { name: string; ownerReferences?: { kind: string }[] } }[] };
    assert.equal(secrets.items.length, 2, 'one Secret per run');
    assert.deepEqual(
      [...credsSeen].sort(),
      secrets.items.map((s) => s.metadata.name).sort(),
      'each run used its own Secret',
    );
    for (const s of secrets.items) assert.equal(s.metadata.ownerReferences?.[0]?.kind, 'EnergyExperiment');
    await assert.rejects(
      openNatsBus({ servers: nats.url, maxReconnectAttempts: 0 }),
      { name: 'BusError' },
      'no anonymous client',
    );
  });
});
