// The test control plane itself: it must start, enforce RBAC, play the node and stop cleanly,
// because every Kubernetes test (controller, Helm RBAC) builds on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { kubeSkipReason, startKube } from '../../support/kube.ts';

void test(
  'starts etcd and kube-apiserver, installs the CRD, enforces RBAC, plays the node and stops cleanly',
  { skip: kubeSkipReason(), timeout: 300_000 },
  async () => {
    const kube = await startKube();
    let stopped = false;
    try {
      assert.match(
        await kube.kubectlOk(['get', 'crd', 'energyexperiments.llem.dev', '-o', 'name']),
        /energyexperiments\.llem\.dev/,
      );
      assert.match(await kube.kubectlOk(['auth', 'can-i', 'create', 'pods']), /yes/);
      const denied = await kube.kubectl(['auth', 'can-i', 'create', 'pods'], { user: 'controller' });
      assert.match(denied.stdout, /no/, 'the controller user has no rights until bound');
      await kube.kubectlOk(['create', 'serviceaccount', 'probe', '-n', 'default']);
      assert.match(
        await kube.kubectlOk(['create', 'token', 'probe', '-n', 'default']),
        /^ey/,
        'TokenRequest works (ServiceAccount tokens for RBAC tests)',
      );

      const player = await kube.startNodePlayer({
        run: () => Promise.resolve({ exitCode: 1, reason: 'OOMKilled', message: 'simulated OOM' }),
      });
      await kube.kubectlOk(['run', 'p1', '--image=x', '--restart=Never', '--labels=llem.dev/run=r1']);
      let phase = '';
      for (let i = 0; i < 100 && phase !== 'Failed'; i++) {
        await new Promise((r) => setTimeout(r, 200));
        phase = (
          await kube.kubectl([
            'get',
            'pod',
            'p1',
            '-o',
            'jsonpath={.status.phase}/{.status.containerStatuses[0].state.terminated.reason}',
          ])
        ).stdout;
        if (phase.startsWith('Failed')) phase = 'Failed';
      }
      assert.equal(phase, 'Failed');
      assert.deepEqual(player.podsSeen(), ['p1']);
      const dir = kube.dir;
      await kube.stop();
      stopped = true;
      assert.equal(existsSync(dir), false, 'temp dir removed');
    } finally {
      if (!stopped) await kube.stop();
    }
  },
);
