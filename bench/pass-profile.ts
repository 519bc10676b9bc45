// In-process pass timing (no API server): one experiment of R runs driven through the Reconciler with
// fake stores, the in-process bus and fake agents; prints pass duration quantiles and the slowest passes.
// Half-way the controller is restarted (a new Reconciler and feed over the same stores and bus: the
// run table and checkpoint are read back) and its first passes are timed apart.
//   node --import tsx bench/pass-profile.ts [--runs 5000]
import { parseArgs } from 'node:util';
import { controllerUnderTest, experimentWith, settle, statusOf } from '../tests/unit/controller/fakes.ts';
import { Reconciler } from '../controller/reconciler.ts';
import { BusExperimentStreams } from '../controller/results.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5000' } } });
const RUNS = Number(values.runs);
const concurrencies = Math.max(1, Math.round(RUNS / 500));
const seq = (n: number): number[] => Array.from({ length: n }, (_, k) => k + 1);
const h = await controllerUnderTest({ retryBaseMs: 1 });
h.experiments.put(
  experimentWith({
    model: { name: 'bench/tiny', source: { random: {} } },
    backends: [{ type: 'pytorch' }],
    sweep: { axes: { 'pytorch.maxBatchSize': seq(50), 'workload.concurrency': seq(concurrencies) } },
    workload: { requests: 64 },
    measurement: { cycles: 10, baselineSeconds: 0, cooldownSeconds: 0, warmupRequests: 0, minWindowSeconds: 0 },
    placement: { parallelism: 200 },
    policy: { retries: 0, runTimeoutSeconds: 3600 },
  }),
);
const durations: { ms: number; i: number; phase: string }[] = [];
const restart: number[] = [];
const t0 = performance.now();
let reconciler = h.reconciler;
let streams = h.streams;
let restarted = -1;
for (let i = 0; i < 100_000; i++) {
  if (restarted < 0 && (statusOf(h.experiments).progress?.succeeded ?? 0) >= RUNS / 2) {
    // A restarted controller: nothing in memory; the run table and the checkpoint come from the bus.
    await h.reconciler.background.idle();
    await streams.stopAll();
    const events = { changed: () => undefined, applied: () => undefined, lag: () => undefined };
    streams = new BusExperimentStreams(h.bus, events, h.log, 50);
    const podOptions = { agentImage: 'a', backendImages: {}, agentEnv: [], simulate: true };
    reconciler = new Reconciler({ ...h, streams, podOptions, retryBaseMs: 1 });
    restarted = i;
  }
  const p0 = performance.now();
  await reconciler.reconcile('ns/e1');
  const ms = performance.now() - p0;
  if (restarted >= 0 && i - restarted < 3) restart.push(ms);
  const s = statusOf(h.experiments);
  durations.push({ ms, i, phase: s.progress?.summary ?? '?' });
  if (s.phase === 'Succeeded' || s.phase === 'Failed') break;
  await h.runPods();
  await settle(restarted >= 0 && i - restarted < 3 ? 100 : 1);
}
const sorted = durations.map((d) => d.ms).sort((a, b) => a - b);
const q = (x: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))] ?? NaN).toFixed(1);
console.log(
  'slowest:',
  [...durations]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 12)
    .map((d) => `${d.ms.toFixed(0)}ms@${d.i}(${d.phase})`)
    .join(' '),
);
console.log(
  `RESULT runs=${RUNS} passes=${durations.length} pass_p50_ms=${q(0.5)} pass_p99_ms=${q(0.99)} pass_max_ms=${q(1)} restart_passes_ms=${restart.map((x) => x.toFixed(0)).join(',')} wall_s=${((performance.now() - t0) / 1000).toFixed(1)} heap_mb=${(process.memoryUsage().heapUsed / 1e6).toFixed(0)}`,
);
await streams.stopAll();
await h.bus.close();
