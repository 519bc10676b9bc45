// A hostile agent on the in-process bus, through the controller's feed (decode -> ledger ->
// Aggregator -> checkpoint): its messages cannot wipe another run's complete attempt, cannot
// report a counter jump as energy, and cannot make the checkpoint unrestorable, so a restarted
// controller resumes with the same results (issue #17 items 2, 4, 5).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dataSubject, encodeMessage, messageId, type WireMessage } from '../../../api/protocol.ts';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { newAggregator, type PlannedRun } from '../../../aggregator/index.ts';
import { BusExperimentStreams, type ExperimentFeed } from '../../../controller/results.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { rootLogger } from '../../../lib/log.ts';
import { replicaMessages } from '../../support/streams.ts';

const ref = { namespace: 'default', name: 'e', uid: 'uid-hostile' };

async function publish(bus: InProcessBus, msgs: WireMessage[]): Promise<void> {
  for (const m of msgs) {
    const key = {
      namespace: ref.namespace,
      experimentUid: m.experimentUid,
      runId: m.runId,
      attempt: m.attempt,
      replica: m.replica,
    };
    await bus.publish(dataSubject(key, m.kind), encodeMessage(m), { msgId: messageId(m) });
  }
}

async function settle(feed: ExperimentFeed, lastSeq: number): Promise<void> {
  for (let i = 0; i < 200 && (feed.aggregate()?.lastStreamSeq ?? 0) < lastSeq; i++)
    await new Promise((r) => setTimeout(r, 10));
}

void test('a hostile agent cannot wipe a complete attempt, fake energy or poison the checkpoint a restarted controller resumes from', async () => {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const events = { changed: (): void => undefined, applied: (): void => undefined, lag: (): void => undefined };
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e' },
    spec: { model: { name: 'm', source: { random: {} } }, backends: [{ type: 'pytorch' }], measurement: { cycles: 2 } },
  });
  assert.ok(v.ok);
  const planned = v.matrix.runs.map((r): PlannedRun => ({
    runId: r.id,
    configId: r.configurationId,
    configHash: r.configHash,
    cycle: r.cycle,
    replicas: 1,
    failurePolicy: 'strict',
  }));
  const [honestRun, hostileRun] = planned as [PlannedRun, PlannedRun];
  const factory = (): ReturnType<typeof newAggregator> => newAggregator(ref.uid, v.matrix, 1, 'strict');

  const streams = new BusExperimentStreams(bus, events, rootLogger, 3_600_000);
  const feed = await streams.feed(ref, { planned: v.matrix.runs, seed: [], newAggregator: factory });
  const honest = replicaMessages(honestRun, 0, ref.uid, { seed: 1 });
  // The hostile agent: run 2's stream with error classes named after Object.prototype and a
  // +1e15 mJ counter jump, then a message claiming attempt 99 of the honest run.
  let t = 0;
  const hostile = replicaMessages(hostileRun, 0, ref.uid, { seed: 2 }).map((m): WireMessage => {
    if (m.kind === 'sketch')
      return { ...m, requestsFailed: 0, errorClasses: { constructor: 1, toString: 2, __defineGetter__: 3 } };
    if (m.kind === 'telemetry' && t++ >= 4)
      return {
        ...m,
        samples: m.samples.map((s) => ({ ...s, energyMillijoules: (s.energyMillijoules as number) + 1e15 })),
      };
    return m;
  });
  const wipe = { ...replicaMessages(honestRun, 0, ref.uid, { seed: 3, attempt: 99 })[0]!, seq: 1 };
  await publish(bus, [...honest, ...hostile, wipe]);
  await settle(feed, honest.length + hostile.length + 1);

  const before = feed.aggregate();
  assert.ok(before !== null, 'the aggregator survived the hostile messages');
  const h = before.runs.find((r) => r.runId === honestRun.runId)!;
  assert.equal(h.status, 'complete');
  assert.equal(h.attempt, 0, 'attempt 99 was never started: it wiped nothing');
  const x = before.runs.find((r) => r.runId === hostileRun.runId)!;
  assert.equal(x.status, 'incomplete');
  assert.equal(x.metrics.energyJoules, null);
  assert.match(x.reasons.join(' '), /energy counter jump .* implies \d+ W, above the plausible 1050 W/);
  assert.deepEqual(before.configurations[0]!.runsIncluded, [honestRun.runId]);

  // The controller restarts: a new feed restores the checkpoint the old one wrote on the way out.
  await streams.stopAll();
  const restarted = new BusExperimentStreams(bus, events, rootLogger, 3_600_000);
  const resumed = await restarted.feed(ref, {
    planned: v.matrix.runs,
    seed: [],
    newAggregator: () => {
      throw new Error('a checkpoint exists: the aggregator must be restored, not rebuilt');
    },
  });
  assert.equal(JSON.stringify(resumed.aggregate()), JSON.stringify(before));
  await restarted.stopAll();
  await bus.close();
});
