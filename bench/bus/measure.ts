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
  /** Wire messages per bus message the consumer received, on average over the whole run. */
  perBusMessage: number;
  /** CPU seconds nats-server used in the window (NaN in process). */
  serverCpuS: number;
  /** CPU seconds this process (all its threads: publishers, clients, consumer, aggregator) used in the window. */
  benchCpuS: number;
  /** CPU seconds the consumer's thread (consumer, aggregator, publishers if they share it) used in the window. */
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

function percentile(sorted: Float64Array, q: number): number {
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

/** What the consumer saw: slices applied (their latencies in order of applying), checks, and the marks. */
interface Seen {
  latencies: Float64Array;
  applied: number;
  duplicatesApplied: number;
  busMessages: number;
  lastApplyMs: number;
  perRun: Map<string, Set<number>>;
}

/**
 * The publishers of `plan` share its messages; sentAtMs (wall clock, same machine) dates each one. Rejects
 * when the warm-up leaves no window (the bus message that completes the warm-up also completes the phase).
 */
export async function measure(phase: Phase): Promise<Result> {
  const { consumerBus, plan, publishers, impl, applied, warm, serverCpuS } = phase;
  const { uid } = plan;
  const total = plan.perPublisher * plan.publishers.length;
  if (!(Number.isInteger(warm) && warm >= 0 && warm < total))
    throw new RangeError(`warm-up must be a whole number of slices below the phase's ${total}, got ${warm}`);
  const aggregator = impl.aggregator({ experimentUid: uid, runs: benchRuns(plan.publishers.length) });
  const seen: Seen = {
    latencies: new Float64Array(total),
    applied: 0,
    duplicatesApplied: 0,
    busMessages: 0,
    lastApplyMs: 0,
    perRun: new Map(),
  };
  let window: Mark | null = null;
  let end: Mark | null = null;
  let done!: () => void;
  const allApplied = new Promise<void>((r) => (done = r));
  const consumption = await consumerBus.consume({
    durable: `bench-${uid}`,
    filterSubject: experimentSubjectFilter(NS, uid),
    afterStreamSeq: 0,
    handler: async (m) => {
      // The window opens at the first bus message applied once `warm` slices are: it holds at most the rest.
      if (window === null && seen.applied >= warm) window = mark(seen.applied, serverCpuS);
      const d = impl.decodeMessages(m.data);
      if (!d.ok) return 'dead-letter';
      record(seen, d.messages, aggregator.applyBatch(d.messages, m.streamSeq));
      // A bus message holds one publisher's messages: one count for all of them (the publishers poll it).
      const first = d.messages[0];
      if (first !== undefined) countApplied(applied, Number(first.runId.slice(4)), d.messages.length);
      if (seen.applied === total) {
        // The window closes at the last apply: the publishers' and the server's teardown is not in it.
        end = mark(seen.applied, serverCpuS);
        done();
      }
      return 'ack';
    },
  });
  const start = mark(0, serverCpuS);
  if (warm === 0) window = start;
  await publishers.go();
  await allApplied;
  await consumption.stop();
  if (window === null || end === null)
    throw new RangeError(
      `a warm-up of ${warm} slices left no window: the bus message that completed it was the phase's last ` +
        `(make the warm-up smaller than the phase's ${total} by more than a bus message)`,
    );
  return summarize(seen, { plan, start, window, end, where: publishers.where });
}

/** Adds one bus message's applied slices: their latencies, and the (run, seq) pairs for exactly once. */
function record(seen: Seen, messages: readonly WireMessage[], outcomes: readonly ApplyOutcome[]): void {
  seen.busMessages++;
  seen.lastApplyMs = performance.now();
  const nowMs = Date.now();
  for (const [i, message] of messages.entries()) {
    if (outcomes[i]?.outcome !== 'applied') continue;
    const seqs = seen.perRun.get(message.runId) ?? new Set<number>();
    seen.perRun.set(message.runId, seqs);
    if (seqs.has(message.seq)) seen.duplicatesApplied++;
    seqs.add(message.seq);
    seen.latencies[seen.applied++] = nowMs - message.sentAtMs;
  }
}

interface Marks {
  plan: PublishPlan;
  start: Mark;
  window: Mark;
  end: Mark;
  where: Publishers['where'];
}

function summarize(seen: Seen, { plan, start, window, end, where }: Marks): Result {
  let missing = 0;
  for (const p of plan.publishers) missing += plan.perPublisher - (seen.perRun.get(`run-${p}`)?.size ?? 0);
  const inWindow = seen.latencies.slice(window.applied, seen.applied).sort();
  const whole = seen.latencies.slice(0, seen.applied).sort();
  const cpuS = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number => (b.user - a.user + b.system - a.system) / 1e6;
  const measured = seen.applied - window.applied;
  return {
    msgsPerSecond: measured / ((seen.lastApplyMs - window.ms) / 1000),
    measured,
    wholeMsgsPerSecond: seen.applied / ((seen.lastApplyMs - start.ms) / 1000),
    wholeP99Ms: percentile(whole, 0.99),
    serverCpuS: end.serverCpuS - window.serverCpuS,
    benchCpuS: cpuS(window.cpu, end.cpu),
    consumerThreadCpuS: cpuS(window.thread, end.thread),
    publishersWhere: where,
    perBusMessage: seen.applied / seen.busMessages,
    p50Ms: percentile(inWindow, 0.5),
    p99Ms: percentile(inWindow, 0.99),
    expected: plan.perPublisher * plan.publishers.length,
    applied: seen.applied,
    duplicatesApplied: seen.duplicatesApplied,
    missing,
  };
}
