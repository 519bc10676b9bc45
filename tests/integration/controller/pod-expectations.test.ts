// Pod expectations against a real kube-apiserver (controller/expectations.ts, ADR 0028): a pod the
// controller created counts as existing until its pod cache (the real informer) has caught up with the
// create, however long that takes; a pod that was deleted is judged lost as soon as the cache caught up.
// Issue #16's 20,000-run bench lost 222 runs as PodLost with a fixed 60 s expectation timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ClientNodeWriter } from '../../../controller/kube.ts';
import { podInformer, type ResilientInformer } from '../../../controller/informer.ts';
import { EXPECTATION_TTL_MS, PodExpectations } from '../../../controller/expectations.ts';
import { rootLogger } from '../../../lib/log.ts';
import { kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';

const NS = 'expect';
const log = rootLogger.child({}, { level: 'silent' });

function pod(name: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { 'llem.dev/run': name } },
    spec: { containers: [{ name: 'main', image: 'busybox' }] },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<number> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

void describe('pod expectations against a real API server', { skip: kubeSkipReason(), timeout: 300_000 }, () => {
  let kube: KubeCluster;
  const informers: ResilientInformer<V1Pod>[] = [];

  async function startInformer(): Promise<ResilientInformer<V1Pod>> {
    const i = podInformer(kube.kubeConfig(), NS, () => undefined, log);
    await i.start();
    informers.push(i);
    return i;
  }

  before(async () => {
    kube = await startKube();
    await kube.kubectlOk(['create', 'namespace', NS]);
  });
  after(async () => {
    for (const i of informers) await i.stop();
    await kube?.stop();
  });

  void test('a created pod the lagging pod cache does not show yet is never judged lost, even after the old timeout', async () => {
    let clockMs = Date.now();
    const expectations = new PodExpectations(() => clockMs);
    const writer = new ClientNodeWriter(kube.kubeConfig());
    // The cache stops receiving events (a watch lagging or reconnecting under load): frozen, and behind.
    const lagging = await startInformer();
    await writer.createPod(pod('before-freeze'));
    await until('the cache to show the first pod', () => lagging.get(NS, 'before-freeze') !== undefined);
    await lagging.stop();
    expectations.expect('late');
    assert.equal(expectations.pending('late', lagging.resourceVersion()), true, 'counts as existing while in flight');
    const rv = await writer.createPod(pod('late'));
    expectations.created('late', rv ?? undefined);
    assert.equal(lagging.get(NS, 'late'), undefined, 'the lagging cache does not show the new pod');
    clockMs += 2 * EXPECTATION_TTL_MS;
    assert.equal(
      expectations.pending('late', lagging.resourceVersion()),
      true,
      'a pod that exists is not judged lost because its cache lags, however long',
    );
    // The watch comes back (a relist here): the pod is there, and the expectation is met.
    const fresh = await startInformer();
    assert.ok(fresh.get(NS, 'late') !== undefined);
    expectations.observed(['late']);
    assert.equal(expectations.size, 0);
  });

  void test('a pod deleted before the cache showed it is judged lost once the cache has caught up with its create', async () => {
    const expectations = new PodExpectations();
    const writer = new ClientNodeWriter(kube.kubeConfig());
    const cache = await startInformer();
    expectations.expect('vanishing');
    const rv = await writer.createPod(pod('vanishing'));
    expectations.created('vanishing', rv ?? undefined);
    await writer.deletePod(NS, 'vanishing');
    const deletedAt = Date.now();
    // Judged each time the way a reconcile judges it: expected (not lost) until the cache caught up.
    const tookMs = await until(
      'the vanished pod to be judged lost',
      () => cache.get(NS, 'vanishing') === undefined && !expectations.pending('vanishing', cache.resourceVersion()),
    );
    assert.ok(BigInt(cache.resourceVersion()) >= BigInt(rv ?? '0'), 'the cache had passed the create');
    assert.ok(Date.now() - deletedAt < 10_000, `judged lost ${tookMs} ms after the deletion, not after a timeout`);
  });

  void test("the pod cache keeps each pod's metadata and status but not its spec or managedFields", async () => {
    const writer = new ClientNodeWriter(kube.kubeConfig());
    const cache = await startInformer();
    await writer.createPod(pod('slim'));
    await until('the cache to show the pod', () => cache.get(NS, 'slim') !== undefined);
    const cached = cache.get(NS, 'slim');
    assert.equal(cached?.spec, undefined, 'thousands of finished pods waiting for deletion hold no containers');
    assert.equal(cached?.metadata?.managedFields, undefined);
    assert.equal(cached?.metadata?.labels?.['llem.dev/run'], 'slim');
  });

  void test('the pod cache keeps only the metadata and status fields the controller reads', async () => {
    const writer = new ClientNodeWriter(kube.kubeConfig());
    const cache = await startInformer();
    const p = pod('slimmer');
    p.metadata = { ...p.metadata, annotations: { 'llem.dev/note': 'x'.repeat(2000) } };
    await writer.createPod(p);
    await until('the cache to show the pod', () => cache.get(NS, 'slimmer') !== undefined);
    const meta = cache.get(NS, 'slimmer')?.metadata;
    assert.equal(meta?.annotations, undefined, 'annotations are never read');
    assert.equal(meta?.creationTimestamp, undefined, 'nor the creation time');
    assert.equal(meta?.name, 'slimmer');
    assert.equal(meta?.namespace, NS);
    assert.ok(meta?.resourceVersion !== undefined && meta.uid !== undefined, 'the informer compares versions');
    assert.ok(BigInt(cache.resourceVersion()) > 0n);
  });
});
