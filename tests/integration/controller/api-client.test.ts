// The controller's API clients reuse their connections (controller/api-client.ts): client-node 2.x
// alone opened a new TLS connection for every request. Counted against a real kube-apiserver.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { CoreV1Api } from '@kubernetes/client-node';
import { ClientNodeWriter } from '../../../controller/kube.ts';
import { sharedAuth } from '../../../controller/api-client.ts';
import { kubeSkipReason, startKube, type KubeCluster } from '../../support/kube.ts';

void describe('API clients against a real kube-apiserver', { skip: kubeSkipReason(), timeout: 300_000 }, () => {
  let kube: KubeCluster;
  before(async () => {
    kube = await startKube();
  });
  after(async () => {
    await kube?.stop();
  });

  void test('30 API calls through the controller writer open a handful of TLS connections, not one per call', async () => {
    const kc = kube.kubeConfig();
    const writer = new ClientNodeWriter(kc);
    const original = tls.connect;
    let connects = 0;
    tls.connect = ((...args: Parameters<typeof tls.connect>) => {
      connects += 1;
      return original(...args);
    }) as typeof tls.connect;
    try {
      // Sequential: each call finds the previous call's connection idle and reuses it.
      for (let i = 0; i < 30; i++) await writer.deletePod('default', `absent-${i}`);
    } finally {
      tls.connect = original;
    }
    assert.ok(connects <= 3, `${connects} TLS connections for 30 calls`);
    assert.ok(sharedAuth(kc).reused >= 27);
  });

  void test('client-node alone opens a connection per call (what the shared pool fixes)', async () => {
    const api = kube.kubeConfig().makeApiClient(CoreV1Api);
    const original = tls.connect;
    let connects = 0;
    tls.connect = ((...args: Parameters<typeof tls.connect>) => {
      connects += 1;
      return original(...args);
    }) as typeof tls.connect;
    try {
      for (let i = 0; i < 10; i++) await api.listNamespacedPod({ namespace: 'default' });
    } finally {
      tls.connect = original;
    }
    assert.equal(connects, 10);
  });
});
