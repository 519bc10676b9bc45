// Consuming each experiment's stream: one durable consumer per experiment, messages applied in stream
// order to the Aggregator (the one judge of completeness), state checkpointed (with the last applied
// stream sequence) so a restarted controller resumes where it stopped and never counts a message twice.
// Also the run table (ADR 0014), the start barrier, and release: a finished experiment's feed is
// stopped and dropped, so memory follows the experiments in flight (results stay in the artifact).
import { traceApplied } from '../lib/telemetry/index.ts';
import { decodeMessages, startSubject, PROTOCOL_VERSION, type StartSignal, type WireMessage } from '../api/protocol.ts';
import { experimentSubjectFilter } from '../api/protocol.ts';
import { sanitizeToken } from '../api/names.ts';
import type { Bus, Consumption, DeliveredMessage } from '../lib/bus/types.ts';
import { experimentCheckpointKey, subjectMismatch } from '../lib/bus/subjects.ts';
import type { Logger } from '../lib/log.ts';
import type { ExperimentRef } from './pods.ts';
import { Aggregator, type AggregateResults, type RunResult, type RunVerdict } from '../aggregator/index.ts';
import type { PlannedRun } from '../api/matrix.ts';
import type { RunSummary } from '../api/status.ts';
import { RunTable } from './run-table.ts';
import type { RunJudge } from './runs.ts';

/** Why the Aggregator's figures cannot be fully trusted: surfaced as Degraded, never swallowed. */
export interface AggregatorFailure {
  reason: 'AggregatorFailed';
  message: string;
}

/**
 * A full rollup or checkpoint of a 20,000-run experiment takes seconds of CPU: while runs are in
 * flight each is redone at most once per max(floor, COST_SHARE x its last duration), so neither takes
 * more than ~5% of the controller's time whatever the experiment's size. The final figures are
 * always computed fresh, and a checkpoint's age only changes how much of the stream a restart re-reads.
 */
const COST_SHARE = 20;
/** After a restart, resumed runs wait at most this long for the consumer to read what the stream held. */
const CATCH_UP_MAX_MS = 60_000;
const RESULTS_REFRESH_MS = 1000;

function spacing(floorMs: number, lastMs: number): number {
  return Math.max(floorMs, COST_SHARE * lastMs);
}

export interface FeedEvents {
  /** Something changed for this experiment: requeue it. */
  changed(ref: ExperimentRef): void;
  applied(ref: ExperimentRef, kind: string): void;
  lag(ref: ExperimentRef, seconds: number): void;
  /** Every applied message (live metrics such as run power); optional. */
  message?(ref: ExperimentRef, msg: WireMessage): void;
}

export interface ExperimentFeed {
  /** The per-run ledger (phase, attempt), outside status. */
  readonly runs: RunTable;
  /** The Aggregator's verdicts: the one judge of completeness. */
  readonly judge: RunJudge;
  /** Runs the table had Running when this feed loaded (after a restart): their pods may never have been created. */
  readonly resumed: Set<string>;
  /** The Aggregator's results; null when it is unavailable (then `failure()` says why). `fresh` skips the cache. */
  aggregate(fresh?: boolean): AggregateResults | null;
  /** The first Aggregator failure, if any: status shows it as Degraded. */
  failure(): AggregatorFailure | null;
  /** Publishes the start signal for an attempt whose replicas are all ready. Resends are harmless. */
  signalStart(runId: string, attempt: number): Promise<void>;
  /** Latency CDFs of included runs, for the report; null when the Aggregator is unavailable. */
  cdfSource(): Pick<Aggregator, 'latencyCdf' | 'runQuantile'> | null;
  /** One run's result (adaptive cycles read finished runs' values); null when the Aggregator is unavailable. */
  runResult(runId: string): RunResult | null;
  /** Tells the Aggregator a run attempt was started (before its pods exist): its messages are then accepted. */
  startAttempt(runId: string, attempt: number): void;
  /**
   * The consumer has applied every message the stream held when this feed loaded. Until then a run the
   * table has Running and whose pods are gone may have finished (its data not read yet): not judged.
   */
  caughtUp(): boolean;
}

/** What the reconciler needs from the stream side. */
export interface FeedPlan {
  planned: readonly PlannedRun[];
  /** An older controller's status.runs, used only where the run table has nothing. */
  seed: readonly RunSummary[];
  /** Called once, when the feed has no checkpoint. */
  newAggregator: () => Aggregator;
}

export interface ExperimentStreams {
  /** The experiment's feed, loaded (checkpoint + run table) on first use. */
  feed(ref: ExperimentRef, plan: FeedPlan): Promise<ExperimentFeed>;
  /** A finished experiment: stop consuming, write the last checkpoint, drop it from memory. */
  release(ref: ExperimentRef): Promise<void>;
  /** How many feeds are in memory (metrics, tests). */
  active(): number;
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
  aggregator: Aggregator | null = null;
  runs!: RunTable;
  readonly resumed = new Set<string>();
  lastStreamSeq = 0;
  dirty = false;
  consumption: Consumption | undefined;
  private failed: AggregatorFailure | null = null;
  /** Attempts whose data the Aggregator failed on: runId -> attempt and why. */
  private readonly tainted = new Map<string, { attempt: number; message: string }>();
  private cached: { seq: number; atMs: number; tookMs: number; results: AggregateResults | null } | undefined;
  private lastCheckpoint = { atMs: 0, tookMs: 0 };
  private checkpointMs = 1000;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private readUp = false;

  constructor(
    readonly ref: ExperimentRef,
    private readonly bus: Bus,
    private readonly events: FeedEvents,
    private readonly log: Logger,
  ) {}

  readonly judge: RunJudge = {
    verdict: (runId: string): RunVerdict | null => this.aggregator?.runVerdict(runId) ?? null,
    failure: (runId: string, attempt: number): string | undefined => {
      const t = this.tainted.get(runId);
      if (t !== undefined && t.attempt === attempt) return t.message;
      return this.aggregator === null ? (this.failed?.message ?? 'the aggregator is unavailable') : undefined;
    },
  };

  caughtUp(): boolean {
    return this.readUp;
  }

  cdfSource(): Pick<Aggregator, 'latencyCdf' | 'runQuantile'> | null {
    return this.aggregator;
  }

  runResult(runId: string): RunResult | null {
    return this.aggregator?.runResult(runId) ?? null;
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

  failure(): AggregatorFailure | null {
    return this.failed;
  }

  private fail(message: string, err: unknown): void {
    this.log.error({ err }, message);
    this.failed ??= {
      reason: 'AggregatorFailed',
      message: `${message}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 1000),
    };
    this.events.changed(this.ref);
  }

  aggregate(fresh = false): AggregateResults | null {
    const seq = this.lastStreamSeq;
    const now = Date.now();
    const c = this.cached;
    if (c !== undefined && (c.seq === seq || (!fresh && now - c.atMs < spacing(RESULTS_REFRESH_MS, c.tookMs))))
      return c.results;
    let results: AggregateResults | null = null;
    const t0 = performance.now();
    try {
      results = this.aggregator?.results() ?? null;
    } catch (err) {
      this.fail('the aggregator could not compute results', err);
    }
    this.cached = { seq, atMs: now, tookMs: performance.now() - t0, results };
    return results;
  }

  /**
   * An unreadable checkpoint is an Aggregator failure (Degraded), not a reconcile error retried
   * forever: the Aggregator is rebuilt by re-reading the experiment's stream from its first message.
   */
  private tryRestore(state: Uint8Array): boolean {
    try {
      this.restore(state);
      return true;
    } catch (err) {
      this.tainted.clear();
      this.fail('the aggregator checkpoint could not be read; rebuilding from the whole stream', err);
      return false;
    }
  }

  private restore(state: Uint8Array): void {
    const body = JSON.parse(dec.decode(state)) as {
      aggregator: string | null;
      tainted?: [string, { attempt: number; message: string }][];
    };
    if (body.aggregator === null) throw new Error('checkpoint holds no aggregator state');
    this.aggregator = Aggregator.restore(enc.encode(body.aggregator));
    for (const [k, v] of body.tainted ?? []) this.tainted.set(k, v);
  }

  async start(checkpointMs: number, plan: FeedPlan): Promise<void> {
    this.checkpointMs = checkpointMs;
    const key = experimentCheckpointKey(this.ref.namespace, this.ref.uid);
    const [cp, runs] = await Promise.all([
      this.bus.getCheckpoint(key),
      RunTable.load(this.bus, key, plan.planned, plan.seed),
    ]);
    this.runs = runs;
    for (const r of runs.list()) if (r.phase === 'Running') this.resumed.add(r.id);
    if (cp !== null && this.tryRestore(cp.state)) {
      this.lastStreamSeq = cp.lastStreamSeq;
      this.log.info({ lastStreamSeq: cp.lastStreamSeq }, 'resuming from checkpoint');
    } else {
      try {
        this.aggregator = plan.newAggregator();
      } catch (err) {
        this.fail('the aggregator could not be created', err);
      }
    }
    // Every attempt the run table recorded (write-ahead, before its pods) is declared before consumption
    // starts, so a checkpoint older than a retry's start does not make the retry's messages look unstarted.
    for (const r of runs.list()) for (let a = 1; a <= r.attempt; a++) this.startAttempt(r.id, a);
    this.consumption = await this.bus.consume({
      durable: durableName(this.ref),
      filterSubject: experimentSubjectFilter(this.ref.namespace, this.ref.uid),
      afterStreamSeq: this.lastStreamSeq,
      handler: (m) => this.handle(m),
    });
    // Nothing to catch up with when no run was in flight (a new experiment): judged at once.
    // A stream that never goes quiet (agents publishing) stops the wait after CATCH_UP_MAX_MS.
    this.readUp = this.resumed.size === 0;
    if (!this.readUp) {
      const up = (): void => {
        if (this.readUp) return;
        this.readUp = true;
        this.events.changed(this.ref);
      };
      void this.consumption.idle().then(up, () => undefined);
      setTimeout(up, CATCH_UP_MAX_MS).unref();
    }
    this.timer = setInterval(() => {
      if (Date.now() - this.lastCheckpoint.atMs < spacing(this.checkpointMs, this.lastCheckpoint.tookMs)) return;
      void this.checkpoint().catch((err: unknown) => this.log.warn({ err }, 'checkpoint failed'));
    }, checkpointMs);
    this.timer.unref();
  }

  private handle(m: DeliveredMessage): Promise<'ack' | 'dead-letter'> {
    if (m.streamSeq <= this.lastStreamSeq) return Promise.resolve('ack');
    const decoded = decodeMessages(m.data);
    if (!decoded.ok) {
      this.log.warn({ subject: m.subject, error: decoded.error }, 'undecodable message dead-lettered');
      return Promise.resolve('dead-letter');
    }
    const msgs = decoded.messages;
    // Every member of a batch is checked: one forged member dead-letters the whole bus message.
    for (const msg of msgs) {
      const forged = subjectMismatch(m.subject, msg, decoded.batch);
      if (forged === null) continue;
      this.log.warn(
        { subject: m.subject, reason: forged },
        'message whose body does not match its subject dead-lettered',
      );
      return Promise.resolve('dead-letter');
    }
    this.applyToAggregator(m.streamSeq, msgs);
    this.lastStreamSeq = m.streamSeq;
    this.dirty = true;
    let changed = false;
    for (const msg of msgs) {
      traceApplied(msg, m.headers);
      this.events.applied(this.ref, msg.kind);
      this.events.lag(this.ref, Math.max(0, (Date.now() - msg.sentAtMs) / 1000));
      this.events.message?.(this.ref, msg);
      changed ||= msg.kind === 'ready' || msg.kind === 'summary' || msg.kind === 'aborted';
    }
    if (changed) this.events.changed(this.ref);
    return Promise.resolve('ack');
  }

  /** One bus message: a wire message or a batch, all of one publisher (the subject check above). */
  private applyToAggregator(streamSeq: number, msgs: WireMessage[]): void {
    const msg = msgs[0] as WireMessage;
    try {
      for (const r of this.aggregator?.applyBatch(msgs, streamSeq) ?? [])
        if (r.outcome !== 'applied' && r.outcome !== 'duplicate')
          this.log.debug(
            { outcome: r.outcome, reason: 'reason' in r ? r.reason : undefined },
            'aggregator did not apply a message',
          );
    } catch (err) {
      // The run's state may be half-updated: that attempt can no longer succeed (it is retried and
      // the next attempt replaces its data); the experiment says Degraded and why.
      this.tainted.set(msg.runId, {
        attempt: msg.attempt,
        message:
          `the aggregator failed on run ${msg.runId} attempt ${msg.attempt}: ${err instanceof Error ? err.message : String(err)}`.slice(
            0,
            900,
          ),
      });
      this.fail(`the aggregator failed on a ${msg.kind} message of run ${msg.runId}`, err);
    }
  }

  async signalStart(runId: string, attempt: number): Promise<void> {
    const signal: StartSignal = {
      v: PROTOCOL_VERSION,
      experimentUid: this.ref.uid,
      runId,
      attempt,
      startAtMs: Date.now() + 500,
    };
    await this.bus.publishControl(
      startSubject(this.ref.namespace, this.ref.uid, runId),
      new TextEncoder().encode(JSON.stringify(signal)),
    );
  }

  /**
   * Serialised so two checkpoints never race. A failed write leaves the state dirty, so the next
   * attempt writes it again; the chain itself never stays rejected (that would skip every later one).
   */
  checkpoint(): Promise<void> {
    const attempt = this.chain
      .catch(() => undefined)
      .then(async () => {
        if (!this.dirty || this.aggregator === null) return;
        this.dirty = false;
        const t0 = performance.now();
        try {
          const body = { aggregator: dec.decode(this.aggregator.checkpoint()), tainted: [...this.tainted.entries()] };
          const record = { state: enc.encode(JSON.stringify(body)), lastStreamSeq: this.lastStreamSeq };
          await this.bus.putCheckpoint(experimentCheckpointKey(this.ref.namespace, this.ref.uid), record);
          this.lastCheckpoint = { atMs: Date.now(), tookMs: performance.now() - t0 };
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
    if (writeCheckpoint) {
      await this.checkpoint();
      await this.runs.persist();
    }
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

  feed(ref: ExperimentRef, plan: FeedPlan): Promise<ExperimentFeed> {
    let f = this.feeds.get(ref.uid);
    if (f === undefined) {
      const feed = new Feed(ref, this.bus, this.events, this.log.child({ experiment: `${ref.namespace}/${ref.name}` }));
      f = feed.start(this.checkpointMs, plan).then(() => feed);
      void f.catch(() => this.feeds.delete(ref.uid));
      this.feeds.set(ref.uid, f);
    }
    return f;
  }

  async release(ref: ExperimentRef): Promise<void> {
    const f = this.feeds.get(ref.uid);
    this.feeds.delete(ref.uid);
    const feed = f === undefined ? undefined : await f.catch(() => undefined);
    // No final Aggregator checkpoint: a released experiment never loads its feed again (its results are
    // the artifact), and serialising 20,000 runs' state kept hundreds of MB alive for seconds to
    // minutes after release. A controller that dies before the released status lands replays the
    // stream from the last periodic checkpoint, which gives the same results. The run table is kept.
    await feed?.stop(false);
    await feed?.runs.persist();
  }

  active(): number {
    return this.feeds.size;
  }

  async cleanup(ref: ExperimentRef): Promise<void> {
    const f = this.feeds.get(ref.uid);
    this.feeds.delete(ref.uid);
    if (f !== undefined) await (await f.catch(() => undefined))?.stop(false);
    await this.bus.deleteExperiment({
      namespace: ref.namespace,
      experimentUid: ref.uid,
      durable: durableName(ref),
      purgeMessages: true,
    });
  }

  async putArtifact(
    ref: ExperimentRef,
    body: unknown,
    files: ReadonlyMap<string, string> = new Map(),
  ): Promise<string> {
    const prefix = `${sanitizeToken(ref.namespace)}/${sanitizeToken(ref.name)}-${sanitizeToken(ref.uid)}`;
    // The derived files first: results.json, written last, marks a complete set.
    await Promise.all(
      [...files].map(([file, content]) => this.bus.putArtifact(`${prefix}/${file}`, enc.encode(content))),
    );
    await this.bus.putArtifact(`${prefix}/results.json`, enc.encode(JSON.stringify(body, null, 2)));
    return `nats-obj://llem-artifacts/${prefix}/results.json`;
  }

  async stopAll(): Promise<void> {
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    for (const f of feeds) await (await f.catch(() => undefined))?.stop(true);
  }
}
