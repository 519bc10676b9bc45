// Publishes this agent's wire messages with contiguous per-publisher sequence numbers: seq 1, 2, 3
// ... over all kinds, so the aggregator can prove it saw everything.
//
// Pipelined (issue #16 item 7): up to `maxInFlight` publishes await their acks at once instead of
// one round trip per message. Exactly-once still holds because it never rested on one-at-a-time
// sending: every message carries its own Nats-Msg-Id (a retry is answered as a duplicate), and the
// aggregator applies each (replica, seq) at most once in whatever order they land and reports any
// gap. Publishes are handed to the bus in seq order (one connection stores them in that order);
// only a retried message can land after a later one. The summary and the aborted marker wait until
// every earlier message is acknowledged, so they are always the last stored.
//
// Batched (ADR 0021): messages that queue up while earlier ones await their acks, or that are
// published in the same event-loop turn, leave as one bus message (a JSON array under the `batch`
// subject token, one Nats-Msg-Id naming its first and last seq). Each member keeps its own seq, so
// the aggregator's per-(replica, seq) checks are unchanged; a retry re-sends the same bytes with the
// same id. Nothing leaves before the end of the event-loop turn it was published in (ADR 0036), so a
// burst published while nothing is in flight leaves as one bus message too, not as one alone + the rest.
//
// Batches are the binary envelope of protocol-binary.ts by default (ADR 0033: the publisher's identity
// once, each member's fields as JSON without it, sketches as raw bytes instead of base64, a quarter fewer
// bytes; the default since ADR 0036's amendment measured it cheaper for the agent, nats-server and the
// consumer); `format: 'json'` sends ADR 0021's JSON arrays, which a consumer of an older release reads.
// Every consumer of this release reads both. A JSON publisher's lone message is a plain JSON message; a
// binary publisher's is a binary batch of one (ADR 0036, amended: its member bytes, made at publish(), are
// sent as they are, not encoded again as JSON). Summary and aborted are always plain JSON.
import {
  BATCH_KIND,
  MAX_BATCH_MESSAGES,
  PROTOCOL_VERSION,
  batchMessageId,
  dataSubject,
  encodeBatch,
  encodeMessage,
  messageId,
  type MessageKind,
  type PublisherKey,
  type SummaryMessage,
  type WireMessage,
} from '../api/protocol.ts';
import { encodeBinaryBatch, encodeBinaryMember } from '../api/protocol-binary.ts';
import { BusError } from '../lib/errors.ts';
import type { Bus } from '../lib/bus/types.ts';
import { natsTraceHeaders } from '../lib/telemetry/index.ts';

type Body<K extends MessageKind> = Omit<
  Extract<WireMessage, { kind: K }>,
  'v' | 'kind' | 'seq' | 'sentAtMs' | 'simulated' | keyof PublisherKey
>;

export type CountsByKind = SummaryMessage['countsByKind'];

/** Publishes awaiting their ack at once, per publisher: enough to hide a round trip, bounded memory. */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Most wire messages per bus message (1 = never batch). */
export const DEFAULT_MAX_BATCH = 64;
/** A batch stays well under NATS's default 1 MiB message limit; a larger message goes alone. */
export const MAX_BATCH_BYTES = 256 * 1024;
/**
 * How batches are encoded: `binary` (ADR 0033's envelope; the default) or `json` (an array of wire
 * messages, ADR 0021). Every consumer of this release reads both; one before ADR 0033 reads only JSON.
 */
export type BatchFormat = 'binary' | 'json';
/** Binary since ADR 0036's amendment: fewer bytes and less CPU on every side of the bus (its figures). */
export const DEFAULT_BATCH_FORMAT: BatchFormat = 'binary';
/** How a Publisher batches: at most `maxBatch` wire messages per bus message, encoded as `format`. */
export interface Batching {
  maxBatch?: number;
  format?: BatchFormat;
}

interface Job {
  message: WireMessage;
  /**
   * The message's bytes as a batch member, done at publish() so a batch is a concatenation: its
   * binary member (ADR 0033), or its JSON (encodeMessage) when batches are JSON.
   */
  data: Uint8Array;
  /** Waits for every earlier message's ack before it is sent (summary, aborted). */
  barrier: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** W3C trace context headers of the span active at publish(); undefined when untraced. */
  trace: Record<string, string> | undefined;
}

export class Publisher {
  private seq = 0;
  private failure: unknown;
  /** After `summary` or `aborted` nothing more is sent: they are this publisher's last word. */
  private sealed = false;
  private inFlight = 0;
  private readonly queue: Job[] = [];
  private idleWaiters: Array<() => void> = [];
  readonly counts: CountsByKind = { hello: 0, ready: 0, sketch: 0, telemetry: 0 };
  private readonly bus: Bus;
  private readonly key: PublisherKey;
  private readonly simulated: boolean;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly batchFormat: BatchFormat;
  /** A pump is scheduled for the end of this event-loop turn (publishes until then may share a batch). */
  private pumpScheduled = false;

  /**
   * `maxInFlight`: bus messages awaiting their acks at once; `batching`: wire messages per bus
   * message (1 sends each alone, as before ADR 0021), or that and the batches' format.
   */
  constructor(
    bus: Bus,
    key: PublisherKey,
    simulated: boolean,
    maxInFlight = DEFAULT_MAX_IN_FLIGHT,
    batching: number | Batching = DEFAULT_MAX_BATCH,
  ) {
    const maxBatch = typeof batching === 'number' ? batching : (batching.maxBatch ?? DEFAULT_MAX_BATCH);
    const batchFormat = typeof batching === 'number' ? DEFAULT_BATCH_FORMAT : (batching.format ?? DEFAULT_BATCH_FORMAT);
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1)
      throw new RangeError(`maxInFlight must be a whole number >= 1, got ${maxInFlight}`);
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH_MESSAGES)
      throw new RangeError(`maxBatch must be a whole number from 1 to ${MAX_BATCH_MESSAGES}, got ${maxBatch}`);
    this.bus = bus;
    this.key = key;
    this.simulated = simulated;
    this.maxInFlight = maxInFlight;
    this.maxBatch = maxBatch;
    this.batchFormat = batchFormat;
  }

  /** Messages handed to publish so far (the next one's seq is this + 1). */
  get sent(): number {
    return this.seq;
  }

  /**
   * Assign the next seq now (call order = seq order) and hand it to the bus as soon as fewer than
   * maxInFlight publishes await their acks. Resolves when this message is stored.
   */
  publish<K extends MessageKind>(kind: K, body: Body<K>): Promise<void> {
    if (this.sealed) return Promise.resolve();
    const barrier = kind === 'summary' || kind === 'aborted';
    if (barrier) this.sealed = true;
    this.seq++;
    if (kind in this.counts) this.counts[kind as keyof CountsByKind]++;
    const message = {
      v: PROTOCOL_VERSION,
      ...this.key,
      seq: this.seq,
      sentAtMs: Date.now(),
      simulated: this.simulated,
      kind,
      ...body,
    } as WireMessage;
    return new Promise<void>((resolve, reject) => {
      // The span active at the call, not whenever the queue gets to this message.
      const trace = natsTraceHeaders();
      // Encoded once, here: summary and aborted always leave alone (as JSON), with batches of 1 everything
      // does; a binary publisher's other messages become binary members, whether or not they share a batch.
      const data = this.plainJson(barrier) ? encodeMessage(message) : encodeBinaryMember(message);
      this.queue.push({ message, data, barrier, resolve, reject, trace });
      // Leave at the end of this turn (or with the next ack), also when nothing is in flight, so that
      // what is published in the same turn shares one bus message (ADR 0036: leaving at once sent the
      // first of every burst alone, doubling the bus messages of a paced publisher).
      this.schedulePump();
    });
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    // Refill in bursts: publishes started in one turn leave in one socket write (the NATS client
    // flushes once per microtask turn), where one-for-one refills as acks arrive cost a write each.
    const burst = this.inFlight <= this.maxInFlight / 2;
    while (this.queue.length > 0) {
      const head = this.queue[0] as Job;
      if (this.failure !== undefined) {
        this.queue.shift();
        head.reject(this.failure);
        continue;
      }
      if (!burst || this.inFlight >= this.maxInFlight || (head.barrier && this.inFlight > 0)) break;
      this.start(this.takeBatch());
    }
    if (this.inFlight === 0 && this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * The head of the queue and the messages after it that may share its bus message: not a barrier
   * (summary and aborted go alone, after every ack), the same trace context, within the size caps.
   */
  private takeBatch(): Job[] {
    const head = this.queue.shift() as Job;
    const jobs = [head];
    if (head.barrier) return jobs;
    let bytes = head.data.length;
    const traceparent = head.trace?.['traceparent'];
    while (jobs.length < this.maxBatch && this.queue.length > 0) {
      const next = this.queue[0] as Job;
      if (next.barrier || next.trace?.['traceparent'] !== traceparent) break;
      if (bytes + next.data.length + 1 > MAX_BATCH_BYTES) break;
      bytes += next.data.length + 1;
      jobs.push(this.queue.shift() as Job);
    }
    return jobs;
  }

  private start(jobs: Job[]): void {
    const first = jobs[0] as Job;
    const last = jobs[jobs.length - 1] as Job;
    const m = first.message;
    // A binary publisher's lone member leaves as a batch of one (its bytes are already made).
    const single = jobs.length === 1 && this.plainJson(first.barrier);
    this.inFlight++;
    let stored: Promise<unknown>;
    try {
      stored = this.bus.publish(dataSubject(this.key, single ? m.kind : BATCH_KIND), this.encode(jobs), {
        msgId: single ? messageId(m) : batchMessageId(m, last.message.seq),
        headers: first.trace,
      });
    } catch (err) {
      stored = Promise.reject(err);
    }
    const what = single ? `${m.kind} #${m.seq}` : `batch #${m.seq}-${last.message.seq}`;
    stored.then(
      () => {
        this.inFlight--;
        // A message stored after an earlier one failed still resolves: it is stored, exactly once.
        for (const j of jobs) j.resolve();
        this.pump();
      },
      (err: unknown) => {
        this.inFlight--;
        this.failure ??=
          err instanceof BusError
            ? err
            : new BusError(`publishing ${what} failed: ${(err as Error).message}`, { cause: err });
        for (const j of jobs) j.reject(this.failure);
        this.pump();
      },
    );
  }

  /** Whether a message is encoded whole as JSON (barriers, batches of 1, the JSON format), not as a binary member. */
  private plainJson(barrier: boolean): boolean {
    return this.batchFormat === 'json' || barrier || this.maxBatch === 1;
  }

  /**
   * A bus message's bytes from the members' bytes made at publish(), never encoding a message twice: a
   * lone JSON message as it is, a JSON batch as an array, binary members (also a lone one) in the envelope.
   */
  private encode(jobs: Job[]): Uint8Array {
    const first = jobs[0] as Job;
    if (this.plainJson(first.barrier)) return jobs.length === 1 ? first.data : encodeBatch(jobs.map((j) => j.data));
    return encodeBinaryBatch(
      first.message,
      jobs.map((j) => j.data),
    );
  }

  /** Resolves once everything handed over so far is stored; throws the first publish failure. */
  async drain(): Promise<void> {
    if (this.inFlight > 0 || this.queue.length > 0)
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.failure !== undefined) throw this.failure;
  }
}
