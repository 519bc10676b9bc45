// In-process pass timing (no API server): one experiment of R runs driven through the Reconciler with
// fake stores, the in-process bus and fake agents; prints pass duration quantiles and the slowest passes.
//   node --import tsx bench/pass-profile.ts [--runs 5000]
import { parseArgs } from 'node:util';
import { controllerUnderTest, experimentWith, settle, statusOf } from '../tests/unit/controller/fakes.ts';

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
const t0 = performance.now();
for (let i = 0; i < 100_000; i++) {
  const p0 = performance.now();
  await h.reconciler.reconcile('ns/e1');
  const ms = performance.now() - p0;
  const s = statusOf(h.experiments);
  durations.push({ ms, i, phase: s.progress?.summary ?? '?' });
  if (s.phase === 'Succeeded' || s.phase === 'Failed') break;
  await h.runPods();
  await settle(1);
}
const sorted = durations.map((d) => d.ms).sort((a, b) => a - b);
const q = (x: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))] ?? NaN).toFixed(1);
console.log('slowest:', [...durations].sort((a, b) => b.ms - a.ms).slice(0, 12).map((d) => `${d.ms.toFixed(0)}ms@${d.i}(${d.phase})`).join(' '));
console.log(`RESULT runs=${RUNS} passes=${durations.length} pass_p50_ms=${q(0.5)} pass_p99_ms=${q(0.99)} pass_max_ms=${q(1)} wall_s=${((performance.now() - t0) / 1000).toFixed(1)} heap_mb=${(process.memoryUsage().heapUsed / 1e6).toFixed(0)}`);
await h.streams.stopAll();
await h.bus.close();
