// Issue #16's scale floors in the small: a reconcile does a bounded number of API calls whatever the
// experiment's size, status patches never queue up behind a slow API server, and events are rate-limited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EnergyExperimentStatus } from '../../../api/status.ts';
import type { ExperimentObject } from '../../../controller/kube.ts';
import {
  EventBudget,
  EVENT_BURST,
  MAX_POD_CREATES_PER_PASS,
  STATUS_COST_SHARE,
  STATUS_REFRESH_MAX_MS,
  STATUS_REFRESH_MS,
  statusRefreshMs,
} from '../../../controller/reconciler.ts';
import { BackgroundWrites, DELETED_RECENTLY_MS, MAX_DELETES_IN_FLIGHT } from '../../../controller/status-writer.ts';
import { rootLogger } from '../../../lib/log.ts';
import { controllerUnderTest, experimentWith, RecordingWriter, settle, Store } from './fakes.ts';

const log = rootLogger.child({}, { level: 'silent' });

function bigSpec(points: number, cycles: number, parallelism: number): Record<string, unknown> {
  return {
    model: { name: 'm', source: { random: {} } },
    backends: [{ type: 'pytorch' }],
    sweep: { axes: { 'pytorch.maxBatchSize': Array.from({ length: points }, (_, i) => i + 1) } },
    measurement: { cycles },
    placement: { parallelism },
  };
}

void test('a reconcile creates at most MAX_POD_CREATES_PER_PASS pods and asks to run again at once', async () => {
  const h = await controllerUnderTest();
  h.experiments.put(experimentWith(bigSpec(50, 10, 200)));
  try {
    const perPass: number[] = [];
    for (let i = 0; i < 15; i++) {
      const before = h.writer.created.length;
      const res = await h.reconciler.reconcile('ns/e1');
      await settle(5);
      perPass.push(h.writer.created.length - before);
      if (h.writer.created.length >= 200) break;
      assert.equal(res.requeueAfterMs, 0, 'more runs are due to start: the next pass comes at once');
    }
    assert.ok(
      perPass.every((n) => n <= MAX_POD_CREATES_PER_PASS),
      `never more than ${MAX_POD_CREATES_PER_PASS} creates in one pass (got ${perPass.join(',')})`,
    );
    assert.equal(h.writer.created.length, 200, 'placement.parallelism is still reached, pass by pass');
    const res = await h.reconciler.reconcile('ns/e1');
    assert.notEqual(res.requeueAfterMs, 0, 'at parallelism, no immediate requeue');
  } finally {
    await h.reconciler.background.idle();
    await h.streams.stopAll();
    await h.bus.close();
  }
});

void test('a pass in which nothing changed sends no status patch', async () => {
  const h = await controllerUnderTest();
  h.experiments.put(experimentWith(bigSpec(10, 10, 20)));
  try {
    await h.reconciler.reconcile('ns/e1');
    await h.reconciler.background.idle();
    const patches = h.writer.writes.filter((w) => w.startsWith('status')).length;
    for (let i = 0; i < 5; i++) await h.reconciler.reconcile('ns/e1');
    await h.reconciler.background.idle();
    assert.equal(h.writer.writes.filter((w) => w.startsWith('status')).length, patches);
  } finally {
    await h.streams.stopAll();
    await h.bus.close();
  }
});

/** A writer whose status patches wait until released, like a loaded API server. */
class SlowWriter extends RecordingWriter {
  gates: (() => void)[] = [];
  sent: EnergyExperimentStatus[] = [];
  fail = false;
  override async patchExperimentStatus(
    ns: string,
    name: string,
    status: EnergyExperimentStatus,
  ): Promise<ExperimentObject> {
    this.sent.push(status);
    await new Promise<void>((r) => this.gates.push(r));
    if (this.fail) throw new Error('the API server refused the patch');
    return super.patchExperimentStatus(ns, name, status);
  }
}

function statusWith(phase: 'Pending' | 'Running'): EnergyExperimentStatus {
  return { phase, conditions: [], runs: [], configurations: [] } as unknown as EnergyExperimentStatus;
}

void test('one status patch per experiment is in flight; statuses wanted meanwhile collapse into the newest', async () => {
  const experiments = new Store<ExperimentObject>();
  experiments.put({ metadata: { name: 'e1', namespace: 'ns', uid: 'u1' } });
  const writer = new SlowWriter(experiments, new Store());
  const bg = new BackgroundWrites(writer, log, () => undefined);
  const wanted = [1, 2, 3, 4, 5].map(() => statusWith('Running'));
  for (const s of wanted) bg.status('u1', 'ns', 'e1', s, JSON.stringify(s));
  assert.equal(writer.sent.length, 1, 'the first patch is sent at once; the others wait');
  writer.gates.shift()?.();
  await settle(5);
  assert.equal(writer.sent.length, 2);
  assert.equal(writer.sent[1], wanted[4], 'only the newest waiting status is sent');
  writer.gates.shift()?.();
  await bg.idle();
  assert.equal(bg.counts.patched, 2);
  assert.equal(bg.counts.superseded, 3);
});

void test('a failed status patch forgets what it wanted and asks for another reconcile', async () => {
  const experiments = new Store<ExperimentObject>();
  experiments.put({ metadata: { name: 'e1', namespace: 'ns', uid: 'u1' } });
  const writer = new SlowWriter(experiments, new Store());
  writer.fail = true;
  const retried: string[] = [];
  const bg = new BackgroundWrites(writer, log, (k) => retried.push(k));
  const s = statusWith('Running');
  bg.status('u1', 'ns', 'e1', s, JSON.stringify(s));
  assert.equal(bg.wanted.get('u1')?.status, s);
  writer.gates.shift()?.();
  await bg.idle();
  assert.equal(bg.wanted.get('u1'), undefined, 'the next reconcile compares with the cache and writes again');
  assert.deepEqual(retried, ['ns/e1']);
});

void test('a pod deletion already in flight is not sent again', async () => {
  const writer = new RecordingWriter(new Store(), new Store());
  let resolve: () => void = () => undefined;
  writer.deletePod = (): Promise<void> => new Promise<void>((r) => (resolve = r));
  const bg = new BackgroundWrites(writer, log, () => undefined);
  bg.deletePod('ns', 'p1');
  bg.deletePod('ns', 'p1');
  assert.equal(bg.counts.deletes, 1);
  resolve();
  await settle(5);
  assert.equal(bg.deletesInFlight, 0);
});

void test('pod deletions of a big experiment are sent at most MAX_DELETES_IN_FLIGHT at a time, all of them in the end', async () => {
  const writer = new RecordingWriter(new Store(), new Store());
  const open: (() => void)[] = [];
  const deleted: string[] = [];
  writer.deletePod = (_ns: string, name: string): Promise<void> =>
    new Promise<void>((r) =>
      open.push(() => {
        deleted.push(name);
        r();
      }),
    );
  const bg = new BackgroundWrites(writer, log, () => undefined);
  for (let i = 0; i < 2000; i++) bg.deletePod('ns', `p${i}`);
  assert.equal(open.length, MAX_DELETES_IN_FLIGHT, 'no more requests open than the cap');
  assert.equal(bg.deleteRequestsOpen, MAX_DELETES_IN_FLIGHT);
  assert.equal(bg.deletesInFlight, 2000, 'the rest wait in the queue');
  bg.deletePod('ns', 'p1999');
  assert.equal(bg.counts.deletes, 2000, 'a queued deletion is not queued twice');
  while (open.length > 0) {
    open.shift()?.();
    await settle(0);
    assert.ok(bg.deleteRequestsOpen <= MAX_DELETES_IN_FLIGHT);
  }
  await bg.idle();
  assert.equal(deleted.length, 2000);
  assert.equal(new Set(deleted).size, 2000);
  assert.equal(bg.deletesInFlight, 0);
});

void test('events are rate-limited per experiment: a burst, then one per refill period', () => {
  const budget = new EventBudget();
  const t0 = 1_000_000;
  let allowed = 0;
  for (let i = 0; i < 200; i++) if (budget.take('u1', t0)) allowed += 1;
  assert.equal(allowed, EVENT_BURST, '200 runs finishing in one pass do not mean 200 Event writes');
  assert.ok(budget.take('u2', t0), 'another experiment has its own budget');
  assert.ok(!budget.take('u1', t0 + 1000));
  assert.ok(budget.take('u1', t0 + 10_000), 'the budget refills');
});

void test(
  'a deleted pod is not deleted again for 30 s, is after a minute, ' + 'and deleted names are forgotten by then',
  async () => {
    let nowMs = 1_000_000;
    const writer = new RecordingWriter(new Store(), new Store());
    const sent: string[] = [];
    writer.deletePod = (_ns: string, name: string): Promise<void> => {
      sent.push(name);
      return Promise.resolve();
    };
    const bg = new BackgroundWrites(
      writer,
      log,
      () => undefined,
      () => nowMs,
    );
    for (let i = 0; i < 1000; i++) bg.deletePod('ns', `p${i}`, 'u1');
    await bg.idle();
    assert.equal(bg.retained()['recentDeletes'], 1000);
    nowMs += DELETED_RECENTLY_MS - 1;
    bg.deletePod('ns', 'p0', 'u1');
    assert.equal(sent.length, 1000, 'the cache has not shown the deletion yet: not sent twice');
    nowMs += 2 * DELETED_RECENTLY_MS;
    assert.equal(bg.retained()['recentDeletes'], 0, 'names of pods deleted long ago are not kept, asked again or not');
    bg.deletePod('ns', 'p0', 'u1');
    await bg.idle();
    assert.equal(sent.length, 1001, 'a pod the cache still shows a minute later is deleted again');
    bg.forgetDeletions('u1');
    assert.equal(bg.retained()['recentDeletes'], 0, "a released experiment's pods gone: nothing of it is kept");
  },
);

void test('status of a big experiment is rebuilt at most once per 20 times its build cost, at least every 10 s', () => {
  assert.equal(statusRefreshMs(5), STATUS_REFRESH_MS, 'a cheap build: once a second, as before');
  assert.equal(statusRefreshMs(150), 20 * 150, 'a 150 ms build takes at most 1/20 of the time');
  assert.equal(statusRefreshMs(5000), STATUS_REFRESH_MAX_MS, 'never more than 10 s behind the run table');
  assert.ok(STATUS_COST_SHARE >= 10);
});
