// End-to-end bus benchmark: publishers -> bus -> in-order consumer, through a real nats-server and,
// as the baseline in the same run, through the in-process bus. Reports messages/s (first publish to
// last apply) and p99 publish-to-apply latency. Short by default (~20 s): BENCH_BUS_MESSAGES to change.
import { dataSubject, encodeMessage, experimentSubjectFilter, messageId, decodeMessage } from '../api/protocol.ts';
import { InProcessBus } from '../lib/bus/inprocess.ts';
import { openNatsBus } from '../lib/bus/nats.ts';
import type { Bus } from '../lib/bus/types.ts';
import { startNatsServer } from '../tests/support/nats-server.ts';

const TOTAL = Number(process.env['BENCH_BUS_MESSAGES'] ?? 20_000);
const PUBLISHERS = 10;
const NS = 'bench';

interface Result {
  msgsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** `publishers` share `TOTAL` messages; each message carries its publish time (same process clock). */
async function run(consumerBus: Bus, publisherBuses: Bus[], uid: string): Promise<Result> {
  const latencies = new Float64Array(TOTAL);
  let applied = 0;
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
      lastApplyMs = performance.now();
      latencies[applied++] = lastApplyMs - d.message.sentAtMs;
      if (applied === TOTAL) done();
      return 'ack';
    },
  });
  const perPublisher = TOTAL / PUBLISHERS;
  const startMs = performance.now();
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async (_, p) => {
      const bus = publisherBuses[p % publisherBuses.length] as Bus;
      const key = { namespace: NS, experimentUid: uid, runId: `run-${p}`, attempt: 0, replica: 0 };
      for (let seq = 1; seq <= perPublisher; seq++) {
        const msg = { v: 1 as const, ...key, seq, sentAtMs: performance.now(), simulated: true, kind: 'ready' as const };
        await bus.publish(dataSubject(key, 'ready'), encodeMessage(msg), { msgId: messageId(msg) });
      }
    }),
  );
  await allApplied;
  await consumption.stop();
  const sorted = latencies.sort();
  return { msgsPerSecond: TOTAL / ((lastApplyMs - startMs) / 1000), p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

async function benchInProcess(): Promise<Result> {
  const bus = new InProcessBus();
  await bus.ensureLayout();
  try {
    return await run(bus, [bus], 'inprocess');
  } finally {
    await bus.close();
  }
}

async function benchNats(): Promise<Result> {
  const server = await startNatsServer();
  try {
    const consumerBus = await openNatsBus({ servers: server.url });
    await consumerBus.ensureLayout();
    const publishers = await Promise.all(Array.from({ length: PUBLISHERS }, () => openNatsBus({ servers: server.url })));
    try {
      return await run(consumerBus, publishers, 'nats');
    } finally {
      for (const b of publishers) await b.close();
      await consumerBus.close();
    }
  } finally {
    await server.cleanup();
  }
}

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
const inprocess = await benchInProcess();
console.log(`in-process: ${fmt(inprocess.msgsPerSecond)} msgs/s, p50 ${fmt(inprocess.p50Ms)} ms, p99 ${fmt(inprocess.p99Ms)} ms (${TOTAL} messages, ${PUBLISHERS} publishers)`);
const nats = await benchNats();
console.log(`nats-server: ${fmt(nats.msgsPerSecond)} msgs/s, p50 ${fmt(nats.p50Ms)} ms, p99 ${fmt(nats.p99Ms)} ms (${TOTAL} messages, ${PUBLISHERS} publishers on ${PUBLISHERS} connections, file storage)`);
console.log(
  `RESULT messages=${TOTAL} nats_msgs_per_s=${fmt(nats.msgsPerSecond)} nats_p99_ms=${fmt(nats.p99Ms)} ` +
    `inprocess_msgs_per_s=${fmt(inprocess.msgsPerSecond)} inprocess_p99_ms=${fmt(inprocess.p99Ms)} ` +
    `nats_vs_inprocess_throughput=${(nats.msgsPerSecond / inprocess.msgsPerSecond).toFixed(3)}`,
);
