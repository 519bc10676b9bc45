// Consuming each experiment's stream: one durable consumer per experiment, messages applied in stream
// order to the RunLedger, state checkpointed (with the last applied stream sequence) so a restarted
// controller resumes where it stopped and never counts a message twice. Also the start barrier:
// once every replica of a run attempt is ready, one StartSignal goes out on the control subject.
import { traceApplied } from '../lib/telemetry/index.ts';
import { decodeMessage, startSubject, PROTOCOL_VERSION, type StartSignal, type WireMessage } from '../api/protocol.ts';
import { experimentSubjectFilter } from '../api/protocol.ts';
import { sanitizeToken } from '../api/names.ts';
import type { Bus, Consumption, DeliveredMessage } from '../lib/bus/types.ts';
import { experimentCheckpointKey, subjectMismatch } from '../lib/bus/subjects.ts';
import type { Logger } from '../lib/log.ts';
import { RunLedger } from './ledger.ts';
import type { ExperimentRef } from './pods.ts';
import { Aggregator, type AggregateResults } from '../aggregator/index.ts';

export interface FeedEvents {
  /** Something changed for this experiment: requeue it. */
  changed(ref: ExperimentRef): void;
  applied(ref: ExperimentRef, kind: string): void;
  lag(ref: ExperimentRef, seconds: number): void;
  /** Every applied message (live metrics such as run power); optional. */
  message?(ref: ExperimentRef, msg: WireMessage): void;
}

export interface ExperimentFeed {
  readonly ledger: RunLedger;
  /** The Aggregator's results (latency sketches, statistics), or null when it is unavailable. */
  aggregate(): AggregateResults | null;
  /** Publishes the start signal for an attempt whose replicas are all ready. Resends are harmless. */
  signalStart(runId: string, attempt: number): Promise<void>;
  /** Latency CDFs of included runs, for the report; null when the Aggregator is unavailable. */
  cdfSource(): Pick<Aggregator, 'latencyCdf'> | null;
  /** Tells the Aggregator a run attempt was started (before its pods exist): its messages are then accepted. */
  startAttempt(runId: string, attempt: number): void;
}

/** Attempts the controller already started (from status), declared before the consumer delivers anything. */
export type StartedAttempts = ReadonlyArray<{ runId: string; attempt: number }>;

/** What the reconciler needs from the stream side. */
export interface ExperimentStreams {
  /**
   * The experiment's feed; `newAggregator` is called once, when the feed has no checkpoint. `started`
   * is declared to the Aggregator before consumption begins, so a checkpoint older than a retry's
   * start does not make that retry's messages look unstarted after a controller restart.
   */
  feed(ref: ExperimentRef, newAggregator: () => Aggregator, started?: StartedAttempts): Promise<ExperimentFeed>;
  cleanup(ref: ExperimentRef): Promise<void>;
  /**
   * Writes the final results document (artifact) and, beside it, the derived files (CSV, plots,
   * report.html; relative names); returns the document's URI.
   */
  putArtifact(ref: ExperimentRef, body: unknown, files?: ReadonlyMap<string, string>): Promise<string>;
  stopAll(): Promise<void>;
}

export function durableName(ref: ExperimentRef): string {
  return sanitizeToken(`llem-${ref.namespace}-${ref.uid}`).slice(0, 200);
}

const enc = new TextEncoder();
const dec = new TextDecoder();

class Feed implements ExperimentFeed {
  ledger = new RunLedger();
  aggregator: Aggregator | null = null;
  lastStreamSeq = 0;
  dirty = false;
  consumption: Consumption | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly ref: ExperimentRef, private readonly bus: Bus, private readonly events: FeedEvents, private readonly log: Logger) {}

  cdfSource(): Pick<Aggregator, 'latencyCdf'> | null {
    return this.aggregator;
  }

  startAttempt(runId: string, attempt: number): void {
    if (this.aggregator === null || this.aggregator.attemptStarted(runId, attempt)) return;
    try {
      this.aggregator.startAttempt(runId, attempt);
      this.dirty = true;
    } catch (err) {
      this.log.warn({ err, run: runId, attempt }, 'aggregator refused an attempt start');
    }
  }

  aggregate(): AggregateResults | null {
    try {
      return this.aggregator?.results() ?? null;
    } catch (err) {
      this.log.warn({ err }, 'aggregator results failed');
      return null;
    }
  }

  private restore(state: Uint8Array, newAggregator: () => Aggregator): void {
    const body = JSON.parse(dec.decode(state)) as { ledger: string; aggregator: string | null };
    this.ledger = RunLedger.restore(enc.encode(body.ledger));
    this.aggregator = body.aggregator === null ? this.tryNew(newAggregator) : Aggregator.restore(enc.encode(body.aggregator));
  }

  private tryNew(newAggregator: () => Aggregator): Aggregator | null {
    try {
      return newAggregator();
    } catch (err) {
      this.log.warn({ err }, 'aggregator unavailable; status keeps energy figures only');
      return null;
    }
  }

  async start(checkpointMs: number, newAggregator: () => Aggregator, started: StartedAttempts = []): Promise<void> {
    const cp = await this.bus.getCheckpoint(experimentCheckpointKey(this.ref.namespace, this.ref.uid));
    if (cp !== null) {
      this.restore(cp.state, newAggregator);
      this.lastStreamSeq = cp.lastStreamSeq;
      this.log.info({ lastStreamSeq: cp.lastStreamSeq }, 'resuming from checkpoint');
    } else {
      this.aggregator = this.tryNew(newAggregator);
    }
    for (const s of started) this.startAttempt(s.runId, s.attempt);
    this.consumption = await this.bus.consume({
      durable: durableName(this.ref),
      filterSubject: experimentSubjectFilter(this.ref.namespace, this.ref.uid),
      afterStreamSeq: this.lastStreamSeq,
      handler: (m) => this.handle(m),
    });
    this.timer = setInterval(() => void this.checkpoint().catch((err: unknown) => this.log.warn({ err }, 'checkpoint failed')), checkpointMs);
    this.timer.unref();
  }

  private handle(m: DeliveredMessage): Promise<'ack' | 'dead-letter'> {
    if (m.streamSeq <= this.lastStreamSeq) return Promise.resolve('ack');
    const decoded = decodeMessage(m.data);
    if (!decoded.ok) {
      this.log.warn({ subject: m.subject, error: decoded.error }, 'undecodable message dead-lettered');
      return Promise.resolve('dead-letter');
    }
    const msg = decoded.message;
    const forged = subjectMismatch(m.subject, msg);
    if (forged !== null) {
      this.log.warn({ subject: m.subject, reason: forged }, 'message whose body does not match its subject dead-lettered');
      return Promise.resolve('dead-letter');
    }
    this.ledger.apply(msg);
    this.applyToAggregator(m.streamSeq, msg);
    traceApplied(msg, m.headers);
    this.lastStreamSeq = m.streamSeq;
    this.dirty = true;
    this.events.applied(this.ref, msg.kind);
    this.events.lag(this.ref, Math.max(0, (Date.now() - msg.sentAtMs) / 1000));
    this.events.message?.(this.ref, msg);
    if (msg.kind === 'ready' || msg.kind === 'summary' || msg.kind === 'aborted') this.events.changed(this.ref);
    return Promise.resolve('ack');
  }

  private applyToAggregator(streamSeq: number, msg: Parameters<Aggregator['apply']>[0]): void {
    try {
      const r = this.aggregator?.apply(msg, streamSeq);
      if (r !== undefined && r.outcome !== 'applied' && r.outcome !== 'duplicate') this.log.debug({ outcome: r.outcome, reason: 'reason' in r ? r.reason : undefined }, 'aggregator did not apply a message');
    } catch (err) {
      this.log.warn({ err }, 'aggregator failed on a message; its results are dropped');
      this.aggregator = null;
    }
  }

  async signalStart(runId: string, attempt: number): Promise<void> {
    const signal: StartSignal = { v: PROTOCOL_VERSION, experimentUid: this.ref.uid, runId, attempt, startAtMs: Date.now() + 500 };
    if (this.ledger.markSignalled(runId, attempt)) this.dirty = true;
    await this.bus.publishControl(startSubject(this.ref.namespace, this.ref.uid, runId), new TextEncoder().encode(JSON.stringify(signal)));
  }

  /**
   * Serialised so two checkpoints never race. A failed write leaves the state dirty, so the next
   * attempt writes it again; the chain itself never stays rejected (that would skip every later one).
   */
  checkpoint(): Promise<void> {
    const attempt = this.chain.catch(() => undefined).then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        const body = { ledger: dec.decode(this.ledger.serialize()), aggregator: this.aggregator === null ? null : dec.decode(this.aggregator.checkpoint()) };
        const record = { state: enc.encode(JSON.stringify(body)), lastStreamSeq: this.lastStreamSeq };
        await this.bus.putCheckpoint(experimentCheckpointKey(this.ref.namespace, this.ref.uid), record);
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
    this.chain = attempt;
    return attempt;
  }

  async stop(writeCheckpoint: boolean): Promise<void> {
    clearInterval(this.timer);
    await this.consumption?.stop();
    if (writeCheckpoint) await this.checkpoint();
  }
}

export class BusExperimentStreams implements ExperimentStreams {
  private readonly feeds = new Map<string, Promise<Feed>>();

  constructor(
    private readonly bus: Bus,
    private readonly events: FeedEvents,
    private readonly log: Logger,
    private readonly checkpointMs = 1000,
  ) {}

  feed(ref: ExperimentRef, newAggregator: () => Aggregator, started: StartedAttempts = []): Promise<ExperimentFeed> {
    let f = this.feeds.get(ref.uid);
    if (f === undefined) {
      const feed = new Feed(ref, this.bus, this.events, this.log.child({ experiment: `${ref.namespace}/${ref.name}` }));
      f = feed.start(this.checkpointMs, newAggregator, started).then(() => feed);
      void f.catch(() => this.feeds.delete(ref.uid));
      this.feeds.set(ref.uid, f);
    }
    return f;
  }

  async cleanup(ref: ExperimentRef): Promise<void> {
    const f = this.feeds.get(ref.uid);
    this.feeds.delete(ref.uid);
    if (f !== undefined) await (await f.catch(() => undefined))?.stop(false);
    await this.bus.deleteExperiment({ namespace: ref.namespace, experimentUid: ref.uid, durable: durableName(ref), purgeMessages: true });
  }

  async putArtifact(ref: ExperimentRef, body: unknown, files: ReadonlyMap<string, string> = new Map()): Promise<string> {
    const prefix = `${sanitizeToken(ref.namespace)}/${sanitizeToken(ref.name)}-${sanitizeToken(ref.uid)}`;
    // The derived files first: results.json, written last, marks a complete set.
    for (const [file, content] of files) await this.bus.putArtifact(`${prefix}/${file}`, enc.encode(content));
    await this.bus.putArtifact(`${prefix}/results.json`, enc.encode(JSON.stringify(body, null, 2)));
    return `nats-obj://llem-artifacts/${prefix}/results.json`;
  }

  async stopAll(): Promise<void> {
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    for (const f of feeds) await (await f.catch(() => undefined))?.stop(true);
  }
}
