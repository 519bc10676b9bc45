// End-to-end bus benchmark, the agent -> bus -> aggregator path: agent Publishers (pipelined, with
// their Nats-Msg-Id and per-publisher seq) -> a real nats-server -> the in-order consumer -> the real
// Aggregator. The baseline in the same run is the same path over the in-process bus. Reports
// messages/s (first publish to last apply), p50/p99 publish-to-applied latency, and checks exactly
// once (every (publisher, seq) applied once, none missing, no duplicate applied).
// Short by default (~20 s): BENCH_BUS_MESSAGES to change; BENCH_BUS_IN_FLIGHT sets each publisher's window
// (default 16: 160 messages in flight keep publish->applied latency low once the consumer is the limit;
// 1 = the old one-ack-at-a-time path, run as the second baseline in the same process).
import { decodeMessage, experimentSubjectFilter } from '../api/protocol.ts';
import { Publisher } from '../agent/publisher.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { InProcessBus } from '../lib/bus/inprocess.ts';
import { openNatsBus } from '../lib/bus/nats.ts';
import type { Bus } from '../lib/bus/types.ts';
import { startNatsServer } from '../tests/support/nats-server.ts';

const TOTAL = Number(process.env['BENCH_BUS_MESSAGES'] ?? 40_000);
const IN_FLIGHT = Number(process.env['BENCH_BUS_IN_FLIGHT'] ?? 16);
const PUBLISHERS = 10;
const NS = 'bench';

interface Result {
  msgsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  applied: number;
  duplicatesApplied: number;
  missing: number;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function planFor(uid: string): Aggregator {
  const runs = Array.from({ length: PUBLISHERS }, (_, p) => ({
    runId: `run-${p}`,
    configId: 'c',
    configHash: 'h',
    cycle: 0,
    replicas: 1,
    failurePolicy: 'strict' as const,
  }));
  return new Aggregator({ experimentUid: uid, runs });
}

/** `publishers` share `TOTAL` messages; sentAtMs (wall clock, same machine) dates each one. */
async function run(
  consumerBus: Bus,
  publisherBuses: Bus[],
  uid: string,
  inFlight: number,
  total: number,
): Promise<Result> {
  const latencies = new Float64Array(total);
  const aggregator = planFor(uid);
  const seen = new Map<string, Set<number>>();
  let applied = 0;
  let duplicatesApplied = 0;
  let lastApplyMs = 0;
  let done!: () => void;
  const allApplied = new Promise<void>((r) => (done = r));
  const consumption = await consumerBus.consume({
    durable: `bench-${uid}`,
    filterSubject: experimentSubjectFilter(NS, uid),
    afterStreamSeq: 0,
    handler: async (m) => {
      const d = decodeMessage(m.data);
      if (!d.ok) return 'dead-letter';
      const outcome = aggregator.apply(d.message, m.streamSeq);
      lastApplyMs = performance.now();
      if (outcome.outcome !== 'applied') return 'ack';
      const seqs = seen.get(d.message.runId) ?? new Set<number>();
      seen.set(d.message.runId, seqs);
      if (seqs.has(d.message.seq)) duplicatesApplied++;
      seqs.add(d.message.seq);
      latencies[applied++] = Date.now() - d.message.sentAtMs;
      if (applied === total) done();
      return 'ack';
    },
  });
  const perPublisher = total / PUBLISHERS;
  const startMs = performance.now();
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async (_, p) => {
      const bus = publisherBuses[p % publisherBuses.length] as Bus;
      const key = { namespace: NS, experimentUid: uid, runId: `run-${p}`, attempt: 0, replica: 0 };
      const publisher = new Publisher(bus, key, true, inFlight);
      // Backpressure as an agent that outruns the bus feels it: before message i, wait for the ack
      // of message i - inFlight, so the publisher's queue never grows past its window.
      const window: Array<Promise<void>> = [];
      for (let i = 0; i < perPublisher; i++) {
        if (i >= inFlight) await window[i % inFlight];
        window[i % inFlight] = publisher.publish('ready', {});
      }
      await publisher.drain();
    }),
  );
  await allApplied;
  await consumption.stop();
  let missing = 0;
  for (let p = 0; p < PUBLISHERS; p++) missing += perPublisher - (seen.get(`run-${p}`)?.size ?? 0);
  const sorted = latencies.sort();
  return {
    msgsPerSecond: total / ((lastApplyMs - startMs) / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    applied,
    duplicatesApplied,
    missing,
  };
}

async function benchInProcess(): Promise<Result> {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  try {
    return await run(bus, [bus], 'inprocess', IN_FLIGHT, TOTAL);
  } finally {
    await bus.close();
  }
}

async function benchNats(inFlight: number, total: number): Promise<Result> {
  const server = await startNatsServer();
  try {
    const consumerBus = await openNatsBus({ servers: server.url });
    await consumerBus.ensureLayout();
    const publishers = await Promise.all(
      Array.from({ length: PUBLISHERS }, () => openNatsBus({ servers: server.url })),
    );
    try {
      return await run(consumerBus, publishers, `nats${inFlight}`, inFlight, total);
    } finally {
      for (const b of publishers) await b.close();
      await consumerBus.close();
    }
  } finally {
    await server.cleanup();
  }
}

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
const exactlyOnce = (r: Result, total = TOTAL): boolean =>
  r.applied === total && r.duplicatesApplied === 0 && r.missing === 0;
const inprocess = await benchInProcess();
console.log(
  `in-process: ${fmt(inprocess.msgsPerSecond)} msgs/s, p50 ${fmt(inprocess.p50Ms)} ms, p99 ${fmt(inprocess.p99Ms)} ms (${TOTAL} messages, ${PUBLISHERS} publishers, ${IN_FLIGHT} in flight each)`,
);
const nats = await benchNats(IN_FLIGHT, TOTAL);
console.log(
  `nats-server: ${fmt(nats.msgsPerSecond)} msgs/s, p50 ${fmt(nats.p50Ms)} ms, p99 ${fmt(nats.p99Ms)} ms (${TOTAL} messages, ${PUBLISHERS} publishers on ${PUBLISHERS} connections, ${IN_FLIGHT} in flight each, file storage, into the Aggregator)`,
);
// The path as it was (one ack round trip per message per publisher), on a quarter of the messages.
const serialTotal = Math.round(TOTAL / 4 / PUBLISHERS) * PUBLISHERS;
const serial = await benchNats(1, serialTotal);
console.log(
  `nats-server, 1 in flight each (before): ${fmt(serial.msgsPerSecond)} msgs/s, p99 ${fmt(serial.p99Ms)} ms (${serialTotal} messages)`,
);
console.log(
  `RESULT messages=${TOTAL} in_flight=${IN_FLIGHT} nats_msgs_per_s=${fmt(nats.msgsPerSecond)} nats_p99_ms=${fmt(nats.p99Ms)} ` +
    `nats_exactly_once=${exactlyOnce(nats)} serial_nats_msgs_per_s=${fmt(serial.msgsPerSecond)} serial_nats_p99_ms=${fmt(serial.p99Ms)} ` +
    `serial_exactly_once=${exactlyOnce(serial, serialTotal)} inprocess_msgs_per_s=${fmt(inprocess.msgsPerSecond)} inprocess_p99_ms=${fmt(inprocess.p99Ms)} ` +
    `inprocess_exactly_once=${exactlyOnce(inprocess)} nats_vs_inprocess_throughput=${(nats.msgsPerSecond / inprocess.msgsPerSecond).toFixed(3)}`,
);
if (!exactlyOnce(nats) || !exactlyOnce(inprocess) || !exactlyOnce(serial, serialTotal)) process.exitCode = 1;
