// Load ladders in cluster mode (ADR 0030): the reconciler starts one ladder step at a time, skips the
// steps past saturation (phase Skipped), finishes the experiment, and a restarted controller (a new
// reconciler on the same run table and stream) carries on from the recorded results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { Reconciler } from '../../../controller/reconciler.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import type { ExperimentObject } from '../../../controller/kube.ts';
import type { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { rootLogger } from '../../../lib/log.ts';
import { fakeAgentRunner } from '../../support/fake-agent.ts';
import { expandContainerEnv } from '../../support/kubelet-expansion.ts';
import { controllerUnderTest, experimentWith, settle, type Store } from './fakes.ts';

const SPEC = {
  model: { name: 'm', source: { random: {} } },
  backends: [{ type: 'pytorch' }],
  workload: { requests: 8, ladder: { mode: 'concurrency', start: 1, factor: 2, maxSteps: 4 } },
  slo: { ttftMs: { p: 99, ms: 10_000 } },
  measurement: { cycles: 2 },
  placement: { parallelism: 8 },
};

interface Status {
  phase: string;
  progress: { summary: string; skipped?: number };
}

/** Runs every pending pod's fake agent (the same figures at every load: throughput is flat). */
async function runPending(bus: InProcessBus, pods: Store<V1Pod>): Promise<string[]> {
  const agent = fakeAgentRunner(bus);
  const ran: string[] = [];
  for (const p of pods.list()) {
    if (p.status?.phase !== undefined && p.status.phase !== 'Pending') continue;
    await agent({ pod: p, env: expandContainerEnv(p.spec?.containers[0]?.env ?? []), argv: [] });
    pods.put({ ...p, status: { phase: 'Succeeded' } });
    ran.push(p.metadata?.labels?.['llem.dev/run'] ?? '');
  }
  await settle(300);
  return ran;
}

function status(experiments: Store<ExperimentObject>): Status {
  return experiments.get('ns', 'e1')?.status as Status;
}

void test('starts one ladder step at a time and skips the steps past saturation', async () => {
  const { experiments, pods, bus, streams, reconciler } = await controllerUnderTest();
  experiments.put(experimentWith(SPEC));
  await reconciler.reconcile('ns/e1');
  assert.equal(pods.list().length, 2, 'only step 0 (two cycles) starts, whatever the parallelism');
  await runPending(bus, pods);
  await reconciler.reconcile('ns/e1');
  assert.equal(pods.list().filter((p) => p.status?.phase !== 'Succeeded').length, 2, 'then step 1');
  await runPending(bus, pods);
  await reconciler.reconcile('ns/e1');
  // The artifact is rendered after the finishing pass (its key is queued again once it is stored).
  await settle(100);
  await reconciler.reconcile('ns/e1');
  const s = status(experiments);
  assert.equal(s.phase, 'Succeeded');
  assert.equal(s.progress.summary, '4/4', 'the skipped runs leave the total');
  assert.equal(s.progress.skipped, 4, 'steps 2 and 3 skipped: step 1 gave no more tokens/s than step 0');
  const results = await bus.getArtifact('ns/e1-uid-1/results.json');
  const doc = JSON.parse(new TextDecoder().decode(results ?? new Uint8Array())) as {
    analysis?: { ladders: Array<{ saturatedAt: number | null; reason: string }> };
    runs: Array<{ phase: string; message?: string }>;
  };
  assert.equal(doc.analysis?.ladders[0]?.saturatedAt, 1, doc.analysis?.ladders[0]?.reason);
  assert.ok(doc.runs.filter((r) => r.phase === 'Skipped').every((r) => /saturated at step 1/.test(r.message ?? '')));
  const report = await bus.getArtifact('ns/e1-uid-1/report.html');
  assert.match(new TextDecoder().decode(report ?? new Uint8Array()), /<h2>Load ladder<\/h2>/);
  await streams.stopAll();
  await bus.close();
});

void test('a restarted controller resumes a ladder mid-way from the run table and the checkpointed stream', async () => {
  const first = await controllerUnderTest();
  const { experiments, pods, bus, writer } = first;
  experiments.put(experimentWith(SPEC));
  await first.reconciler.reconcile('ns/e1');
  const step0 = await runPending(bus, pods);
  await first.reconciler.reconcile('ns/e1');
  await settle(200);
  await first.streams.stopAll();
  // A new controller process: fresh reconciler and stream consumer, same bus (KV, stream) and cluster objects.
  const streams = new BusExperimentStreams(
    bus,
    { changed: () => undefined, applied: () => undefined, lag: () => undefined },
    rootLogger.child({}, { level: 'silent' }),
    50,
  );
  const second = new Reconciler({
    experiments,
    pods,
    writer,
    streams,
    log: rootLogger.child({}, { level: 'silent' }),
    podOptions: { agentImage: 'a', backendImages: {}, agentEnv: [], simulate: true },
  });
  for (let i = 0; i < 20 && status(experiments).phase !== 'Succeeded'; i++) {
    await second.reconcile('ns/e1');
    const ran = await runPending(bus, pods);
    for (const r of ran) assert.ok(!step0.includes(r), `step 0 run ${r} ran again`);
  }
  const s = status(experiments);
  assert.equal(s.phase, 'Succeeded');
  assert.equal(s.progress.skipped, 4);
  await streams.stopAll();
  await bus.close();
});
