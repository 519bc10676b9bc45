// Controller scale against a real kube-apiserver + etcd + nats-server (issue #16's floors):
//   phase "many": N experiments x M runs; phase "big": 1 experiment x R runs (default 20,000).
// Every pod is "run" by an in-process fake agent (a complete simulated message sequence), so the
// figures are the controller's. The controller runs alone in a child process (bench/controller-
// process.ts) so its RSS is its own. Reported: reconcile duration p50/p99 apart from queue wait,
// errors, the big experiment's status size, and the controller's RSS once that experiment finished
// and its feed was released (after the controller's own pod deletions drained, then idling until RSS
// stops falling, and again after a memory-reducing GC). Baseline, measured in the same run on the same
// server: no-op status patches with the same concurrency (the API server's write floor).
//
//   node --import tsx bench/controller.ts [--experiments 200] [--runs 10] [--big-runs 20000] [--workers 4]
//     [--big-parallelism 200] [--drain-s 300] [--cpu-prof DIR]  (DIR: a V8 CPU profile of the controller)
// --drain-s: after the big experiment finished, how long at most to wait for the controller's own pod
// deletions (its pod cache empty) before reading its memory; the wait and the pods left are printed.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parseArgs } from 'node:util';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { EnergyExperimentStatusSchema, type EnergyExperimentStatus } from '../api/status.ts';
import { ClientNodeWriter } from '../controller/kube.ts';
import { openNatsBus } from '../lib/bus/index.ts';
import { startKube, kubeSkipReason, type KubeCluster } from '../tests/support/kube.ts';
import { startNatsServer } from '../tests/support/nats-server.ts';
import { fakeAgentRunner } from '../tests/support/fake-agent.ts';

const { values } = parseArgs({
  options: {
    experiments: { type: 'string', default: '200' },
    runs: { type: 'string', default: '10' },
    'big-runs': { type: 'string', default: '20000' },
    workers: { type: 'string', default: '4' },
    'big-parallelism': { type: 'string', default: '200' },
    'drain-s': { type: 'string', default: '300' },
    /** Writes a V8 CPU profile of the controller process into this directory (chrome://inspect, speedscope). */
    'cpu-prof': { type: 'string' },
    /** Writes heap snapshots of the controller process (started, after the big experiment's release) here. */
    'heap-snapshot': { type: 'string' },
  },
});
const EXPERIMENTS = Number(values.experiments);
const RUNS = Number(values.runs);
const BIG_RUNS = Number(values['big-runs']);
const WORKERS = Number(values.workers);
const BIG_PARALLELISM = Number(values['big-parallelism']);
/** At most this long is waited after the big experiment finished for the controller's pod deletions. */
const DRAIN_S = Number(values['drain-s']);
const NS = 'bench';
const BASE = `  model: { name: bench/tiny, source: { random: {} } }
  backends: [{ type: pytorch }]
  measurement: { cycles: CYCLES, baselineSeconds: 0, cooldownSeconds: 0, warmupRequests: 0, minWindowSeconds: 0 }
  policy: { retries: 0, runTimeoutSeconds: 3600 }
`;

function manyManifest(i: number): string {
  const points = Array.from({ length: RUNS }, (_, k) => k + 1).join(', ');
  return `apiVersion: llem.dev/v1alpha1
kind: EnergyExperiment
metadata: { name: exp-${i}, namespace: ${NS} }
spec:
${BASE.replace('CYCLES', '1')}  sweep: { axes: { pytorch.maxBatchSize: [${points}] } }
  placement: { parallelism: ${RUNS} }
`;
}

/** R runs = 50 batch sizes x C concurrencies x 10 cycles (an axis holds at most 64 values). */
function bigManifest(): string {
  const concurrencies = Math.max(1, Math.round(BIG_RUNS / 500));
  const seq = (n: number): string => Array.from({ length: n }, (_, k) => k + 1).join(', ');
  return `apiVersion: llem.dev/v1alpha1
kind: EnergyExperiment
metadata: { name: big, namespace: ${NS} }
spec:
${BASE.replace('CYCLES', '10')}  sweep: { axes: { pytorch.maxBatchSize: [${seq(50)}], workload.concurrency: [${seq(concurrencies)}] } }
  workload: { requests: 64 }
  placement: { parallelism: ${BIG_PARALLELISM} }
`;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

interface Taken {
  durations: number[];
  queued: number[];
  errors: number;
  feeds: number;
  rssBytes: number;
  heapUsedBytes?: number;
  heapCommittedBytes?: number;
  externalBytes?: number;
  arrayBuffersBytes?: number;
  anonBytes?: number;
  retained?: Record<string, number>;
  /** The slowest passes, with the time each pass phase took (ms). */
  slowest?: { ms: number; parts: Record<string, number> }[];
}

function slowestPasses(t: Taken): string {
  const phases = (p: Record<string, number>): string =>
    Object.entries(p)
      .filter(([, ms]) => ms >= 0.5)
      .map(([k, ms]) => `${k} ${ms.toFixed(0)}`)
      .join(', ');
  return (t.slowest ?? []).map((s) => `${s.ms.toFixed(0)} ms (${phases(s.parts)})`).join('; ');
}

function ask(child: ChildProcess, cmd: string, path?: string): Promise<Taken> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Taken));
    child.send({ cmd, ...(path !== undefined ? { path } : {}) });
  });
}

async function heapSnapshot(child: ChildProcess, name: string): Promise<void> {
  const dir = values['heap-snapshot'];
  if (dir === undefined) return;
  await ask(child, 'heap-snapshot', join(dir, `${name}.heapsnapshot`));
  console.log(`heap snapshot: ${join(dir, `${name}.heapsnapshot`)}`);
}

type Items = { items: { metadata: { name: string }; status?: unknown }[] };

async function waitFinished(kube: KubeCluster, names: Set<string>, deadlineMs: number): Promise<number> {
  const api = kube.kubeConfig().makeApiClient(CustomObjectsApi);
  let finished = 0;
  let lastReportMs = Date.now();
  while (Date.now() < deadlineMs) {
    await new Promise((r) => setTimeout(r, 2000));
    let list: Items;
    try {
      list = (await api.listNamespacedCustomObject({
        group: 'llem.dev',
        version: 'v1alpha1',
        plural: 'energyexperiments',
        namespace: NS,
      })) as Items;
    } catch (err) {
      // A loaded API server answers 504 now and then: the bench's own poll, not the controller's.
      console.log(`poll failed (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); polling again`);
      continue;
    }
    if (Date.now() - lastReportMs > 60_000 && names.size === 1) {
      // A long phase says how far it got (runs succeeded / total, runs failed and why) once a minute.
      lastReportMs = Date.now();
      const s = EnergyExperimentStatusSchema.parse(list.items.find((e) => names.has(e.metadata.name))?.status ?? {});
      const why = s.runs.find((r) => r.phase === 'Failed')?.message?.slice(0, 120) ?? '';
      console.log(`progress: ${s.progress?.summary ?? '?'} failed=${s.progress?.failed ?? 0} ${why}`);
    }
    finished = list.items.filter(
      (e) =>
        names.has(e.metadata.name) &&
        ['Succeeded', 'Failed'].includes(EnergyExperimentStatusSchema.parse(e.status ?? {}).phase ?? ''),
    ).length;
    if (finished === names.size) break;
  }
  return finished;
}

function summary(t: Taken): string {
  const d = [...t.durations].sort((a, b) => a - b);
  const q = [...t.queued].sort((a, b) => a - b);
  return `reconciles=${d.length} p50_ms=${quantile(d, 0.5).toFixed(1)} p99_ms=${quantile(d, 0.99).toFixed(1)} queue_p99_ms=${quantile(q, 0.99).toFixed(1)} errors=${t.errors}`;
}

async function main(): Promise<void> {
  const skip = kubeSkipReason();
  if (skip !== undefined) {
    console.log(`RESULT skipped=1 reason="${skip}"`);
    return;
  }
  const kube = await startKube();
  const nats = await startNatsServer();
  const agentBus = await openNatsBus({ servers: nats.url, name: 'bench-agents' });
  await agentBus.ensureLayout();
  const player = await kube.startNodePlayer({ run: fakeAgentRunner(agentBus) });
  let child: ChildProcess | undefined;
  try {
    await kube.kubectlOk(['create', 'namespace', NS]);
    // Baseline: one no-op status patch per experiment, same concurrency as the controller's workers.
    const docs = Array.from({ length: EXPERIMENTS }, (_, i) => manyManifest(i)).join('---\n');
    // --experiments 0 runs the big phase alone.
    if (EXPERIMENTS > 0) await kube.kubectlOk(['apply', '-f', '-'], { input: docs });
    const names = Array.from({ length: EXPERIMENTS }, (_, i) => `exp-${i}`);
    const writer = new ClientNodeWriter(kube.kubeConfig());
    const b0 = performance.now();
    // An empty merge patch: the API server's write floor, with nothing of the controller's in it.
    const empty = {} as EnergyExperimentStatus;
    await pool(names, WORKERS, async (n) => void (await writer.patchExperimentStatus(NS, n, empty)));
    const baselinePerS = EXPERIMENTS / ((performance.now() - b0) / 1000);

    // Bundled as the controller image bundles the CLI (scripts/bundle.mjs): tsx's transform caches
    // would add ~100 MB of RSS that a deployed controller does not have.
    const bundleDir = await mkdtemp(join(tmpdir(), 'llem-bench-controller-'));
    const script = join(bundleDir, 'controller-process.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./controller-process.ts', import.meta.url))],
      outfile: script,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      external: ['koffi', 'playwright-core'],
      logLevel: 'warning',
      banner: {
        js: "import { createRequire as __llemCreateRequire } from 'node:module'; const require = __llemCreateRequire(import.meta.url);",
      },
    });
    // glibc keeps freed memory in per-thread arenas; two arenas and an eager trim return what a
    // released experiment freed (the same environment a controller image would set).
    // NODE_PATH: the bundle is written outside the checkout; koffi (external, as in the image's
    // node_modules) is found through it.
    const nodePath = fileURLToPath(new URL('../node_modules', import.meta.url));
    const env = { ...process.env, MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '1048576', NODE_PATH: nodePath };
    child = fork(
      script,
      [JSON.stringify({ kubeconfig: kube.kubeconfigPath, natsUrl: nats.url, namespace: NS, workers: WORKERS })],
      {
        execArgv: [
          '--expose-gc',
          ...(values['cpu-prof'] !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : []),
        ],
        env,
      },
    );
    child.once('exit', () => void rm(bundleDir, { recursive: true, force: true }));
    await new Promise((r) => child?.once('message', r));
    const idle = await ask(child, 'rss');
    await heapSnapshot(child, 'started');
    console.log(
      `controller started: rss ${(idle.rssBytes / 1e6).toFixed(1)} MB, heap ${((idle.heapUsedBytes ?? 0) / 1e6).toFixed(1)} MB`,
    );

    const t0 = performance.now();
    const manyDone = await waitFinished(kube, new Set(names), Date.now() + 20 * 60_000);
    const manyS = (performance.now() - t0) / 1000;
    const many = await ask(child, 'take');
    console.log(`many: slowest passes: ${slowestPasses(many)}`);
    console.log(
      `many: ${manyDone}/${EXPERIMENTS} experiments x ${RUNS} runs in ${manyS.toFixed(1)} s; ${summary(many)}`,
    );

    const t1 = performance.now();
    await kube.kubectlOk(['apply', '-f', '-'], { input: bigManifest() });
    const bigDone = await waitFinished(kube, new Set(['big']), Date.now() + 40 * 60_000);
    const bigS = (performance.now() - t1) / 1000;
    const big = await ask(child, 'take');
    console.log(`big: slowest passes: ${slowestPasses(big)}`);
    const obj = JSON.parse(await kube.kubectlOk(['get', 'ee', 'big', '-n', NS, '-o', 'json'])) as { status?: unknown };
    const status = EnergyExperimentStatusSchema.parse(obj.status ?? {});
    const statusBytes = Buffer.byteLength(JSON.stringify(obj.status ?? {}));
    // The controller deletes the finished pods itself (at most MAX_DELETES_IN_FLIGHT at a time) and its
    // pod cache holds each until the watch shows the deletion: waited for (at most DRAIN_S), since the
    // floor is the memory of the released experiment, not of a deletion backlog on a loaded API server.
    const drainT0 = performance.now();
    let drain = await ask(child, 'rss');
    const podsAtFinish = drain.retained?.['cachedPods'] ?? 0;
    let lastPrintMs = 0;
    while ((drain.retained?.['cachedPods'] ?? 0) + (drain.retained?.['podDeletions'] ?? 0) > 0) {
      const waitedMs = performance.now() - drainT0;
      if (waitedMs > DRAIN_S * 1000) break;
      if (waitedMs - lastPrintMs > 30_000) {
        lastPrintMs = waitedMs;
        console.log(
          `draining: ${drain.retained?.['cachedPods'] ?? 0} pods in the controller's cache, ` +
            `${drain.retained?.['podDeletions'] ?? 0} deletions queued or in flight`,
        );
      }
      await new Promise((r) => setTimeout(r, 2000));
      drain = await ask(child, 'rss');
    }
    const drainS = (performance.now() - drainT0) / 1000;
    const podsAfterDrain = drain.retained?.['cachedPods'] ?? 0;
    console.log(
      `waited ${drainS.toFixed(0)} s for the controller's own pod deletions: ` +
        `cached pods ${podsAtFinish} -> ${podsAfterDrain}`,
    );
    // Released and idle: V8's memory reducer shrinks the heap of an idle process by itself (GCs ~8 s
    // after allocation slows down); RSS is sampled until it stops falling (at most 60 s).
    let mem = await ask(child, 'rss');
    for (let waited = 0; waited < 60_000; waited += 5000) {
      await new Promise((r) => setTimeout(r, 5000));
      const next = await ask(child, 'rss');
      const falling = next.rssBytes < mem.rssBytes - 1e6;
      mem = next;
      if (!falling && waited >= 15_000) break;
    }
    const collected = await ask(child, 'rss-gc');
    const held = Object.entries(mem.retained ?? {})
      .filter(([, n]) => n !== 0)
      .map(([k, n]) => `${k}=${n}`)
      .join(' ');
    const serverPods = (await kube.kubectlOk(['get', 'pods', '-n', NS, '-o', 'name']))
      .split('\n')
      .filter(Boolean).length;
    console.log(`after release, still held: ${held === '' ? 'nothing' : held}; pods on the API server: ${serverPods}`);
    await heapSnapshot(child, 'released');
    console.log(
      `big: ${status.progress?.summary ?? '?'} runs (${status.phase ?? '?'}) in ${bigS.toFixed(1)} s; ${summary(big)}; status ${statusBytes} bytes; feeds in memory ${mem.feeds}; rss ${(mem.rssBytes / 1e6).toFixed(1)} MB, heap ${((mem.heapUsedBytes ?? 0) / 1e6).toFixed(1)} MB (committed ${((mem.heapCommittedBytes ?? 0) / 1e6).toFixed(1)} MB), external ${((mem.externalBytes ?? 0) / 1e6).toFixed(1)} MB, array buffers ${((mem.arrayBuffersBytes ?? 0) / 1e6).toFixed(1)} MB; after a memory-reducing GC rss ${(collected.rssBytes / 1e6).toFixed(1)} MB`,
    );
    const all = {
      durations: [...many.durations, ...big.durations],
      queued: [...many.queued, ...big.queued],
      errors: many.errors + big.errors,
    } as Taken;
    const sorted = [...all.durations].sort((a, b) => a - b);
    const bigSorted = [...big.durations].sort((a, b) => a - b);
    console.log(
      `RESULT experiments=${EXPERIMENTS} runs_per_experiment=${RUNS} many_finished=${manyDone} many_wall_s=${manyS.toFixed(1)} many_errors=${many.errors} ` +
        `many_p99_ms=${quantile(
          [...many.durations].sort((a, b) => a - b),
          0.99,
        ).toFixed(1)} ` +
        `big_runs=${status.progress?.total ?? 0} big_succeeded=${status.progress?.succeeded ?? 0} big_finished=${bigDone} big_wall_s=${bigS.toFixed(1)} big_errors=${big.errors} ` +
        `big_p99_ms=${quantile(bigSorted, 0.99).toFixed(1)} reconcile_p50_ms=${quantile(sorted, 0.5).toFixed(1)} reconcile_p99_ms=${quantile(sorted, 0.99).toFixed(1)} ` +
        `queue_wait_p99_ms=${quantile(
          [...all.queued].sort((a, b) => a - b),
          0.99,
        ).toFixed(1)} errors=${all.errors} status_bytes=${statusBytes} ` +
        `rss_at_start_mb=${(idle.rssBytes / 1e6).toFixed(1)} drain_wait_s=${drainS.toFixed(0)} ` +
        `cached_pods_at_finish=${podsAtFinish} cached_pods_at_reading=${mem.retained?.['cachedPods'] ?? NaN} ` +
        `rss_after_release_mb=${(mem.rssBytes / 1e6).toFixed(1)} ` +
        `rss_after_release_gc_mb=${(collected.rssBytes / 1e6).toFixed(1)} ` +
        `anon_after_release_mb=${((mem.anonBytes ?? NaN) / 1e6).toFixed(1)} ` +
        `heap_committed_after_release_mb=${((mem.heapCommittedBytes ?? 0) / 1e6).toFixed(1)} ` +
        `heap_after_release_mb=${((mem.heapUsedBytes ?? 0) / 1e6).toFixed(1)} feeds_after_release=${mem.feeds} ` +
        `baseline_status_patches_per_s=${baselinePerS.toFixed(1)}`,
    );
  } finally {
    if (child !== undefined && child.exitCode === null) {
      child.send({ cmd: 'stop' });
      await new Promise((r) => setTimeout(r, 2000));
      child.kill('SIGKILL');
    }
    await player.stop();
    await agentBus.close();
    await kube.stop();
    await nats.cleanup();
  }
}

await main();
