// End-to-end bus benchmark, the agent -> bus -> aggregator path: agent Publishers (pipelined and
// batched as the agent sends, ADR 0021, with their Nats-Msg-Id and per-publisher seq) -> a real
// nats-server -> the in-order consumer -> the real Aggregator. The messages are a real agent's sketch
// slices (1 s slices of 16 requests x ~64 output tokens: four LogHistograms, ~2 KB of JSON each),
// which the Aggregator decodes, checks and merges. Baselines in the same run: the same path over the
// in-process bus, the same publishers without batching (one bus message per wire message, the path
// before ADR 0021) and one ack at a time. Reports messages/s (first publish to last apply), p50/p99
// publish-to-applied latency, and checks exactly once (every (publisher, seq) applied once, none
// missing, no duplicate applied).
// Short by default (~30 s): BENCH_BUS_MESSAGES to change; BENCH_BUS_IN_FLIGHT sets each publisher's
// window of wire messages not yet stored (default 16, 160 over the 10 publishers). BENCH_BUS_KIND=ready
// sends empty `ready` messages instead (the figure this bench printed before it sent slices: easier
// than the real path, for comparison only). Each NATS line says how much CPU nats-server used.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  decodeMessages,
  experimentSubjectFilter,
  type DecodedBatch,
  type SketchMessage,
  type WireMessage,
} from '../api/protocol.ts';
import { DEFAULT_MAX_BATCH, Publisher } from '../agent/publisher.ts';
import type { SketchBody } from '../agent/slices.ts';
import { makePlan, replicaMessages } from '../tests/support/streams.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import type { ApplyOutcome } from '../aggregator/run-state.ts';
import { InProcessBus } from '../lib/bus/inprocess.ts';
import { openNatsBus } from '../lib/bus/nats.ts';
import type { Bus } from '../lib/bus/types.ts';
import { startNatsServer } from '../tests/support/nats-server.ts';

const TOTAL = Number(process.env['BENCH_BUS_MESSAGES'] ?? 40_000);
const IN_FLIGHT = Number(process.env['BENCH_BUS_IN_FLIGHT'] ?? 16);
const KIND = process.env['BENCH_BUS_KIND'] === 'ready' ? 'ready' : 'sketch';
const PUBLISHERS = 10;
const NS = 'bench';
/**
 * The consumer before ADR 0027 (schema library on every slice, the reference sketch decoder, one
 * merge at a time): its aggregator and decoder run the same NATS phase in this run, as the baseline.
 */
const BASELINE = process.env['BENCH_BUS_BASELINE'] ?? '24d2f43';

/** What the consumer side needs: decode a bus message, and an aggregator to apply it. */
interface ConsumerImpl {
  name: string;
  decodeMessages: (data: Uint8Array) => DecodedBatch;
  aggregator: (plan: ConstructorParameters<typeof Aggregator>[0]) => {
    applyBatch(messages: readonly WireMessage[], streamSeq: number): ApplyOutcome[];
  };
}
const CURRENT: ConsumerImpl = { name: 'current', decodeMessages, aggregator: (plan) => new Aggregator(plan) };

/** The baseline commit's consumer, from `git archive` into a temporary folder (null: no git here). */
async function baselineImpl(): Promise<{ impl: ConsumerImpl; cleanup: () => void } | null> {
  const repo = resolve(import.meta.dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'llem-bench-baseline-'));
  try {
    const tar = execFileSync('git', ['-C', repo, 'archive', BASELINE, 'api', 'lib', 'aggregator', 'package.json']);
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
    const protocol = (await import(join(dir, 'api/protocol.ts'))) as { decodeMessages: ConsumerImpl['decodeMessages'] };
    const agg = (await import(join(dir, 'aggregator/aggregator.ts'))) as { Aggregator: typeof Aggregator };
    const impl: ConsumerImpl = {
      name: `baseline ${BASELINE}`,
      decodeMessages: protocol.decodeMessages,
      aggregator: (plan) => new agg.Aggregator(plan),
    };
    return { impl, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    console.log(`baseline ${BASELINE} not measured: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
}

/** A real agent's slice bodies (the envelope is the Publisher's), cycled through by every publisher. */
function slicePool(): SketchBody[] {
  const plan = makePlan({ configs: 1, cycles: 1 });
  const run = plan.runs[0] as (typeof plan.runs)[number];
  const opts = { seed: 5, slices: 64, requestsPerSlice: 16, outputTokensPerRequest: 64 };
  return replicaMessages(run, 0, plan.experimentUid, opts)
    .filter((m): m is SketchMessage => m.kind === 'sketch')
    .map((m) => {
      const { slice, sliceStartMs, sliceEndMs, requestsOk, requestsFailed, errorClasses } = m;
      const { inputTokens, outputTokens, sketches } = m;
      return {
        slice,
        sliceStartMs,
        sliceEndMs,
        requestsOk,
        requestsFailed,
        errorClasses,
        inputTokens,
        outputTokens,
        sketches,
      };
    });
}
const SLICES = slicePool();
const SLICE_BYTES = Math.round(
  SLICES.reduce((n, b) => n + JSON.stringify(b).length, 0) / SLICES.length + 220, // + the envelope
);

interface Result {
  msgsPerSecond: number;
  /** Wire messages per bus message the consumer received, on average. */
  perBusMessage: number;
  /** CPU seconds nats-server used during the run (NaN in process). */
  serverCpuS: number;
  /** CPU seconds this process (publishers, client, consumer, aggregator) used during the run. */
  benchCpuS: number;
  p50Ms: number;
  p99Ms: number;
  applied: number;
  duplicatesApplied: number;
  missing: number;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function planFor(uid: string, impl: ConsumerImpl): ReturnType<ConsumerImpl['aggregator']> {
  const runs = Array.from({ length: PUBLISHERS }, (_, p) => ({
    runId: `run-${p}`,
    configId: 'c',
    configHash: 'h',
    cycle: 0,
    replicas: 1,
    failurePolicy: 'strict' as const,
  }));
  return impl.aggregator({ experimentUid: uid, runs });
}

/** `publishers` share `TOTAL` messages; sentAtMs (wall clock, same machine) dates each one. */
async function run(
  consumerBus: Bus,
  publisherBuses: Bus[],
  uid: string,
  { inFlight, total, maxBatch, impl }: { inFlight: number; total: number; maxBatch: number; impl: ConsumerImpl },
): Promise<Result> {
  const latencies = new Float64Array(total);
  const aggregator = planFor(uid, impl);
  const seen = new Map<string, Set<number>>();
  let applied = 0;
  let duplicatesApplied = 0;
  let lastApplyMs = 0;
  let busMessages = 0;
  let done!: () => void;
  const allApplied = new Promise<void>((r) => (done = r));
  const consumption = await consumerBus.consume({
    durable: `bench-${uid}`,
    filterSubject: experimentSubjectFilter(NS, uid),
    afterStreamSeq: 0,
    handler: async (m) => {
      const d = impl.decodeMessages(m.data);
      if (!d.ok) return 'dead-letter';
      const outcomes = aggregator.applyBatch(d.messages, m.streamSeq);
      busMessages++;
      lastApplyMs = performance.now();
      const nowMs = Date.now();
      for (const [i, message] of d.messages.entries()) {
        if (outcomes[i]?.outcome !== 'applied') continue;
        const seqs = seen.get(message.runId) ?? new Set<number>();
        seen.set(message.runId, seqs);
        if (seqs.has(message.seq)) duplicatesApplied++;
        seqs.add(message.seq);
        latencies[applied++] = nowMs - message.sentAtMs;
      }
      if (applied === total) done();
      return 'ack';
    },
  });
  const perPublisher = total / PUBLISHERS;
  const startMs = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async (_, p) => {
      const bus = publisherBuses[p % publisherBuses.length] as Bus;
      const key = { namespace: NS, experimentUid: uid, runId: `run-${p}`, attempt: 0, replica: 0 };
      const publisher = new Publisher(bus, key, true, inFlight, maxBatch);
      // Backpressure as an agent that outruns the bus feels it: before message i, wait for the ack
      // of message i - inFlight, so the publisher's queue never grows past its window.
      const window: Array<Promise<void>> = [];
      for (let i = 0; i < perPublisher; i++) {
        if (i >= inFlight) await window[i % inFlight];
        window[i % inFlight] =
          KIND === 'ready'
            ? publisher.publish('ready', {})
            : publisher.publish('sketch', SLICES[(i + p) % SLICES.length] as SketchBody);
      }
      await publisher.drain();
    }),
  );
  await allApplied;
  const cpu = process.cpuUsage(cpu0);
  await consumption.stop();
  let missing = 0;
  for (let p = 0; p < PUBLISHERS; p++) missing += perPublisher - (seen.get(`run-${p}`)?.size ?? 0);
  const sorted = latencies.sort();
  return {
    msgsPerSecond: total / ((lastApplyMs - startMs) / 1000),
    serverCpuS: Number.NaN,
    benchCpuS: (cpu.user + cpu.system) / 1e6,
    perBusMessage: applied / busMessages,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    applied,
    duplicatesApplied,
    missing,
  };
}

async function benchInProcess(impl = CURRENT): Promise<Result> {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  try {
    const opts = { inFlight: IN_FLIGHT, total: TOTAL, maxBatch: DEFAULT_MAX_BATCH, impl };
    return await run(bus, [bus], impl === CURRENT ? 'inprocess' : 'inprocessbase', opts);
  } finally {
    await bus.close();
  }
}

async function benchNats(inFlight: number, total: number, maxBatch: number, impl = CURRENT): Promise<Result> {
  const server = await startNatsServer();
  try {
    const consumerBus = await openNatsBus({ servers: server.url });
    await consumerBus.ensureLayout();
    const publishers = await Promise.all(
      Array.from({ length: PUBLISHERS }, () => openNatsBus({ servers: server.url })),
    );
    try {
      const cpu0 = cpuSeconds(server.pid());
      const uid = `nats${inFlight}x${maxBatch}${impl === CURRENT ? '' : 'base'}`;
      const r = await run(consumerBus, publishers, uid, { inFlight, total, maxBatch, impl });
      return { ...r, serverCpuS: cpuSeconds(server.pid()) - cpu0 };
    } finally {
      for (const b of publishers) await b.close();
      await consumerBus.close();
    }
  } finally {
    await server.cleanup();
  }
}

/** utime + stime of a process from /proc (Linux), in seconds; NaN elsewhere. */
function cpuSeconds(pid: number | null): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
const exactlyOnce = (r: Result, total = TOTAL): boolean =>
  r.applied === total && r.duplicatesApplied === 0 && r.missing === 0;
const cpuPerMsg = (cpuS: number, total = TOTAL): string => fmt((cpuS * 1e6) / total);
const busMessages = (r: Result): number => Math.round(r.applied / r.perBusMessage);
const line = (name: string, r: Result, total: number): void =>
  console.log(
    `${name}: ${fmt(r.msgsPerSecond)} msgs/s, p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms (${total} messages in ` +
      `${busMessages(r)} bus messages, ${r.perBusMessage.toFixed(1)} each; bench process CPU ` +
      `${cpuPerMsg(r.benchCpuS, total)} us/msg` +
      `${Number.isNaN(r.serverCpuS) ? '' : `, nats-server CPU ${cpuPerMsg(r.serverCpuS, total)} us/msg`})`,
  );
console.log(
  `${TOTAL} ${KIND === 'ready' ? 'empty ready messages' : `sketch slices of ~${SLICE_BYTES} bytes`}, ${PUBLISHERS} publishers (one NATS connection each), ` +
    `${IN_FLIGHT} unstored per publisher, file storage, load average ${loadavg()[0]?.toFixed(2)}`,
);
const baseline = await baselineImpl();
const inprocess = await benchInProcess();
line('in-process', inprocess, TOTAL);
const baseInprocess = baseline === null ? null : await benchInProcess(baseline.impl);
if (baseInprocess !== null) line(`in-process, ${baseline?.impl.name} consumer`, baseInprocess, TOTAL);
const nats = await benchNats(IN_FLIGHT, TOTAL, DEFAULT_MAX_BATCH);
line(`nats-server, batched (up to ${DEFAULT_MAX_BATCH} per bus message)`, nats, TOTAL);
// The same NATS phase with the baseline's decoder and aggregator (the publishers are the same).
const baseNats = baseline === null ? null : await benchNats(IN_FLIGHT, TOTAL, DEFAULT_MAX_BATCH, baseline.impl);
if (baseNats !== null) line(`nats-server, batched, ${baseline?.impl.name} consumer`, baseNats, TOTAL);
baseline?.cleanup();
// The path before ADR 0021 (pipelined, one bus message per wire message), on half the messages.
const unbatchedTotal = Math.round(TOTAL / 2 / PUBLISHERS) * PUBLISHERS;
const unbatched = await benchNats(IN_FLIGHT, unbatchedTotal, 1);
line('nats-server, unbatched (before)', unbatched, unbatchedTotal);
// One ack round trip per message per publisher, on a quarter of the messages.
const serialTotal = Math.round(TOTAL / 4 / PUBLISHERS) * PUBLISHERS;
const serial = await benchNats(1, serialTotal, 1);
line('nats-server, 1 in flight each, unbatched', serial, serialTotal);
const ratio = (a: Result | null, b: Result | null, f: (r: Result) => number): string =>
  a === null || b === null ? 'NaN' : (f(a) / f(b)).toFixed(2);
console.log(
  `RESULT messages=${TOTAL} kind=${KIND} message_bytes=${KIND === 'ready' ? 'small' : SLICE_BYTES} in_flight=${IN_FLIGHT} max_batch=${DEFAULT_MAX_BATCH} ` +
    `nats_msgs_per_s=${fmt(nats.msgsPerSecond)} nats_p99_ms=${fmt(nats.p99Ms)} nats_exactly_once=${exactlyOnce(nats)} ` +
    `nats_bus_messages=${busMessages(nats)} nats_bench_cpu_us_per_msg=${cpuPerMsg(nats.benchCpuS)} ` +
    `nats_server_cpu_us_per_msg=${cpuPerMsg(nats.serverCpuS)} ` +
    `inprocess_msgs_per_s=${fmt(inprocess.msgsPerSecond)} inprocess_p99_ms=${fmt(inprocess.p99Ms)} ` +
    `inprocess_exactly_once=${exactlyOnce(inprocess)} inprocess_cpu_us_per_msg=${cpuPerMsg(inprocess.benchCpuS)} ` +
    `baseline=${BASELINE} baseline_nats_msgs_per_s=${baseNats === null ? 'NaN' : fmt(baseNats.msgsPerSecond)} ` +
    `baseline_nats_p99_ms=${baseNats === null ? 'NaN' : fmt(baseNats.p99Ms)} ` +
    `baseline_nats_bench_cpu_us_per_msg=${baseNats === null ? 'NaN' : cpuPerMsg(baseNats.benchCpuS)} ` +
    `baseline_inprocess_msgs_per_s=${baseInprocess === null ? 'NaN' : fmt(baseInprocess.msgsPerSecond)} ` +
    `baseline_inprocess_cpu_us_per_msg=${baseInprocess === null ? 'NaN' : cpuPerMsg(baseInprocess.benchCpuS)} ` +
    `nats_vs_baseline_throughput=${ratio(nats, baseNats, (r) => r.msgsPerSecond)} ` +
    `inprocess_vs_baseline_throughput=${ratio(inprocess, baseInprocess, (r) => r.msgsPerSecond)} ` +
    `baseline_vs_current_inprocess_cpu=${ratio(baseInprocess, inprocess, (r) => r.benchCpuS)} ` +
    `unbatched_nats_msgs_per_s=${fmt(unbatched.msgsPerSecond)} unbatched_nats_p99_ms=${fmt(unbatched.p99Ms)} ` +
    `unbatched_exactly_once=${exactlyOnce(unbatched, unbatchedTotal)} ` +
    `unbatched_nats_server_cpu_us_per_msg=${cpuPerMsg(unbatched.serverCpuS, unbatchedTotal)} ` +
    `serial_nats_msgs_per_s=${fmt(serial.msgsPerSecond)} serial_nats_p99_ms=${fmt(serial.p99Ms)} ` +
    `serial_exactly_once=${exactlyOnce(serial, serialTotal)} ` +
    `nats_vs_inprocess_throughput=${(nats.msgsPerSecond / inprocess.msgsPerSecond).toFixed(3)} ` +
    `nats_vs_unbatched_throughput=${(nats.msgsPerSecond / unbatched.msgsPerSecond).toFixed(2)} ` +
    `loadavg1=${loadavg()[0]?.toFixed(2)}`,
);
const allExact = [exactlyOnce(nats), exactlyOnce(inprocess), exactlyOnce(unbatched, unbatchedTotal)];
for (const r of [baseNats, baseInprocess]) if (r !== null) allExact.push(exactlyOnce(r));
if (!allExact.every(Boolean) || !exactlyOnce(serial, serialTotal)) process.exitCode = 1;
