// The reconciler with fakes for Kubernetes (stores + a writer that records) and the in-process bus:
// the whole level-based loop without a server. The real-server version is tests/integration/controller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { Reconciler } from '../../../controller/reconciler.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import type { ExperimentObject } from '../../../controller/kube.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { rootLogger } from '../../../lib/log.ts';
import { fakeAgentRunner } from '../../support/fake-agent.ts';
import { expandContainerEnv } from '../../support/kubelet-expansion.ts';
import { RecordingWriter, Store, statusOf } from './fakes.ts';

function experiment(): ExperimentObject {
  return {
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e1', namespace: 'ns', uid: 'uid-1', generation: 1, resourceVersion: '1' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      sweep: { axes: { 'pytorch.maxBatchSize': [1, 2] } },
      measurement: { cycles: 2 },
      placement: { parallelism: 4 },
    },
  };
}

/** Stores, an in-process bus and a reconciler over them (simulated pods), as each test starts. */
async function controllerUnderTest() {
  const experiments = new Store<ExperimentObject>();
  const pods = new Store<V1Pod>();
  const writer = new RecordingWriter(experiments, pods);
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const streams = new BusExperimentStreams(
    bus,
    { changed: () => undefined, applied: () => undefined, lag: () => undefined },
    rootLogger,
    50,
  );
  const reconciler = new Reconciler({
    experiments,
    pods,
    writer,
    streams,
    log: rootLogger,
    podOptions: { agentImage: 'a', backendImages: {}, agentEnv: [], simulate: true },
  });
  return { experiments, pods, writer, bus, streams, reconciler };
}

void test('reconciles an experiment to Succeeded from complete run data, then writes nothing more', async () => {
  const { experiments, pods, writer, bus, streams, reconciler } = await controllerUnderTest();
  experiments.put(experiment());
  await reconciler.reconcile('ns/e1');
  assert.equal(pods.list().length, 4, 'two configurations x two cycles, parallelism 4');
  assert.equal(statusOf(experiments).phase, 'Running');

  const agent = fakeAgentRunner(bus);
  for (const p of pods.list()) {
    const env = expandContainerEnv(p.spec?.containers[0]?.env ?? []);
    await agent({ pod: p, env, argv: [] });
    pods.put({ ...p, status: { phase: 'Succeeded' } });
  }
  await new Promise((r) => setTimeout(r, 300));
  await reconciler.reconcile('ns/e1');
  // The artifact is rendered after that pass, outside it (the key is queued again when it is stored).
  await new Promise((r) => setTimeout(r, 100));
  await reconciler.reconcile('ns/e1');
  const status = experiments.get('ns', 'e1')?.status as {
    phase: string;
    progress: { summary: string };
    best?: { joulesPerToken: number };
  };
  assert.equal(status.phase, 'Succeeded');
  assert.equal(status.progress.summary, '4/4');
  assert.equal(status.best?.joulesPerToken, 48 / 160);
  // The artifact: results.json and, beside it, the CSVs, plots and the report (no power series).
  const prefix = 'ns/e1-uid-1';
  const text = async (f: string): Promise<string | null> => {
    const b = await bus.getArtifact(`${prefix}/${f}`);
    return b === null ? null : new TextDecoder().decode(b);
  };
  assert.equal(statusOf(experiments).artifact?.uri, `nats-obj://llem-artifacts/${prefix}/results.json`);
  assert.ok((await text('results.json'))?.includes('"results"'));
  assert.equal((await text('runs.csv'))?.trim().split('\n').length, 5, 'a header and four runs');
  assert.match((await text('report.html')) ?? '', /pytorch pytorch\.maxBatchSize=1/);
  assert.match((await text('plots/joules-per-token.svg')) ?? '', /<svg/);
  assert.equal(await text('timeseries.csv'), null);

  const before = writer.writes.length;
  await reconciler.reconcile('ns/e1');
  assert.equal(writer.writes.length, before, 'the second reconcile writes nothing');
  await streams.stopAll();
  await bus.close();
});

void test('an invalid spec gets Validated=False with the field path and creates no pods', async () => {
  const { experiments, pods, bus, reconciler } = await controllerUnderTest();
  const e = experiment();
  (e.spec as { workload: unknown }).workload = { requests: 0 };
  experiments.put(e);
  assert.deepEqual(await reconciler.reconcile('ns/e1'), {});
  const status = experiments.get('ns', 'e1')?.status as {
    phase: string;
    conditions: { type: string; status: string; message: string }[];
  };
  assert.equal(status.phase, 'Invalid');
  const validated = status.conditions.find((c) => c.type === 'Validated');
  assert.equal(validated?.status, 'False');
  assert.match(validated?.message ?? '', /spec\.workload\.requests/);
  assert.equal(pods.list().length, 0);
  await bus.close();
});

void test('a valid spec with warnings says so in the Validated condition', async () => {
  const { experiments, bus, streams, reconciler } = await controllerUnderTest();
  const e = experiment();
  experiments.put({
    ...e,
    spec: { ...(e.spec as Record<string, unknown>), measurement: { cycles: 2, minWindowSeconds: 1 } },
  });
  await reconciler.reconcile('ns/e1');
  const conditions = statusOf(experiments).conditions;
  const validated = conditions.find((c) => c.type === 'Validated');
  assert.equal(validated?.status, 'True');
  assert.match(validated?.message ?? '', /Warnings: spec\.measurement\.minWindowSeconds: 1 s is below 5 s/);
  await streams.stopAll();
  await bus.close();
});
