// The sampler's cost to the process that drives load: event-loop delay p99 on the main thread and
// CPU time of the sampling worker, at 10 Hz and 100 Hz, against the same window with no sampler
// (the baseline, measured in the same run). Real NVML where a GPU is present; with --simulate, a
// simulated GPU whose reads block 4 ms like an H200's energy call (labelled simulated).
//   node --import tsx bench/sampler-overhead.ts [--simulate] [--seconds N]
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createNvmlTelemetry, createSimulatedGpu, type GpuTelemetry } from '../agent/index.ts';

const { values } = parseArgs({
  options: { simulate: { type: 'boolean', default: false }, seconds: { type: 'string', default: '8' } },
});
const seconds = Number(values.seconds);

interface Measured {
  hz: number;
  loopP99Ms: number;
  loopMaxMs: number;
  samplerCpuPct: number;
  samples: number;
}

function telemetry(hz: number): GpuTelemetry {
  const sampleIntervalMs = Math.round(1000 / hz);
  return values.simulate
    ? createSimulatedGpu({ sampleIntervalMs, batchIntervalMs: 1000, readCostMs: 4 })
    : createNvmlTelemetry({
        visibility: { cudaVisibleDevices: process.env['CUDA_VISIBLE_DEVICES'] },
        sampleIntervalMs,
        batchIntervalMs: 1000,
      });
}

/** Keeps the main thread busy like the load generator: many short timers and small JSON work. */
async function window(hz: number | null): Promise<Measured> {
  const t = hz === null ? null : telemetry(hz);
  let samples = 0;
  if (t !== null) await t.start((batch) => (samples += batch.length));
  const h = monitorEventLoopDelay({ resolution: 1 });
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const wall0 = performance.now();
  h.enable();
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 1));
    JSON.stringify({ tokens: Array.from({ length: 32 }, (_, i) => i) });
  }
  h.disable();
  const wallMs = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  if (t !== null) await t.stop();
  const otherThreadsUs = cpu.user + cpu.system - (main.user + main.system);
  return {
    hz: hz ?? 0,
    loopP99Ms: h.percentile(99) / 1e6,
    loopMaxMs: h.max / 1e6,
    samplerCpuPct: (otherThreadsUs / 1000 / wallMs) * 100,
    samples,
  };
}

const base = await window(null);
const at10 = await window(10);
const at100 = await window(100);
const base2 = await window(null);
const baseP99 = Math.max(base.loopP99Ms, base2.loopP99Ms);
const baseCpu = (base.samplerCpuPct + base2.samplerCpuPct) / 2;
for (const m of [base, at10, at100, base2]) console.log(JSON.stringify(m));
const f = (v: number): string => v.toFixed(3);
console.log(
  `RESULT bench=sampler-overhead source=${values.simulate ? 'simulated' : 'nvml'} seconds=${seconds} ` +
    `loop_p99_ms_none=${f(baseP99)} loop_p99_ms_10hz=${f(at10.loopP99Ms)} loop_p99_ms_100hz=${f(at100.loopP99Ms)} ` +
    `loop_p99_ratio_10hz=${f(at10.loopP99Ms / baseP99)} loop_p99_ratio_100hz=${f(at100.loopP99Ms / baseP99)} ` +
    `sampler_cpu_pct_10hz=${f(at10.samplerCpuPct - baseCpu)} sampler_cpu_pct_100hz=${f(at100.samplerCpuPct - baseCpu)} ` +
    `samples_10hz=${at10.samples} samples_100hz=${at100.samples}`,
);
process.exit(0);
