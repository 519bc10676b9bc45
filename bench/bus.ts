// End-to-end bus benchmark, the agent -> bus -> aggregator path: agent Publishers (pipelined and
// batched as the agent sends, ADR 0021, with their Nats-Msg-Id and per-publisher seq) -> a real
// nats-server -> the in-order consumer -> the real Aggregator. The messages are a real agent's sketch
// slices (1 s slices of 16 requests x ~64 output tokens: four LogHistograms, ~2 KB of JSON each),
// which the Aggregator decodes, checks and merges. Baselines in the same run: the same path over the
// in-process bus, the same publishers without batching (one bus message per wire message, the path
// before ADR 0021) and one ack at a time. Reports messages/s and p50/p99 publish-to-applied latency over
// each phase's steady-state window (ADR 0041: it opens once BENCH_BUS_WARMUP slices, default as many as
// the window's BENCH_BUS_MESSAGES, are applied; the whole run's figures are printed with it), and checks
// exactly once over the whole run (every (publisher, seq) applied once, none missing, no duplicate applied).
// ~50 s by default: BENCH_BUS_MESSAGES to change; BENCH_BUS_IN_FLIGHT sets each publisher's
// window of wire messages not yet stored (default 24, 240 over the 10 publishers; 16 before ADR 0036),
// BENCH_BUS_PUBLISHER_IN_FLIGHT the bus messages (batches) each Publisher awaits acks for (default the
// same). BENCH_BUS_KIND=ready
// sends empty `ready` messages instead (the figure this bench printed before it sent slices: easier
// than the real path, for comparison only). Each NATS line says how much CPU nats-server used.
// Batches leave in the Publisher's default format (the binary envelope since ADR 0036's amendment; JSON
// arrays have their own phase, and the baseline consumer, which reads only JSON, gets JSON);
// the NATS phases run the publishers in BENCH_BUS_PUBLISHER_THREADS (1; 2 before ADR 0041) worker
// threads, each publisher on its own connection, as agents run in their own pods, paced on the
// consumer's progress (BENCH_BUS_UNAPPLIED, 24 slices per publisher between publish and apply, 32 before
// ADR 0036; 0 = unpaced, where p99 measures the backlog the publishers pile up; paced publishers poll
// their applied counts every 1 ms, one timer per thread, ADR 0036 and 0041). The
// same run prints the in-process figure (one thread), the NATS path with the publishers in the
// consumer's thread (how this bench ran before), with JSON batches, and with the baseline consumer; the
// bench process's CPU counts all its threads, the consumer thread's is printed apart.
// BENCH_BUS_ONLY=nats runs the headline NATS phase alone (for profiling; no RESULT line; BENCH_BUS_FORMAT=json
// sends it as JSON arrays). BENCH_BUS_ONLY=formats is the batch formats' A/B: JSON and binary
// alternated BENCH_BUS_ROUNDS (3) times each, medians of each part's CPU per slice in its RESULT line.
// bench/bus-consumer.ts measures the consumer's decode + apply alone.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { decodeMessages } from '../api/protocol.ts';
import { DEFAULT_BATCH_FORMAT, DEFAULT_MAX_BATCH, type BatchFormat } from '../agent/publisher.ts';
import { baselineImpl } from './bus/baseline.ts';
import { measure, type ConsumerImpl, type Publishers, type Result } from './bus/measure.ts';
import { sameThread, workerThreads } from './bus/publishers.ts';
import { appliedCounters, type PublishPlan } from './bus/publish.ts';
import { slicePool } from './bus/slices.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { InProcessBus } from '../lib/bus/inprocess.ts';
import { openNatsBus } from '../lib/bus/nats.ts';
import { startNatsServer } from '../tests/support/nats-server.ts';

/** Slices in each phase's measured window (the headline phases; the slow baselines run a half and a quarter). */
const TOTAL = Number(process.env['BENCH_BUS_MESSAGES'] ?? 40_000);
/**
 * Slices applied before each phase's window opens (ADR 0041): fresh worker threads, a fresh nats-server and
 * cold consumer code took the first ~1-2 s of a phase; a controller consumes for hours. Scaled like TOTAL.
 */
const WARMUP = Number(process.env['BENCH_BUS_WARMUP'] ?? TOTAL);
const IN_FLIGHT = Number(process.env['BENCH_BUS_IN_FLIGHT'] ?? 24);
const KIND = process.env['BENCH_BUS_KIND'] === 'ready' ? 'ready' : 'sketch';
const PUBLISHERS = 10;
// At least 4 slices per publisher: the slowest baseline publishes a quarter of them.
if (!(Number.isInteger(TOTAL / PUBLISHERS) && TOTAL >= 4 * PUBLISHERS) || !(Number.isInteger(WARMUP) && WARMUP >= 0)) {
  console.error(
    `bench/bus: BENCH_BUS_MESSAGES (${process.env['BENCH_BUS_MESSAGES']}) must be a multiple of ${PUBLISHERS}, ` +
      `at least ${4 * PUBLISHERS}, and BENCH_BUS_WARMUP (${process.env['BENCH_BUS_WARMUP']}) a whole number >= 0; ` +
      'unset them for the defaults',
  );
  process.exit(2);
}
/**
 * At most this many of a publisher's slices between publish and apply (0: unbounded). Agents send a
 * slice a second, so in a deployment the consumer's pace, not a publisher's, sets the backlog; here the
 * publishers can outrun the consumer, and without this bound p99 would measure the stream's backlog.
 */
const UNAPPLIED = Number(process.env['BENCH_BUS_UNAPPLIED'] ?? 24);
/** Worker threads the NATS phases' publishers run in (they share the machine's cores with the consumer). */
const PUBLISHER_THREADS = Number(process.env['BENCH_BUS_PUBLISHER_THREADS'] ?? 1);
/** Bus messages (batches) each Publisher keeps awaiting their acks; IN_FLIGHT when unset. */
const BUS_IN_FLIGHT = Number(process.env['BENCH_BUS_PUBLISHER_IN_FLIGHT'] ?? IN_FLIGHT);
const ONLY_FORMAT = (process.env['BENCH_BUS_FORMAT'] ?? DEFAULT_BATCH_FORMAT) as BatchFormat;
/**
 * The consumer before ADR 0027 (schema library on every slice, the reference sketch decoder, one
 * merge at a time): its aggregator and decoder run the same NATS phase in this run, as the baseline.
 */
const BASELINE = process.env['BENCH_BUS_BASELINE'] ?? '24d2f43';

const CURRENT: ConsumerImpl = { name: 'current', decodeMessages, aggregator: (plan) => new Aggregator(plan) };

const SLICES = slicePool();
function jsonLength(b: (typeof SLICES)[number]): number {
  const sketches = Object.entries(b.sketches).map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('base64')]);
  return JSON.stringify({ ...b, sketches: Object.fromEntries(sketches) }).length;
}
const SLICE_BYTES = Math.round(
  // As JSON carries a slice (sketches in base64) + the envelope.
  SLICES.reduce((n, b) => n + jsonLength(b), 0) / SLICES.length + 220,
);

const planOf = (
  uid: string,
  inFlight: number,
  total: number,
  maxBatch: number,
  batchFormat: BatchFormat,
): PublishPlan => ({
  uid,
  publishers: Array.from({ length: PUBLISHERS }, (_, p) => p),
  perPublisher: total / PUBLISHERS,
  inFlight,
  maxBatch,
  kind: KIND,
  batchFormat,
  unapplied: UNAPPLIED,
  busInFlight: inFlight === IN_FLIGHT ? BUS_IN_FLIGHT : inFlight,
});

async function benchInProcess(impl = CURRENT): Promise<Result> {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  try {
    const plan = planOf(
      impl === CURRENT ? 'inprocess' : 'inprocessbase',
      IN_FLIGHT,
      TOTAL + warmFor(TOTAL),
      DEFAULT_MAX_BATCH,
      // The Publisher's default; the baseline's consumer reads only JSON batches (its own release's).
      impl === CURRENT ? DEFAULT_BATCH_FORMAT : 'json',
    );
    const applied = appliedCounters(PUBLISHERS);
    const publishers = sameThread([bus], plan, SLICES, applied);
    const serverCpuS = (): number => Number.NaN;
    return await measure({ consumerBus: bus, plan, publishers, impl, applied, warm: warmFor(TOTAL), serverCpuS });
  } finally {
    await bus.close();
  }
}

/** Slices before the window of a phase that measures `total`: WARMUP scaled, whole per publisher. */
function warmFor(total: number): number {
  return Math.round((WARMUP * total) / TOTAL / PUBLISHERS) * PUBLISHERS;
}

interface NatsPhase {
  inFlight: number;
  /** Slices in the measured window (the phase publishes warmFor(total) more before it). */
  total: number;
  maxBatch: number;
  impl?: ConsumerImpl;
  /** Publishers in PUBLISHER_THREADS worker threads (as agents in their own pods) or in the consumer's thread. */
  where: Publishers['where'];
  /** The Publisher's default batch format unless said; the baseline's consumer reads only JSON ones. */
  format?: BatchFormat;
}

async function benchNats({ inFlight, total, maxBatch, impl = CURRENT, where, format }: NatsPhase): Promise<Result> {
  const server = await startNatsServer();
  try {
    const consumerBus = await openNatsBus({ servers: server.url });
    await consumerBus.ensureLayout();
    const base = impl === CURRENT ? '' : 'base';
    const uid = `nats${inFlight}x${maxBatch}${base}${where === 'worker_threads' ? 'w' : 't'}${format ?? ''}`;
    // The Publisher's default unless said; the baseline's consumer reads only JSON batches (its own release's).
    const batchFormat = format ?? (impl === CURRENT ? DEFAULT_BATCH_FORMAT : 'json');
    const plan = planOf(uid, inFlight, total + warmFor(total), maxBatch, batchFormat);
    const buses =
      where === 'worker_threads'
        ? []
        : await Promise.all(plan.publishers.map(() => openNatsBus({ servers: server.url })));
    const applied = appliedCounters(PUBLISHERS);
    const publishers =
      where === 'worker_threads'
        ? await workerThreads(server.url, plan, PUBLISHER_THREADS, applied)
        : sameThread(buses, plan, SLICES, applied);
    try {
      const serverCpuS = (): number => cpuSeconds(server.pid());
      return await measure({ consumerBus, plan, publishers, impl, applied, warm: warmFor(total), serverCpuS });
    } finally {
      await publishers.close();
      for (const b of buses) await b.close();
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
const exactlyOnce = (r: Result): boolean => r.applied === r.expected && r.duplicatesApplied === 0 && r.missing === 0;
/** CPU seconds over the window, per slice applied in it. */
const perSlice = (cpuS: number, r: Result): number => (cpuS * 1e6) / r.measured;
const cpuPerMsg = (cpuS: number, r: Result): string => fmt(perSlice(cpuS, r));
const busMessages = (r: Result): number => Math.round(r.applied / r.perBusMessage);
const line = (name: string, r: Result): void =>
  console.log(
    `${name}: ${fmt(r.msgsPerSecond)} msgs/s, p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms over the window's ` +
      `${r.measured} messages (whole run of ${r.applied}: ${fmt(r.wholeMsgsPerSecond)} msgs/s, ` +
      `p99 ${fmt(r.wholeP99Ms)} ms; ${busMessages(r)} bus messages, ${r.perBusMessage.toFixed(1)} each; ` +
      `publishers in ${r.publishersWhere}; ` +
      `bench process CPU ${cpuPerMsg(r.benchCpuS, r)} us/msg, of it the consumer's thread ` +
      `${cpuPerMsg(r.consumerThreadCpuS, r)}` +
      `${Number.isNaN(r.serverCpuS) ? '' : `; nats-server CPU ${cpuPerMsg(r.serverCpuS, r)} us/msg`})`,
  );
console.log(
  `${TOTAL} ${KIND === 'ready' ? 'empty ready messages' : `sketch slices of ~${SLICE_BYTES} bytes`}, ` +
    `${PUBLISHERS} publishers (one NATS connection each; in ${PUBLISHER_THREADS} worker ` +
    `thread${PUBLISHER_THREADS === 1 ? '' : 's'} unless said), ` +
    `${IN_FLIGHT} unstored and ${UNAPPLIED} unapplied at most per publisher, file storage, load average ${loadavg()[0]?.toFixed(2)}`,
);
if (process.env['BENCH_BUS_ONLY'] === 'nats') {
  // Profiling aid: the headline NATS phase alone, no RESULT line.
  line(
    'nats-server, batched',
    await benchNats({
      inFlight: IN_FLIGHT,
      total: TOTAL,
      maxBatch: DEFAULT_MAX_BATCH,
      where: 'worker_threads',
      format: ONLY_FORMAT,
    }),
  );
  process.exit(0);
}
if (process.env['BENCH_BUS_ONLY'] === 'formats') {
  // The batch formats' A/B (ADR 0036, amended): JSON arrays and binary batches alternate ROUNDS times each
  // on fresh nats-servers, so neither has the first or the last place, each phase measured after its own
  // warm-up (ADR 0041); per round the CPU per slice of the publishers' threads, the consumer's thread and
  // nats-server.
  const rounds = Number(process.env['BENCH_BUS_ROUNDS'] ?? 3);
  const phase = { inFlight: IN_FLIGHT, total: TOTAL, maxBatch: DEFAULT_MAX_BATCH, where: 'worker_threads' } as const;
  const per: Record<BatchFormat, Result[]> = { json: [], binary: [] };
  for (let i = 0; i < rounds; i++) {
    const order: BatchFormat[] = i % 2 === 0 ? ['json', 'binary'] : ['binary', 'json'];
    for (const format of order) {
      const r = await benchNats({ ...phase, format });
      line(`round ${i + 1}, ${format} batches`, r);
      per[format].push(r);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const fields = (format: BatchFormat): string => {
    const rs = per[format];
    const pub = median(rs.map((r) => perSlice(r.benchCpuS - r.consumerThreadCpuS, r)));
    const con = median(rs.map((r) => perSlice(r.consumerThreadCpuS, r)));
    const srv = median(rs.map((r) => perSlice(r.serverCpuS, r)));
    const total = median(rs.map((r) => perSlice(r.benchCpuS + r.serverCpuS, r)));
    return (
      `${format}_msgs_per_s=${fmt(median(rs.map((r) => r.msgsPerSecond)))} ` +
      `${format}_p99_ms=${fmt(median(rs.map((r) => r.p99Ms)))} ` +
      `${format}_exactly_once=${rs.every((r) => exactlyOnce(r))} ${format}_publishers_cpu_us_per_msg=${fmt(pub)} ` +
      `${format}_consumer_thread_cpu_us_per_msg=${fmt(con)} ${format}_server_cpu_us_per_msg=${fmt(srv)} ` +
      `${format}_total_cpu_us_per_msg=${fmt(total)}`
    );
  };
  const totalOf = (format: BatchFormat): number =>
    median(per[format].map((r) => perSlice(r.benchCpuS + r.serverCpuS, r)));
  console.log(
    `RESULT formats_ab messages=${TOTAL} warmup=${warmFor(TOTAL)} rounds=${rounds} (medians) ` +
      `${fields('json')} ${fields('binary')} ` +
      `binary_vs_json_total_cpu=${(totalOf('binary') / totalOf('json')).toFixed(3)} ` +
      `loadavg1=${loadavg()[0]?.toFixed(2)}`,
  );
  if (![...per.json, ...per.binary].every((r) => exactlyOnce(r))) process.exitCode = 1;
  process.exit();
}
const baseline = await baselineImpl(BASELINE);
const inprocess = await benchInProcess();
line('in-process', inprocess);
const baseInprocess = baseline === null ? null : await benchInProcess(baseline.impl);
if (baseInprocess !== null) line(`in-process, ${baseline?.impl.name} consumer`, baseInprocess);
const batched = { inFlight: IN_FLIGHT, total: TOTAL, maxBatch: DEFAULT_MAX_BATCH };
// Each phase warms its own threads and server before its window (ADR 0041); before, whichever phase ran
// first measured ~15-20% slower, which had read as a difference between batch formats.
const nats = await benchNats({ ...batched, where: 'worker_threads' });
line(`nats-server, batched (up to ${DEFAULT_MAX_BATCH} per bus message)`, nats);
// The same with the publishers in the consumer's thread (how this bench ran before), for comparison.
const natsSameThread = await benchNats({ ...batched, where: 'consumer_thread' });
line(`nats-server, batched, publishers in the consumer's thread`, natsSameThread);
// The same in the other batch format (JSON arrays since binary became the default, ADR 0036 amended).
const OTHER_FORMAT: BatchFormat = DEFAULT_BATCH_FORMAT === 'binary' ? 'json' : 'binary';
const natsOther = await benchNats({ ...batched, where: 'worker_threads', format: OTHER_FORMAT });
line(`nats-server, batched as ${OTHER_FORMAT} (the other batch format)`, natsOther);
// The same NATS phase with the baseline's decoder and aggregator (the publishers are the same).
const baseNats =
  baseline === null ? null : await benchNats({ ...batched, impl: baseline.impl, where: 'worker_threads' });
if (baseNats !== null) line(`nats-server, batched, ${baseline?.impl.name} consumer`, baseNats);
baseline?.cleanup();
// The path before ADR 0021 (pipelined, one bus message per wire message), on half the messages.
const unbatchedTotal = Math.round(TOTAL / 2 / PUBLISHERS) * PUBLISHERS;
const unbatched = await benchNats({ inFlight: IN_FLIGHT, total: unbatchedTotal, maxBatch: 1, where: 'worker_threads' });
line('nats-server, unbatched (before)', unbatched);
// One ack round trip per message per publisher, on a quarter of the messages.
const serialTotal = Math.round(TOTAL / 4 / PUBLISHERS) * PUBLISHERS;
const serial = await benchNats({ inFlight: 1, total: serialTotal, maxBatch: 1, where: 'worker_threads' });
line('nats-server, 1 in flight each, unbatched', serial);
const ratio = (a: Result | null, b: Result | null, f: (r: Result) => number): string =>
  a === null || b === null ? 'NaN' : (f(a) / f(b)).toFixed(2);
console.log(
  `RESULT messages=${TOTAL} kind=${KIND} message_bytes=${KIND === 'ready' ? 'small' : SLICE_BYTES} in_flight=${IN_FLIGHT} unapplied=${UNAPPLIED} max_batch=${DEFAULT_MAX_BATCH} ` +
    `nats_msgs_per_s=${fmt(nats.msgsPerSecond)} nats_p99_ms=${fmt(nats.p99Ms)} nats_exactly_once=${exactlyOnce(nats)} ` +
    // The whole run, warm-up included (what this line's nats_msgs_per_s was before ADR 0041).
    `warmup=${warmFor(TOTAL)} nats_whole_run_msgs_per_s=${fmt(nats.wholeMsgsPerSecond)} ` +
    `nats_whole_run_p99_ms=${fmt(nats.wholeP99Ms)} ` +
    `nats_bus_messages=${busMessages(nats)} nats_bench_cpu_us_per_msg=${cpuPerMsg(nats.benchCpuS, nats)} ` +
    `nats_server_cpu_us_per_msg=${cpuPerMsg(nats.serverCpuS, nats)} ` +
    `nats_consumer_thread_cpu_us_per_msg=${cpuPerMsg(nats.consumerThreadCpuS, nats)} ` +
    // The three that share the machine's cores: the publishers' threads (the bench process less the
    // consumer's thread), the consumer's thread, nats-server; their sum caps msgs/s at cores / sum.
    `nats_publishers_cpu_us_per_msg=${cpuPerMsg(nats.benchCpuS - nats.consumerThreadCpuS, nats)} ` +
    `nats_total_cpu_us_per_msg=${cpuPerMsg(nats.benchCpuS + nats.serverCpuS, nats)} ` +
    `nats_msgs_per_bus_message=${nats.perBusMessage.toFixed(1)} ` +
    `nats_publishers=${nats.publishersWhere} publisher_threads=${PUBLISHER_THREADS} ` +
    `nats_format=${DEFAULT_BATCH_FORMAT} ` +
    `${OTHER_FORMAT}_batches_nats_msgs_per_s=${fmt(natsOther.msgsPerSecond)} ` +
    `${OTHER_FORMAT}_batches_nats_p99_ms=${fmt(natsOther.p99Ms)} ` +
    `${OTHER_FORMAT}_batches_exactly_once=${exactlyOnce(natsOther)} ` +
    `${OTHER_FORMAT}_batches_bench_cpu_us_per_msg=${cpuPerMsg(natsOther.benchCpuS, natsOther)} ` +
    `${OTHER_FORMAT}_batches_server_cpu_us_per_msg=${cpuPerMsg(natsOther.serverCpuS, natsOther)} ` +
    `${OTHER_FORMAT}_batches_consumer_thread_cpu_us_per_msg=${cpuPerMsg(natsOther.consumerThreadCpuS, natsOther)} ` +
    `${OTHER_FORMAT}_batches_publishers_cpu_us_per_msg=` +
    `${cpuPerMsg(natsOther.benchCpuS - natsOther.consumerThreadCpuS, natsOther)} ` +
    `same_thread_nats_msgs_per_s=${fmt(natsSameThread.msgsPerSecond)} ` +
    `same_thread_nats_p99_ms=${fmt(natsSameThread.p99Ms)} ` +
    `same_thread_exactly_once=${exactlyOnce(natsSameThread)} ` +
    `same_thread_bench_cpu_us_per_msg=${cpuPerMsg(natsSameThread.benchCpuS, natsSameThread)} ` +
    `same_thread_server_cpu_us_per_msg=${cpuPerMsg(natsSameThread.serverCpuS, natsSameThread)} ` +
    `inprocess_msgs_per_s=${fmt(inprocess.msgsPerSecond)} inprocess_p99_ms=${fmt(inprocess.p99Ms)} ` +
    `inprocess_exactly_once=${exactlyOnce(inprocess)} ` +
    `inprocess_cpu_us_per_msg=${cpuPerMsg(inprocess.benchCpuS, inprocess)} ` +
    `baseline=${BASELINE} baseline_nats_msgs_per_s=${baseNats === null ? 'NaN' : fmt(baseNats.msgsPerSecond)} ` +
    `baseline_nats_p99_ms=${baseNats === null ? 'NaN' : fmt(baseNats.p99Ms)} ` +
    `baseline_nats_bench_cpu_us_per_msg=${baseNats === null ? 'NaN' : cpuPerMsg(baseNats.benchCpuS, baseNats)} ` +
    `baseline_inprocess_msgs_per_s=${baseInprocess === null ? 'NaN' : fmt(baseInprocess.msgsPerSecond)} ` +
    `baseline_inprocess_cpu_us_per_msg=` +
    `${baseInprocess === null ? 'NaN' : cpuPerMsg(baseInprocess.benchCpuS, baseInprocess)} ` +
    `nats_vs_baseline_throughput=${ratio(nats, baseNats, (r) => r.msgsPerSecond)} ` +
    `inprocess_vs_baseline_throughput=${ratio(inprocess, baseInprocess, (r) => r.msgsPerSecond)} ` +
    `baseline_vs_current_inprocess_cpu=${ratio(baseInprocess, inprocess, (r) => perSlice(r.benchCpuS, r))} ` +
    `unbatched_nats_msgs_per_s=${fmt(unbatched.msgsPerSecond)} unbatched_nats_p99_ms=${fmt(unbatched.p99Ms)} ` +
    `unbatched_exactly_once=${exactlyOnce(unbatched)} ` +
    `unbatched_nats_server_cpu_us_per_msg=${cpuPerMsg(unbatched.serverCpuS, unbatched)} ` +
    `serial_nats_msgs_per_s=${fmt(serial.msgsPerSecond)} serial_nats_p99_ms=${fmt(serial.p99Ms)} ` +
    `serial_exactly_once=${exactlyOnce(serial)} ` +
    `nats_vs_inprocess_throughput=${(nats.msgsPerSecond / inprocess.msgsPerSecond).toFixed(3)} ` +
    `nats_vs_unbatched_throughput=${(nats.msgsPerSecond / unbatched.msgsPerSecond).toFixed(2)} ` +
    `loadavg1=${loadavg()[0]?.toFixed(2)}`,
);
const allExact = [exactlyOnce(nats), exactlyOnce(natsSameThread), exactlyOnce(natsOther), exactlyOnce(inprocess)];
allExact.push(exactlyOnce(unbatched));
for (const r of [baseNats, baseInprocess]) if (r !== null) allExact.push(exactlyOnce(r));
if (!allExact.every(Boolean) || !exactlyOnce(serial)) process.exitCode = 1;
