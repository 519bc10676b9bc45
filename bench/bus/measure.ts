// One phase of the bus bench, measured: the consumer decodes every bus message and applies it to a
// fresh Aggregator, dates each applied slice by its sentAtMs, proves exactly once, and reads the CPU of
// this process, its consumer thread and nats-server. The figures cover a steady-state window (ADR 0041):
// it opens once `warm` slices are applied, so the JIT warming of fresh worker threads, a fresh
// nats-server and the consumer's first batches are not in them; the whole run's figures come with it.
import type { DecodedBatch, WireMessage } from '../../api/protocol.ts';
import { experimentSubjectFilter } from '../../api/protocol.ts';
import type { Aggregator } from '../../aggregator/aggregator.ts';
import type { ApplyOutcome } from '../../aggregator/run-state.ts';
import type { Bus } from '../../lib/bus/types.ts';
import { countApplied, NS, type PublishPlan } from './publish.ts';
import { benchRuns } from './slices.ts';

/** What the consumer side needs: decode a bus message, and an aggregator to apply it. */
export interface ConsumerImpl {
  name: string;
  decodeMessages: (data: Uint8Array) => DecodedBatch;
  aggregator: (plan: ConstructorParameters<typeof Aggregator>[0]) => {
    applyBatch(messages: readonly WireMessage[], streamSeq: number): ApplyOutcome[];
  };
}

/** Publishers set up (connections open) and waiting: go() starts them and resolves once all are stored. */
export interface Publishers {
  /** Where the publishers run, for the report. */
  where: 'consumer_thread' | 'worker_threads';
  go(): Promise<void>;
  close(): Promise<void>;
}

export interface Result {
  /** Slices applied in the window per second of it. */
  msgsPerSecond: number;
  /** Slices applied in the window (all of them when it opened at the start). */
  measured: number;
  /** The whole run: every slice over first publish to last apply, and its p99. */
  wholeMsgsPerSecond: number;
  wholeP99Ms: number;
  /** Wire messages per bus message the consumer received, on average. */
  perBusMessage: number;
  /** CPU seconds nats-server used in the window (NaN in process). */
  serverCpuS: number;
  /** CPU seconds this process (all its threads: publishers, clients, consumer, aggregator) used in the window. */
  benchCpuS: number;
  /** CPU seconds the consumer's thread (consumer, aggregator, and the publishers if they share it) used. */
  consumerThreadCpuS: number;
  publishersWhere: Publishers['where'];
  /** Publish -> applied of the slices applied in the window. */
  p50Ms: number;
  p99Ms: number;
  /** Slices the phase published (warm-up and window); applied must equal it. */
  expected: number;
  applied: number;
  duplicatesApplied: number;
  missing: number;
}

export function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** Where the window opened: the clock, the slices applied by then, and every CPU reading. */
interface Mark {
  ms: number;
  applied: number;
  cpu: NodeJS.CpuUsage;
  thread: NodeJS.CpuUsage;
  serverCpuS: number;
}

function mark(applied: number, serverCpuS: () => number): Mark {
  const cpu = process.cpuUsage();
  const thread = process.threadCpuUsage();
  return { ms: performance.now(), applied, cpu, thread, serverCpuS: serverCpuS() };
}

/** A phase: its publishers (set up, waiting for go) and the consumer that applies what they send. */
export interface Phase {
  consumerBus: Bus;
  plan: PublishPlan;
  publishers: Publishers;
  impl: ConsumerImpl;
  /** appliedCounters: what the consumer counts and paced publishers poll. */
  applied: Int32Array;
  /** Slices applied before the window opens (0: it opens at the first publish). */
  warm: number;
  /** nats-server's CPU seconds so far (NaN in process). */
  serverCpuS: () => number;
}

/** The publishers of `plan` share its messages; sentAtMs (wall clock, same machine) dates each one. */
export async function measure(phase: Phase): Promise<Result> {
  const { consumerBus, plan, publishers, impl, applied, warm, serverCpuS } = phase;
  const { uid } = plan;
  const total = plan.perPublisher * plan.publishers.length;
  if (!(Number.isInteger(warm) && warm >= 0 && warm < total))
    throw new RangeError(`warm-up must be a whole number of slices below the phase's ${total}, got ${warm}`);
  const latencies = new Float64Array(total);
  const aggregator = impl.aggregator({ experimentUid: uid, runs: benchRuns(plan.publishers.length) });
  const seen = new Map<string, Set<number>>();
  let appliedN = 0;
  let duplicatesApplied = 0;
  let lastApplyMs = 0;
  let busMessages = 0;
  let window: Mark | null = null;
  let done!: () => void;
  const allApplied = new Promise<void>((r) => (done = r));
  const consumption = await consumerBus.consume({
    durable: `bench-${uid}`,
    filterSubject: experimentSubjectFilter(NS, uid),
    afterStreamSeq: 0,
    handler: async (m) => {
      // The window opens at the first bus message applied once `warm` slices are: it holds at most the rest.
      if (window === null && appliedN >= warm) window = mark(appliedN, serverCpuS);
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
        latencies[appliedN++] = nowMs - message.sentAtMs;
      }
      // A bus message holds one publisher's messages: one count for all of them (the publishers poll it).
      const first = d.messages[0];
      if (first !== undefined) countApplied(applied, Number(first.runId.slice(4)), d.messages.length);
      if (appliedN === total) done();
      return 'ack';
    },
  });
  const start = mark(0, serverCpuS);
  if (warm === 0) window = start;
  await publishers.go();
  await allApplied;
  const end = mark(appliedN, serverCpuS);
  await consumption.stop();
  let missing = 0;
  for (const p of plan.publishers) missing += plan.perPublisher - (seen.get(`run-${p}`)?.size ?? 0);
  const from = window ?? start;
  const inWindow = latencies.slice(from.applied, appliedN).sort();
  const whole = latencies.slice(0, appliedN).sort();
  const cpuS = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number => (b.user - a.user + b.system - a.system) / 1e6;
  const measured = appliedN - from.applied;
  return {
    msgsPerSecond: measured / ((lastApplyMs - from.ms) / 1000),
    measured,
    wholeMsgsPerSecond: appliedN / ((lastApplyMs - start.ms) / 1000),
    wholeP99Ms: percentile(whole, 0.99),
    serverCpuS: end.serverCpuS - from.serverCpuS,
    benchCpuS: cpuS(from.cpu, end.cpu),
    consumerThreadCpuS: cpuS(from.thread, end.thread),
    publishersWhere: publishers.where,
    perBusMessage: appliedN / busMessages,
    p50Ms: percentile(inWindow, 0.5),
    p99Ms: percentile(inWindow, 0.99),
    expected: total,
    applied: appliedN,
    duplicatesApplied,
    missing,
  };
}
