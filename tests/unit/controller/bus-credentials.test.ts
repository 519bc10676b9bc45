// The reconciler provisions each run's bus credentials (ADR 0011): one Secret per run, created before
// the run's first pod, owned by the experiment, holding a user JWT scoped to that run only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import type { ExperimentObject, KubeWriter } from '../../../controller/kube.ts';
import { Reconciler } from '../../../controller/reconciler.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import { BusIssuer } from '../../../lib/bus/identity.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { rootLogger } from '../../../lib/log.ts';
import { Store } from './fakes.ts';
import type { EnergyExperimentStatus } from '../../../api/status.ts';

class Writer implements KubeWriter {
  writes: string[] = [];
  secrets: V1Secret[] = [];
  constructor(
    private readonly experiments: Store<ExperimentObject>,
    private readonly pods: Store<V1Pod>,
  ) {}
  patchExperimentStatus(ns: string, name: string, status: EnergyExperimentStatus): Promise<ExperimentObject> {
    const next = { ...this.experiments.get(ns, name), status } as ExperimentObject;
    this.experiments.put(next);
    return Promise.resolve(next);
  }
  setFinalizers(obj: ExperimentObject, finalizers: string[]): Promise<void> {
    this.experiments.put({ ...obj, metadata: { ...obj.metadata, finalizers } });
    return Promise.resolve();
  }
  deleteExperiment(): Promise<void> {
    return Promise.resolve();
  }
  createPod(pod: V1Pod): Promise<void> {
    this.writes.push(`pod ${pod.metadata?.labels?.['llem.dev/run'] ?? ''}`);
    this.pods.put({ ...pod, status: { phase: 'Pending' } });
    return Promise.resolve();
  }
  deletePod(): Promise<void> {
    return Promise.resolve();
  }
  createSecret(secret: V1Secret): Promise<void> {
    this.writes.push(`secret ${secret.metadata?.labels?.['llem.dev/run'] ?? ''}`);
    this.secrets.push(secret);
    return Promise.resolve();
  }
  recordEvent(): Promise<void> {
    return Promise.resolve();
  }
}

void test('each run gets its own credentials Secret before its first pod, once, scoped to that run', async () => {
  const experiments = new Store<ExperimentObject>();
  const pods = new Store<V1Pod>();
  const writer = new Writer(experiments, pods);
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const streams = new BusExperimentStreams(
    bus,
    { changed: () => undefined, applied: () => undefined, lag: () => undefined },
    rootLogger,
    3_600_000,
  );
  const busIssuer = new BusIssuer(randomBytes(32).toString('hex'));
  const reconciler = new Reconciler({
    experiments,
    pods,
    writer,
    streams,
    log: rootLogger,
    podOptions: { agentImage: 'a', backendImages: {}, agentEnv: [], simulate: true, busIssuer },
  });
  experiments.put({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e1', namespace: 'team-a', uid: 'uid-1', generation: 1, resourceVersion: '1' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      measurement: { cycles: 2 },
      placement: { parallelism: 2 },
    },
  });
  await reconciler.reconcile('team-a/e1');
  await reconciler.reconcile('team-a/e1');
  const runs = [...new Set(pods.list().map((p) => p.metadata?.labels?.['llem.dev/run'] ?? ''))];
  assert.equal(runs.length, 2);
  assert.equal(writer.secrets.length, 2, 'one Secret per run, not one per reconcile');
  for (const run of runs) {
    assert.ok(
      writer.writes.indexOf(`secret ${run}`) < writer.writes.indexOf(`pod ${run}`),
      `${run}: Secret before pod`,
    );
    const secret = writer.secrets.find((s) => s.metadata?.labels?.['llem.dev/run'] === run);
    assert.equal(secret?.metadata?.ownerReferences?.[0]?.uid, 'uid-1');
    const jwt = /JWT-----\n(.+)\n/.exec(Object.values(secret?.stringData ?? {})[0] ?? '')?.[1] ?? '';
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      nats: { pub: { allow: string[] } };
    };
    assert.deepEqual(claims.nats.pub.allow, [`llem.v1.team-a.uid-1.${run}.>`]);
    const pod = pods.list().find((p) => p.metadata?.labels?.['llem.dev/run'] === run);
    assert.ok(pod?.spec?.volumes?.some((v) => v.secret?.secretName === secret?.metadata?.name));
    assert.equal(pod?.spec?.automountServiceAccountToken, false);
  }
  await streams.stopAll();
  await bus.close();
});
