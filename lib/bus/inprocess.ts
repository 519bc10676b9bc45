// The Bus in memory (local mode): the same semantics as the NATS bus, without a broker.
// Stream sequences, msgId de-duplication within a window, durable consumers that resume from a
// checkpoint, in-order delivery with redelivery on handler errors, dead letters, KV and objects.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { experimentSubjectFilter } from '../../api/protocol.ts';
import { BusError } from '../errors.ts';
import { childLogger, type Logger } from '../log.ts';
import { InProcessConsumption, type StoredMessage } from './inprocess-consumer.ts';
import {
  assertCheckpointKey,
  assertControlSubject,
  assertDataFilter,
  assertDataSubject,
  belongsToExperiment,
  deadLetterSubject,
  experimentCheckpointKey,
  experimentDeadLetterFilter,
  subjectMatches,
} from './subjects.ts';
import type {
  Bus,
  CheckpointRecord,
  ConsumeOptions,
  Consumption,
  ControlSubscription,
  DeleteExperimentOptions,
  PublishAck,
} from './types.ts';
import type { PublishOptions } from './types.ts';

export type { StoredMessage };

export interface InProcessBusOptions {
  /** msgId de-duplication window, as JetStream's duplicate_window (default 120 s). */
  duplicateWindowMs?: number;
  /** Keep at most this many messages, dropping the oldest (default unlimited). */
  maxMessages?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Clock for the de-duplication window (tests). */
  nowMs?: () => number;
}

export class InProcessBus implements Bus {
  readonly #messages: StoredMessage[] = [];
  readonly #deadLetters: StoredMessage[] = [];
  readonly #dedup = new Map<string, { seq: number; atMs: number }>();
  readonly #consumptions = new Map<string, InProcessConsumption>();
  readonly #checkpoints = new Map<string, CheckpointRecord>();
  readonly #artifacts = new Map<string, Uint8Array>();
  readonly #control = new Set<{ subject: string; handler: (data: Uint8Array) => void }>();
  readonly #wakers = new Set<() => void>();
  readonly #opts: Required<InProcessBusOptions>;
  readonly #log: Logger;
  #lastSeq = 0;
  #deadLettered = 0;
  #closed = false;

  constructor(opts: InProcessBusOptions = {}) {
    this.#opts = {
      duplicateWindowMs: opts.duplicateWindowMs ?? 120_000,
      maxMessages: opts.maxMessages ?? -1,
      retryInitialMs: opts.retryInitialMs ?? 50,
      retryMaxMs: opts.retryMaxMs ?? 5000,
      nowMs: opts.nowMs ?? Date.now,
    };
    this.#log = childLogger({ component: 'bus', bus: 'inprocess' });
  }

  async ensureLayout(): Promise<void> {
    this.#assertOpen();
  }

  async publish(subject: string, data: Uint8Array, opts: PublishOptions): Promise<PublishAck> {
    this.#assertOpen();
    assertDataSubject(subject);
    const now = this.#opts.nowMs();
    this.#forgetOldIds(now);
    const seen = this.#dedup.get(opts.msgId);
    if (seen !== undefined) return { streamSeq: seen.seq, duplicate: true };
    const streamSeq = ++this.#lastSeq;
    this.#messages.push({
      subject,
      data: data.slice(),
      streamSeq,
      ...(opts.headers === undefined ? {} : { headers: { ...opts.headers } }),
    });
    this.#dedup.set(opts.msgId, { seq: streamSeq, atMs: now });
    if (this.#opts.maxMessages >= 0 && this.#messages.length > this.#opts.maxMessages) this.#messages.shift();
    this.#wake();
    // The ack comes on a later turn, as from a broker: a tight publisher loop cannot starve consumers.
    await nextTurn();
    return { streamSeq, duplicate: false };
  }

  /** Map keeps insertion order, which is publish-time order: expired ids are all at the front. */
  #forgetOldIds(now: number): void {
    for (const [id, entry] of this.#dedup) {
      if (now - entry.atMs < this.#opts.duplicateWindowMs) break;
      this.#dedup.delete(id);
    }
  }

  async consume(opts: ConsumeOptions): Promise<Consumption> {
    this.#assertOpen();
    assertDataFilter(opts.filterSubject);
    await this.#consumptions.get(opts.durable)?.stop();
    const consumption = new InProcessConsumption(opts, {
      next: (filter, after) => this.#next(filter, after),
      waitForPublish: (signal) => this.#waitForPublish(signal),
      deadLetter: (m) => this.#deadLetter(m),
      retryInitialMs: this.#opts.retryInitialMs,
      retryMaxMs: this.#opts.retryMaxMs,
      log: this.#log.child({ durable: opts.durable }),
    });
    this.#consumptions.set(opts.durable, consumption);
    consumption.start();
    return {
      stop: async () => {
        if (this.#consumptions.get(opts.durable) === consumption) this.#consumptions.delete(opts.durable);
        await consumption.stop();
      },
      idle: () => consumption.idle(),
    };
  }

  #next(filter: string, afterSeq: number): StoredMessage | undefined {
    let lo = 0;
    let hi = this.#messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#messages[mid]?.streamSeq ?? Infinity) <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.#messages.length; i++) {
      const m = this.#messages[i];
      if (m !== undefined && subjectMatches(filter, m.subject)) return m;
    }
    return undefined;
  }

  async #waitForPublish(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#wakers.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#wakers.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #wake(): void {
    for (const w of [...this.#wakers]) w();
  }

  #deadLetter(m: StoredMessage): void {
    this.#deadLetters.push({ subject: deadLetterSubject(m.subject), data: m.data, streamSeq: m.streamSeq });
    this.#deadLettered++;
    this.#log.warn({ subject: m.subject, streamSeq: m.streamSeq }, 'message moved to dead letters');
  }

  /** Dead-lettered copies (subject under llem.dlq.v1., streamSeq of the original). */
  deadLetters(): readonly StoredMessage[] {
    return this.#deadLetters;
  }

  async publishControl(subject: string, data: Uint8Array): Promise<void> {
    this.#assertOpen();
    assertControlSubject(subject, false);
    const copy = data.slice();
    // Delivered on a later turn, as over a network: a handler never runs inside publishControl().
    for (const sub of this.#control) {
      if (subjectMatches(sub.subject, subject)) setImmediate(() => sub.handler(copy));
    }
  }

  async subscribeControl(subject: string, handler: (data: Uint8Array) => void): Promise<ControlSubscription> {
    this.#assertOpen();
    assertControlSubject(subject, true);
    const sub = { subject, handler };
    this.#control.add(sub);
    return {
      unsubscribe: async () => {
        this.#control.delete(sub);
      },
    };
  }

  async putCheckpoint(key: string, record: CheckpointRecord): Promise<void> {
    this.#assertOpen();
    assertCheckpointKey(key);
    this.#checkpoints.set(key, { state: record.state.slice(), lastStreamSeq: record.lastStreamSeq });
  }

  async getCheckpoint(key: string): Promise<CheckpointRecord | null> {
    this.#assertOpen();
    assertCheckpointKey(key);
    const record = this.#checkpoints.get(key);
    return record === undefined ? null : { state: record.state.slice(), lastStreamSeq: record.lastStreamSeq };
  }

  async putArtifact(name: string, data: Uint8Array): Promise<void> {
    this.#assertOpen();
    this.#artifacts.set(name, data.slice());
  }

  async getArtifact(name: string): Promise<Uint8Array | null> {
    this.#assertOpen();
    return this.#artifacts.get(name)?.slice() ?? null;
  }

  async deleteExperiment(opts: DeleteExperimentOptions): Promise<void> {
    this.#assertOpen();
    const consumption = this.#consumptions.get(opts.durable);
    this.#consumptions.delete(opts.durable);
    await consumption?.stop();
    const key = experimentCheckpointKey(opts.namespace, opts.experimentUid);
    for (const k of [...this.#checkpoints.keys()]) if (belongsToExperiment(k, key)) this.#checkpoints.delete(k);
    if (opts.purgeMessages) {
      removeMatching(this.#messages, experimentSubjectFilter(opts.namespace, opts.experimentUid));
      removeMatching(this.#deadLetters, experimentDeadLetterFilter(opts.namespace, opts.experimentUid));
    }
  }

  deadLettered(): number {
    return this.#deadLettered;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#consumptions.values()) await c.stop();
    this.#consumptions.clear();
    this.#control.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new BusError('the in-process bus is closed');
  }
}

function removeMatching(list: StoredMessage[], filter: string): void {
  const kept = list.filter((m) => !subjectMatches(filter, m.subject));
  list.splice(0, list.length, ...kept);
}
