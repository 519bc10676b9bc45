// Controller throughput against a real kube-apiserver + etcd + nats-server: N experiments x M runs,
// every pod "run" by an in-process fake agent (publishes a complete simulated message sequence),
// so the figure is the controller's, not the agents'. Baseline, measured in the same run on the
// same server: no-op status patches with the same concurrency (the API server's write floor).
//
//   node --import tsx bench/controller.ts [--experiments 200] [--runs 10] [--workers 4]
import { parseArgs } from 'node:util';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { Controller } from '../controller/index.ts';
import { ClientNodeWriter } from '../controller/kube.ts';
import { openNatsBus } from '../lib/bus/index.ts';
import { rootLogger } from '../lib/log.ts';
import { startKube, kubeSkipReason } from '../tests/support/kube.ts';
import { startNatsServer } from '../tests/support/nats-server.ts';
import { fakeAgentRunner } from '../tests/support/fake-agent.ts';

const { values } = parseArgs({ options: { experiments: { type: 'string', default: '200' }, runs: { type: 'string', default: '10' }, workers: { type: 'string', default: '4' } } });
const EXPERIMENTS = Number(values.experiments);
const RUNS = Number(values.runs);
const WORKERS = Number(values.workers);
const NS = 'bench';

function manifest(i: number): string {
  const points = Array.from({ length: RUNS }, (_, k) => k + 1).join(', ');
  return `apiVersion: llem.dev/v1alpha1
kind: EnergyExperiment
metadata: { name: exp-${i}, namespace: ${NS} }
spec:
  model: { name: bench/tiny, source: { random: {} } }
  backends: [{ type: pytorch }]
  sweep: { axes: { pytorch.maxBatchSize: [${points}] } }
  measurement: { cycles: 1, baselineSeconds: 0, cooldownSeconds: 0, warmupRequests: 0, minWindowSeconds: 0 }
  placement: { parallelism: ${RUNS} }
  policy: { retries: 0 }
`;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++] as T);
  }));
}

async function main(): Promise<void> {
  const skip = kubeSkipReason();
  if (skip !== undefined) {
    console.log(`RESULT skipped=1 reason="${skip}"`);
    return;
  }
  const kube = await startKube();
  const nats = await startNatsServer();
  const controllerBus = await openNatsBus({ servers: nats.url, name: 'bench-controller' });
  const agentBus = await openNatsBus({ servers: nats.url, name: 'bench-agents' });
  await controllerBus.ensureLayout();
  const player = await kube.startNodePlayer({ run: fakeAgentRunner(agentBus) });
  try {
    await kube.kubectlOk(['create', 'namespace', NS]);
    const docs = Array.from({ length: EXPERIMENTS }, (_, i) => manifest(i)).join('---\n');
    await kube.kubectlOk(['apply', '-f', '-'], { input: docs });
    const names = Array.from({ length: EXPERIMENTS }, (_, i) => `exp-${i}`);

    // Baseline: one no-op status patch per experiment, same concurrency as the controller's workers.
    const writer = new ClientNodeWriter(kube.kubeConfig());
    const b0 = performance.now();
    await pool(names, WORKERS, async (n) => void (await writer.patchExperimentStatus(NS, n, {})));
    const baselinePerS = EXPERIMENTS / ((performance.now() - b0) / 1000);

    const durations: number[] = [];
    let errors = 0;
    const controller = new Controller({
      kubeConfig: kube.kubeConfig(),
      bus: controllerBus,
      namespace: NS,
      workers: WORKERS,
      podOptions: { agentImage: 'llem/agent:bench', backendImages: {}, agentEnv: [], simulate: true },
      leaderElection: { enabled: false, namespace: NS, name: 'bench' },
      probe: null,
      log: rootLogger.child({ component: 'bench-controller' }),
      onReconcile: (_k, ms, ok) => {
        durations.push(ms);
        if (!ok) errors += 1;
      },
    });
    const t0 = performance.now();
    await controller.start();
    const api = kube.kubeConfig().makeApiClient(CustomObjectsApi);
    let finished = 0;
    const deadline = Date.now() + 30 * 60 * 1000;
    while (finished < EXPERIMENTS && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      const list = (await api.listNamespacedCustomObject({ group: 'llem.dev', version: 'v1alpha1', plural: 'energyexperiments', namespace: NS })) as { items: { status?: { phase?: string } }[] };
      finished = list.items.filter((e) => e.status?.phase === 'Succeeded' || e.status?.phase === 'Failed').length;
    }
    const wallS = (performance.now() - t0) / 1000;
    await controller.stop();
    const sorted = [...durations].sort((a, b) => a - b);
    const p50 = quantile(sorted, 0.5);
    const p99 = quantile(sorted, 0.99);
    const perS = durations.length / wallS;
    console.log(`experiments finished ${finished}/${EXPERIMENTS} in ${wallS.toFixed(1)} s; ${durations.length} reconciles, ${errors} errors`);
    console.log(
      `RESULT experiments=${EXPERIMENTS} runs=${EXPERIMENTS * RUNS} finished=${finished} wall_s=${wallS.toFixed(1)} reconciles=${durations.length} ` +
        `reconciles_per_s=${perS.toFixed(1)} runs_per_s=${((finished * RUNS) / wallS).toFixed(1)} p50_ms=${p50.toFixed(1)} p99_ms=${p99.toFixed(1)} ` +
        `errors=${errors} baseline_status_patches_per_s=${baselinePerS.toFixed(1)} reconciles_vs_baseline=${(perS / baselinePerS).toFixed(2)}`,
    );
  } finally {
    await player.stop();
    await agentBus.close();
    await controllerBus.close();
    await kube.stop();
    await nats.cleanup();
  }
}

await main();
