// bench/agent: the load generator against the mock server on loopback.
//  1. Throughput: >= 500 concurrent streams, >= 20,000 streamed tokens/s, client TTFT p99 within
//     5 ms of the server's injected TTFT (after a 2 s ramp; the server runs as a few cluster
//     workers in a child process so that its own lag stays small). Run twice in the same process:
//     the client as the agent sets it up (threads from clientThreadsFor) and, as the baseline, all
//     streams on one event loop.
//  2. Event-loop delay p99 of the loops that read the streams (the worst of them and the main one)
//     with the 10 Hz telemetry sampler (worker thread, each read blocking 4 ms like NVML's energy
//     call on an H200) vs without it; plus the same sampler run inline on the main loop, to show the
//     measurement can see a difference.
// Usage: node --import tsx bench/agent.ts [--streams 600] [--seconds 10] [--threads N]
import { spawn, type ChildProcess } from 'node:child_process';
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { RequestResult } from '../agent/load/client.ts';
import { RequestFactory, runLoad, type Workload } from '../agent/load/generator.ts';
import { startMockServer } from '../agent/mock-server.ts';
import { clientThreadsFor, createLoadSender, type LoadSender } from '../agent/load/threaded-client.ts';
import { createSimulatedGpu } from '../agent/telemetry/sampler.ts';
import { createLoadCell, SimulatedReader } from '../agent/telemetry/simulated.ts';

const { values } = parseArgs({ options: { streams: { type: 'string' }, seconds: { type: 'string' }, threads: { type: 'string' }, serve: { type: 'boolean' } } });
const STREAMS = Number(values.streams ?? 600);
const SECONDS = Number(values.seconds ?? 10);
const THREADS = clientThreadsFor(STREAMS, availableParallelism(), values.threads);
const TTFT_MS = 50;
const ITL_MS = 20;
/** Varied output lengths, as in real traffic: fixed ones make every stream end in the same engine step. */
const OUTPUT_TOKENS = { distribution: 'uniform' as const, min: 32, max: 96 };
/** Requests started before this (the all-at-once first wave) are left out of the TTFT figures. */
const RAMP_MS = 2000;
const NVML_READ_COST_MS = 4;
const SERVER_WORKERS = Math.max(1, Math.min(8, availableParallelism() - 4));

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/** The mock server runs in a child process (this script with --serve): its own core, as in real life. */
async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? '', '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      const m = /listening on (\S+)/.exec(l);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`mock server exited ${code}`)));
  });
  return { url, child };
}

const workload = (concurrency: number): Workload => ({
  api: 'completions', model: 'mock-simulated', mode: 'concurrency', concurrency, ratePerSecond: 1,
  inputTokens: 128, outputTokens: OUTPUT_TOKENS, ignoreEos: true, temperature: 0, seed: 42,
});

async function drive(client: LoadSender, concurrency: number, seconds: number): Promise<{ results: RequestResult[]; durationMs: number }> {
  const results: RequestResult[] = [];
  const w = workload(concurrency);
  const stats = await runLoad(client, new RequestFactory(w), w, {
    requests: concurrency, minDurationMs: seconds * 1000, signal: new AbortController().signal, onResult: (r) => results.push(r),
  });
  return { results, durationMs: stats.durationMs };
}

interface Throughput {
  streams: number;
  requests_ok: number;
  requests_failed: number;
  tokens_per_s: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  ttft_injected_ms: number;
  itl_p50_ms: number;
}

async function throughput(url: string, threads: number): Promise<Throughput> {
  // Throughput over the whole run, ramp included (conservative); TTFT once the ramp is over.
  const client = createLoadSender({ baseUrl: url, timeoutMs: 60_000 }, threads);
  const t0 = performance.now();
  const { results, durationMs } = await drive(client, STREAMS, SECONDS + RAMP_MS / 1000);
  client.close();
  const ok = results.filter((r) => r.ok);
  const tokens = ok.reduce((s, r) => s + r.outputTokens, 0);
  const ttft = ok.filter((r) => r.startMs >= t0 + RAMP_MS).map((r) => r.ttftMs ?? NaN);
  return {
    streams: STREAMS, requests_ok: ok.length, requests_failed: results.length - ok.length,
    tokens_per_s: Math.round(tokens / (durationMs / 1000)), ttft_p50_ms: pct(ttft, 0.5), ttft_p99_ms: pct(ttft, 0.99),
    ttft_injected_ms: TTFT_MS, itl_p50_ms: pct(ok.flatMap((r) => r.itlMs), 0.5),
  };
}

/** Event-loop delay p99 (ms) of the load generator (main loop and stream loops, the worst) while `during` runs beside it. */
async function loopDelayP99(url: string, seconds: number, during: { start(): Promise<void>; stop(): Promise<void> } | null): Promise<number> {
  const client = createLoadSender({ baseUrl: url, timeoutMs: 60_000 }, THREADS);
  await drive(client, 200, 0.5);
  await during?.start();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await client.loopDelayP99Ms(true);
  await drive(client, 200, seconds);
  const loops = await client.loopDelayP99Ms();
  h.disable();
  await during?.stop();
  client.close();
  return Math.max(h.percentile(99) / 1e6, ...loops);
}

const workerSampler = (): { start(): Promise<void>; stop(): Promise<void> } => {
  const t = createSimulatedGpu({ sampleIntervalMs: 100, batchIntervalMs: 1000, readCostMs: NVML_READ_COST_MS });
  return { start: async () => void (await t.start(() => undefined)), stop: () => t.stop() };
};

const inlineSampler = (): { start(): Promise<void>; stop(): Promise<void> } => {
  const reader = new SimulatedReader(createLoadCell(), { readCostMs: NVML_READ_COST_MS });
  let timer: NodeJS.Timeout | undefined;
  return {
    start: async () => {
      reader.open();
      timer = setInterval(() => reader.read(), 100);
    },
    stop: async () => clearInterval(timer),
  };
};

async function main(): Promise<void> {
  const { url, child } = await startServer();
  try {
    const base = await throughput(url, 1);
    const t = await throughput(url, THREADS);
    const off: number[] = [];
    const on: number[] = [];
    // Interleaved rounds, so drift in machine load hits both sides alike.
    for (let i = 0; i < 2; i++) {
      off.push(await loopDelayP99(url, 3, null));
      on.push(await loopDelayP99(url, 3, workerSampler()));
    }
    const inline = await loopDelayP99(url, 3, inlineSampler());
    const elOff = pct(off, 0.5);
    const elOn = pct(on, 0.5);
    const r = {
      ...t, client_threads: THREADS, ttft_p99_excess_ms: t.ttft_p99_ms - TTFT_MS,
      baseline_1loop_tokens_per_s: base.tokens_per_s, baseline_1loop_ttft_p99_excess_ms: base.ttft_p99_ms - TTFT_MS,
      ttft_excess_vs_1loop: (t.ttft_p99_ms - TTFT_MS) / (base.ttft_p99_ms - TTFT_MS), el_p99_off_ms: elOff, el_p99_on_ms: elOn,
      el_p99_ratio: elOn / elOff, el_p99_increase_ms: elOn - elOff, el_p99_inline_ms: inline,
    };
    const pass = r.streams >= 500 && r.tokens_per_s >= 20_000 && r.ttft_p99_excess_ms <= 5 && r.el_p99_increase_ms < 1 && r.requests_failed === 0;
    console.log(JSON.stringify({ ...r, el_p99_off_rounds_ms: off, el_p99_on_rounds_ms: on }));
    const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));
    console.log(`RESULT ${Object.entries(r).map(([k, v]) => `${k}=${fmt(v)}`).join(' ')} pass=${pass}`);
  } finally {
    child.kill('SIGTERM');
  }
}

/**
 * Child mode: the mock server in its own processes, SERVER_WORKERS of them sharing one port
 * (node:cluster), so that the server side is not the bottleneck and any TTFT excess measured is
 * the client's own.
 */
async function serve(): Promise<void> {
  if (cluster.isPrimary) {
    let listening = 0;
    cluster.on('listening', (_w, address) => {
      if (++listening === SERVER_WORKERS) console.log(`listening on http://127.0.0.1:${address.port}`);
    });
    for (let i = 0; i < SERVER_WORKERS; i++) cluster.fork();
    process.once('SIGTERM', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill();
      process.exit(0);
    });
    return;
  }
  await startMockServer({ port: 0, ttft: { meanMs: TTFT_MS }, itl: { meanMs: ITL_MS }, maxBatch: 100_000 });
}

if (values.serve === true) {
  await serve();
} else {
  await main();
}
