// bench/agent: the load generator against the mock server on loopback (issue #25 item 5).
//  1. Client TTFT error against the server's own timestamps: the mock writes, in each first chunk, when
//     the request arrived and when it wrote that token; client TTFT minus that server TTFT is what the
//     client added (connection, parsing, its own queueing), separated from server queueing. At 128 and
//     512 streams (after a 2 s ramp), the client as the agent sets it up (threads from
//     clientThreadsFor); the baseline in the same run is all 512 streams on one event loop. The error's
//     p99 is also split into its way out (the mock's receive stamp minus the client's send) and its way
//     back (the client's read minus the mock's first-token stamp), with the client's longest GC pause
//     (main thread: the reading loop where the client runs on one thread), to say where a tail came from;
//     and, for every request over 5 ms, what overlapped it (agent-tail.ts: GC pauses of the client and of
//     the mock, which way the error went, each process's run-queue wait): `over5_*` in RESULT, the worst
//     eight in the JSON line.
//  2. Steady-state tokens/s: a steadyState window (agent/window.ts) at 128 streams, against the
//     server's own count of tokens written over the same interval (GET /llem/stats); the old rule
//     (whole requests completed inside the window) is computed from the same run for comparison.
//  3. Event-loop delay p99 of the loops that read the streams with the 10 Hz telemetry sampler
//     (worker thread, each read blocking 4 ms like NVML's energy call on an H200) vs without it;
//     plus the same sampler inline on the main loop, to show the measurement can see a difference.
// The server is one separate process (this script with --serve), so its work never shares the
// client's loop; the two event loops are pinned to separate cores (bench/placement.ts, ADR 0040; bench only,
// as a real server on its own GPU node; LLEM_BENCH_PIN=0 to compare, LLEM_BENCH_RT=1 adds SCHED_FIFO).
// Usage: node --import tsx bench/agent.ts [--seconds 5] [--threads N]
// After changing sources, start it once first (or `node --import tsx bench/agent.ts --serve` for a moment):
// on a cache miss tsx walks its whole disk cache in the background and keeps an esbuild service process
// beside each process, garbage and wake-ups in the client and the mock during the first point (ADR 0037).
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { RequestResult } from '../agent/load/client.ts';
import { RequestFactory, runLoad, type RequestSender, type Workload } from '../agent/load/generator.ts';
import { startMockServer } from '../agent/mock-server.ts';
import { Publisher } from '../agent/publisher.ts';
import { clientThreadsFor, createLoadSender, type LoadSender } from '../agent/load/threaded-client.ts';
import { createSimulatedGpu } from '../agent/telemetry/sampler.ts';
import { createLoadCell, SimulatedReader } from '../agent/telemetry/simulated.ts';
import { runWindow } from '../agent/window.ts';
import { InProcessBus } from '../lib/bus/inprocess.ts';
import { createLatencySketch } from '../lib/sketch/index.ts';
import { runQueueMs, tailReport, watchGc, type GcPause, type TailReport } from './agent-tail.ts';
import { allowedCpus, hasTaskset, pinProcess, planPlacement, realtimeMainThread, schedPolicy } from './placement.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string' }, threads: { type: 'string' }, serve: { type: 'boolean' } },
});
const SECONDS = Number(values.seconds ?? 5);
const threadsFor = (streams: number): number => clientThreadsFor(streams, availableParallelism(), values.threads);
const TTFT_MS = 50;
const ITL_MS = 20;
/** Varied output lengths, as in real traffic: fixed ones make every stream end in the same engine step. */
const OUTPUT_TOKENS = { distribution: 'uniform' as const, min: 32, max: 96 };
/** Requests started before this (the all-at-once first wave) are left out of the TTFT figures. */
const RAMP_MS = 2000;
const NVML_READ_COST_MS = 4;
/**
 * The mock server and the client each on their own core(s) (bench/placement.ts, ADR 0040), as a real server
 * on its own GPU node; `LLEM_BENCH_PIN=0` leaves placement to the scheduler, for comparison.
 */
const PLACEMENT =
  values.serve === true ? null : planPlacement(availableParallelism(), hasTaskset(), process.env['LLEM_BENCH_PIN']);
const PIN_ALL = process.env['LLEM_BENCH_PIN'] === 'all';
/** Opt-in: both event loops SCHED_FIFO (bench/placement.ts realtimeMainThread); off by default. */
const REALTIME = process.env['LLEM_BENCH_RT'] === '1';
/** V8 flags of the mock server's process (not the client's). */
const MOCK_V8_FLAGS = (process.env['LLEM_BENCH_MOCK_V8_FLAGS'] ?? '').split(' ').filter(Boolean);

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/** The mock server's GC pauses, as its process reports them (a `gc` line on its stdout per pause). */
const serverGc: GcPause[] = [];

/** The mock server runs in a child process (this script with --serve): its own process, as in real life. */
async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  // V8 flags for the mock's process alone (LLEM_BENCH_MOCK_V8_FLAGS), for diagnosis; none by default.
  // Tried on the shared machine with the node:http mock: --min-semi-space-size=16 (4 GCs per 128-stream
  // point instead of 5-7, the longest 8-11 ms) and --single-threaded-gc (4, the longest 6.4 ms): neither
  // shortened its pauses; its own HTTP (ADR 0037) took its GCs at 128 streams to 2-4 with V8's defaults.
  const args = [...process.execArgv, ...MOCK_V8_FLAGS, process.argv[1] ?? '', '--serve'];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      const m = /listening on (\S+)/.exec(l);
      if (m?.[1] !== undefined) resolve(m[1]);
      const gc = /^gc (\S+) (\S+) (\S+)$/.exec(l);
      if (gc !== null) serverGc.push({ startWallMs: Number(gc[1]), durationMs: Number(gc[2]), kind: gc[3] ?? '' });
    });
    child.once('exit', (code) => reject(new Error(`mock server exited ${code}`)));
  });
  return { url, child };
}

const workload = (concurrency: number): Workload => ({
  api: 'completions',
  model: 'mock-simulated',
  mode: 'concurrency',
  concurrency,
  ratePerSecond: 1,
  inputTokens: 128,
  outputTokens: OUTPUT_TOKENS,
  ignoreEos: true,
  temperature: 0,
  seed: 42,
});

/** What the TTFT figures need of a result: kept per request, so the bench itself holds little on the heap. */
export type Kept = Pick<RequestResult, 'ok' | 'startMs' | 'ttftMs' | 'serverTtftMs' | 'serverStamps' | 'outputTokens'>;

async function drive(
  client: RequestSender,
  concurrency: number,
  seconds: number,
): Promise<{ results: Kept[]; durationMs: number }> {
  const results: Kept[] = [];
  const w = workload(concurrency);
  const stats = await runLoad(client, new RequestFactory(w), w, {
    requests: concurrency,
    minDurationMs: seconds * 1000,
    signal: new AbortController().signal,
    // Only the fields used (not the ITL gaps): a result kept to the end is copied by every young GC it outlives.
    onResult: (r) =>
      void results.push({
        ok: r.ok,
        startMs: r.startMs,
        ttftMs: r.ttftMs,
        outputTokens: r.outputTokens,
        ...(r.serverTtftMs === undefined ? {} : { serverTtftMs: r.serverTtftMs }),
        ...(r.serverStamps === undefined ? {} : { serverStamps: r.serverStamps }),
      }),
  });
  return { results, durationMs: stats.durationMs };
}

interface TtftError {
  streams: number;
  threads: number;
  requests: number;
  failed: number;
  tokensPerS: number;
  errP50Ms: number;
  errP99Ms: number;
  /** The error's way out (server receive stamp - client send) and back (client read - server first-token stamp). */
  errUpP99Ms: number;
  errDownP99Ms: number;
  /** The client process's longest GC pause during the point, and how many it had. */
  clientGcMaxMs: number;
  clientGcs: number;
  /** The same per GC kind (minor: scavenge, major: mark-compact, incremental, weakcb). */
  clientGcKinds: Record<string, { n: number; maxMs: number }>;
  serverTtftP50Ms: number;
  clientTtftP99Ms: number;
  serverCpuBusy: number;
  clientCpuBusy: number;
  /** The mock server's longest GC pause during the point, and how many it had. */
  serverGcMaxMs: number;
  serverGcs: number;
  /** Run-queue wait (ms) of every thread of the client and of the mock server over the point. */
  clientRunQueueMs: number;
  serverRunQueueMs: number;
  /** The same of each process's main thread (its event loop) alone, and the point's length. */
  clientMainRunQueueMs: number;
  serverMainRunQueueMs: number;
  durationMs: number;
  /** Requests whose error passed 5 ms, what overlapped them, and the worst few. */
  tail: TailReport;
}

/** Client TTFT minus the server's own TTFT, per request, for requests sent after the ramp. */
async function serverCpuSeconds(url: string): Promise<number> {
  return ((await (await fetch(`${url}/llem/stats`)).json()) as { cpuSeconds: number }).cpuSeconds;
}

async function ttftError(url: string, serverPid: number, streams: number, threads: number): Promise<TtftError> {
  const client = createLoadSender({ baseUrl: url, timeoutMs: 60_000 }, threads);
  await client.warm?.(streams, '/health');
  const t0 = performance.now();
  const serverCpu0 = await serverCpuSeconds(url);
  const clientCpu0 = process.cpuUsage();
  const clientGc: GcPause[] = [];
  const stopGc = watchGc((p) => clientGc.push(p));
  const runQ0 = [runQueueMs('self'), runQueueMs(serverPid), runQueueMs('self', true), runQueueMs(serverPid, true)];
  const serverGc0 = serverGc.length;
  const { results, durationMs } = await drive(client, streams, SECONDS + RAMP_MS / 1000);
  const runQ1 = [runQueueMs('self'), runQueueMs(serverPid), runQueueMs('self', true), runQueueMs(serverPid, true)];
  const runQ = runQ1.map((v, i) => v - (runQ0[i] as number));
  stopGc();
  const serverGcs = serverGc.slice(serverGc0).map((p) => p.durationMs);
  const gcs = clientGc.map((p) => p.durationMs);
  const gcKinds: Record<string, { n: number; maxMs: number }> = {};
  for (const p of clientGc) {
    const k = (gcKinds[p.kind] ??= { n: 0, maxMs: 0 });
    k.n++;
    k.maxMs = Math.max(k.maxMs, p.durationMs);
  }
  const clientCpu = process.cpuUsage(clientCpu0);
  const serverCpu = (await serverCpuSeconds(url)) - serverCpu0;
  client.close();
  const ok = results.filter((r) => r.ok);
  const steady = ok.filter((r) => r.startMs >= t0 + RAMP_MS && r.ttftMs !== null && r.serverTtftMs !== undefined);
  const err = steady.map((r) => (r.ttftMs as number) - (r.serverTtftMs as number));
  // Both processes stamp performance.timeOrigin + performance.now() (the wall clock at µs), so the
  // two halves are on one clock; they add up to the error exactly.
  const stamped = steady.filter((r) => r.serverStamps !== undefined);
  const sentWall = (r: Kept): number => performance.timeOrigin + r.startMs;
  const up = stamped.map((r) => (r.serverStamps?.receivedMs as number) - sentWall(r));
  const down = stamped.map((r) => sentWall(r) + (r.ttftMs as number) - (r.serverStamps?.firstTokenMs as number));
  return {
    streams,
    threads,
    requests: steady.length,
    failed: results.length - ok.length,
    tokensPerS: Math.round(ok.reduce((s, r) => s + r.outputTokens, 0) / (durationMs / 1000)),
    errP50Ms: pct(err, 0.5),
    errP99Ms: pct(err, 0.99),
    errUpP99Ms: pct(up, 0.99),
    errDownP99Ms: pct(down, 0.99),
    clientGcMaxMs: Math.max(0, ...gcs),
    clientGcs: gcs.length,
    clientGcKinds: gcKinds,
    serverTtftP50Ms: pct(
      steady.map((r) => r.serverTtftMs as number),
      0.5,
    ),
    clientTtftP99Ms: pct(
      steady.map((r) => r.ttftMs as number),
      0.99,
    ),
    // CPU time over wall time: a server near 1 is itself the bottleneck (one core); the client's
    // is its whole process (every client thread), so it can pass 1.
    serverCpuBusy: serverCpu / (durationMs / 1000),
    clientCpuBusy: (clientCpu.user + clientCpu.system) / 1e3 / durationMs,
    serverGcMaxMs: Math.max(0, ...serverGcs),
    serverGcs: serverGcs.length,
    clientRunQueueMs: runQ[0] as number,
    serverRunQueueMs: runQ[1] as number,
    clientMainRunQueueMs: runQ[2] as number,
    serverMainRunQueueMs: runQ[3] as number,
    durationMs,
    tail: tailReport(steady, clientGc, serverGc, 5),
  };
}

/** Records every result that passes through, for the old (completed-inside) rule's figure. */
class Recording implements RequestSender {
  readonly results: RequestResult[] = [];
  constructor(private readonly inner: LoadSender) {}
  async send(...args: Parameters<RequestSender['send']>): Promise<RequestResult> {
    const r = await this.inner.send(...args);
    this.results.push(r);
    return r;
  }
}

async function steadyState(
  url: string,
  streams: number,
): Promise<{ clientRate: number; serverRate: number; oldRuleRate: number; seconds: number }> {
  const inner = createLoadSender({ baseUrl: url, timeoutMs: 60_000 }, threadsFor(streams));
  await inner.warm?.(streams, '/health');
  const sender = new Recording(inner);
  const bus = new InProcessBus();
  const w = workload(streams);
  // About SECONDS of load: each request takes TTFT + ~64 tokens x ITL.
  const requests = Math.ceil((streams * SECONDS * 1000) / (TTFT_MS + 64 * ITL_MS)) + streams;
  const key = { namespace: 'bench', experimentUid: 'agent', runId: 'steady', attempt: 0, replica: 0 };
  const r = await runWindow({
    publisher: new Publisher(bus, key, true),
    createSketch: createLatencySketch,
    sender,
    workload: w,
    factory: new RequestFactory(w),
    requests,
    minDurationMs: 0,
    sliceMs: 1000,
    steadyState: true,
    signal: new AbortController().signal,
    mark: async () => undefined,
  });
  inner.close();
  await bus.close();
  const seconds = (r.windowEndPreciseMs - r.windowStartPreciseMs) / 1000;
  const q = `fromMs=${r.windowStartPreciseMs}&toMs=${r.windowEndPreciseMs}`;
  const server = (await (await fetch(`${url}/llem/stats?${q}`)).json()) as { tokensEmittedBetween: number };
  const startPerf = r.windowStartPreciseMs - performance.timeOrigin;
  const endPerf = r.windowEndPreciseMs - performance.timeOrigin;
  const oldRule = sender.results
    .filter((x) => x.endMs >= startPerf && x.endMs < endPerf)
    .reduce((s, x) => s + x.outputTokens, 0);
  return {
    clientRate: r.totals.outputTokens / seconds,
    serverRate: server.tokensEmittedBetween / seconds,
    oldRuleRate: oldRule / seconds,
    seconds,
  };
}

/**
 * Event-loop delay p99 (ms) of the load generator (main loop and stream loops, the worst) while `during` runs beside
 * it.
 */
async function loopDelayP99(
  url: string,
  seconds: number,
  during: { start(): Promise<void>; stop(): Promise<void> } | null,
): Promise<number> {
  const client = createLoadSender({ baseUrl: url, timeoutMs: 60_000 }, threadsFor(200));
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
  // Main threads only (bench/placement.ts): the GC helper threads of both keep both cores
  // (`LLEM_BENCH_PIN=all` pins every thread, for comparison).
  if (PLACEMENT !== null) {
    pinProcess(child.pid ?? 0, PLACEMENT.server, PIN_ALL);
    pinProcess(process.pid, PLACEMENT.client, PIN_ALL);
  }
  if (REALTIME) {
    realtimeMainThread(child.pid ?? 0);
    realtimeMainThread(process.pid);
  }
  // Read back from the kernel, so the RESULT says where the processes really ran.
  const cpus = { client: allowedCpus('self') ?? 'unknown', server: allowedCpus(child.pid ?? 0) ?? 'unknown' };
  // The machine is shared: its load says whether these figures are the client's or the scheduler's.
  const loadAtStart = loadavg()[0] ?? NaN;
  try {
    const pid = child.pid ?? 0;
    const at128 = await ttftError(url, pid, 128, threadsFor(128));
    const at512 = await ttftError(url, pid, 512, threadsFor(512));
    const base512 = await ttftError(url, pid, 512, 1);
    const steady = await steadyState(url, 128);
    const off: number[] = [];
    const on: number[] = [];
    // Interleaved rounds, so drift in machine load hits both sides alike.
    for (let i = 0; i < 2; i++) {
      off.push(await loopDelayP99(url, 2, null));
      on.push(await loopDelayP99(url, 2, workerSampler()));
    }
    const inline = await loopDelayP99(url, 2, inlineSampler());
    const elOff = pct(off, 0.5);
    const elOn = pct(on, 0.5);
    const steadyErr = Math.abs(steady.clientRate - steady.serverRate) / steady.serverRate;
    const r = {
      ttft_err_p50_ms_128: at128.errP50Ms,
      ttft_err_p99_ms_128: at128.errP99Ms,
      ttft_err_p50_ms_512: at512.errP50Ms,
      ttft_err_p99_ms_512: at512.errP99Ms,
      ttft_err_up_p99_ms_128: at128.errUpP99Ms,
      ttft_err_down_p99_ms_128: at128.errDownP99Ms,
      ttft_err_up_p99_ms_512: at512.errUpP99Ms,
      ttft_err_down_p99_ms_512: at512.errDownP99Ms,
      client_gc_max_ms_128: at128.clientGcMaxMs,
      client_gc_max_ms_512: at512.clientGcMaxMs,
      client_gcs_128: at128.clientGcs,
      client_gcs_512: at512.clientGcs,
      server_gc_max_ms_128: at128.serverGcMaxMs,
      server_gc_max_ms_512: at512.serverGcMaxMs,
      server_gcs_128: at128.serverGcs,
      server_gcs_512: at512.serverGcs,
      over5_128: at128.tail.over,
      over5_client_gc_128: at128.tail.overWithClientGc,
      over5_server_gc_128: at128.tail.overWithServerGc,
      over5_up_128: at128.tail.overMostlyUp,
      client_runq_ms_128: at128.clientRunQueueMs,
      server_runq_ms_128: at128.serverRunQueueMs,
      // Share of the point each event loop sat runnable without a core: a request arriving then waits.
      client_loop_runq_share_128: at128.clientMainRunQueueMs / at128.durationMs,
      server_loop_runq_share_128: at128.serverMainRunQueueMs / at128.durationMs,
      client_runq_ms_512: at512.clientRunQueueMs,
      server_runq_ms_512: at512.serverRunQueueMs,
      threads_512: at512.threads,
      tokens_per_s_512: at512.tokensPerS,
      baseline_1loop_ttft_err_p99_ms_512: base512.errP99Ms,
      server_ttft_p50_ms_512: at512.serverTtftP50Ms,
      server_cpu_busy_512: at512.serverCpuBusy,
      client_cpu_busy_512: at512.clientCpuBusy,
      server_cpu_busy_128: at128.serverCpuBusy,
      steady_tokens_per_s: steady.clientRate,
      server_tokens_per_s: steady.serverRate,
      steady_vs_server_err: steadyErr,
      old_rule_tokens_per_s: steady.oldRuleRate,
      old_rule_vs_server_err: Math.abs(steady.oldRuleRate - steady.serverRate) / steady.serverRate,
      steady_window_s: steady.seconds,
      el_p99_off_ms: elOff,
      el_p99_on_ms: elOn,
      el_p99_increase_ms: elOn - elOff,
      el_p99_inline_ms: inline,
      requests_failed: at128.failed + at512.failed + base512.failed,
      loadavg_1m_start: loadAtStart,
      loadavg_1m_end: loadavg()[0] ?? NaN,
    };
    const pinned = PLACEMENT === null ? 'none' : PIN_ALL ? 'all' : 'main';
    const placed = `pinned=${pinned} client_cpus=${cpus.client} server_cpus=${cpus.server}`;
    const rt = `sched_fifo=${schedPolicy('self') === 1 && schedPolicy(child.pid ?? 0) === 1}`;
    const pass =
      r.ttft_err_p50_ms_128 <= 2 &&
      r.ttft_err_p99_ms_128 <= 5 &&
      r.ttft_err_p99_ms_512 <= 20 &&
      steadyErr <= 0.01 &&
      r.requests_failed === 0;
    console.log(JSON.stringify({ at128, at512, base512, steady, el_p99_off_rounds_ms: off, el_p99_on_rounds_ms: on }));
    const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v < 0.1 ? v.toFixed(4) : v.toFixed(2));
    console.log(
      `RESULT ${Object.entries(r)
        .map(([k, v]) => `${k}=${fmt(v)}`)
        .join(' ')} ${placed} ${rt} simulated=true pass=${pass}`,
    );
  } finally {
    child.kill('SIGTERM');
  }
}

/** Child mode: the mock server in its own process, recording when it wrote every token. */
async function serve(): Promise<void> {
  const server = await startMockServer({
    port: 0,
    ttft: { meanMs: TTFT_MS },
    itl: { meanMs: ITL_MS },
    maxBatch: 100_000,
    recordEmissions: true,
  });
  console.log(`listening on ${server.url}`);
  // Its GC pauses, for the parent's tail diagnosis (agent-tail.ts).
  watchGc((p) => console.log(`gc ${p.startWallMs} ${p.durationMs} ${p.kind}`));
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

if (values.serve === true) {
  await serve();
} else {
  await main();
}
