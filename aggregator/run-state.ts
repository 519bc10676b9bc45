// One run's state for its current attempt: publishers (one per replica) with sequence tracking,
// energy segments per GPU, and the run's merged latency sketches.
import type { SketchMessage, SummaryMessage, WireMessage } from '../api/protocol.ts';
import { LogHistogram, sketchScratch, type Buckets, type DecodedSketch } from '../lib/sketch/index.ts';
import { applyTelemetry } from './energy.ts';
import {
  addProblem,
  LATENCY_METRICS,
  newPublisher,
  type LatencyMetric,
  type PlannedRun,
  type PublisherState,
  type RunStateData,
} from './state.ts';
import { decodeWireSketch } from './wire-sketch.ts';

/** Distinct error classes kept per run; further ones are counted under OTHER_ERROR_CLASS. */
export const MAX_ERROR_CLASSES = 256;
export const OTHER_ERROR_CLASS = '(other)';

export type ApplyOutcome =
  | { outcome: 'applied' }
  | { outcome: 'duplicate'; reason: string }
  | { outcome: 'stale-attempt'; reason: string }
  | { outcome: 'rejected'; reason: string };

type Sketches = Record<LatencyMetric, LogHistogram | null>;

/** One slice's sketches, decoded into arrays reused by every slice (applying is synchronous). */
const SCRATCH: Buckets[] = LATENCY_METRICS.map(() => sketchScratch());
const DECODED: Array<DecodedSketch | null> = LATENCY_METRICS.map(() => null);

function emptySketches(): Sketches {
  return { ttftMs: null, itlMs: null, e2eMs: null, tpotMs: null };
}

export class RunState {
  readonly sketches: Sketches;
  /** Error class -> failed requests. A Map: the keys are agent input (see RunStateSchema). */
  readonly errorClasses: Map<string, number>;

  private constructor(
    readonly plan: PlannedRun,
    readonly data: RunStateData,
    sketches: Sketches,
  ) {
    this.sketches = sketches;
    this.errorClasses = new Map(data.errorClasses);
    data.errorClasses = [];
  }

  static fresh(plan: PlannedRun, attempt: number): RunState {
    const data: RunStateData = {
      runId: plan.runId,
      attempt,
      simulated: false,
      publishers: [],
      gpus: [],
      errorClasses: [],
      problems: [],
      sketches: { ttftMs: null, itlMs: null, e2eMs: null, tpotMs: null },
    };
    return new RunState(plan, data, emptySketches());
  }

  static fromData(plan: PlannedRun, data: RunStateData): RunState {
    const sketches = emptySketches();
    for (const k of LATENCY_METRICS) {
      const b64 = data.sketches[k];
      sketches[k] = b64 === null ? null : LogHistogram.deserialize(Buffer.from(b64, 'base64'));
    }
    return new RunState(
      plan,
      { ...data, sketches: { ttftMs: null, itlMs: null, e2eMs: null, tpotMs: null } },
      sketches,
    );
  }

  toData(): RunStateData {
    const out = { ttftMs: null, itlMs: null, e2eMs: null, tpotMs: null } as Record<LatencyMetric, string | null>;
    for (const k of LATENCY_METRICS) {
      const s = this.sketches[k];
      out[k] = s === null ? null : Buffer.from(s.serialize()).toString('base64');
    }
    const classes = [...this.errorClasses.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { ...this.data, errorClasses: classes, sketches: out };
  }

  /** Rejected input that belongs to no publisher of this run (capped). */
  reject(problem: string): void {
    addProblem(this.data.problems, problem);
  }

  publisher(replica: number): PublisherState | undefined {
    return this.data.publishers.find((p) => p.replica === replica);
  }

  /** Applies a message of this run's current attempt, at most once per (replica, seq). */
  apply(m: WireMessage): ApplyOutcome {
    if (m.replica >= this.plan.replicas) {
      const reason = `replica ${m.replica} is outside the ${this.plan.replicas} planned for run ${m.runId}`;
      this.reject(`seq ${m.seq} (${m.kind}): ${reason}`);
      return { outcome: 'rejected', reason };
    }
    const pub = this.publisherFor(m.replica);
    if (m.seq <= pub.contiguousUpTo || pub.ahead.includes(m.seq)) {
      return {
        outcome: 'duplicate',
        reason: `run ${m.runId} attempt ${m.attempt} replica ${m.replica} seq ${m.seq} already applied`,
      };
    }
    markSeq(pub, m.seq);
    pub.received[m.kind] += 1;
    if (m.simulated) this.data.simulated = true;
    const problem = this.applyBody(pub, m);
    if (problem !== null) {
      addProblem(pub.problems, `seq ${m.seq} (${m.kind}): ${problem}`);
      return { outcome: 'rejected', reason: problem };
    }
    return { outcome: 'applied' };
  }

  private publisherFor(replica: number): PublisherState {
    let pub = this.publisher(replica);
    if (pub === undefined) {
      pub = newPublisher(replica);
      this.data.publishers.push(pub);
      this.data.publishers.sort((a, b) => a.replica - b.replica);
    }
    return pub;
  }

  /** Returns a problem description when the message's content could not be used. */
  private applyBody(pub: PublisherState, m: WireMessage): string | null {
    switch (m.kind) {
      case 'hello':
        pub.gpuUuids = m.environment.gpus.map((g) => g.uuid);
        pub.powerLimitsW = m.environment.gpus.map((g) => g.powerLimitWatts);
        pub.configHash = m.environment.configHash;
        return null;
      case 'ready':
        return null;
      case 'sketch':
        return this.applySketch(pub, m);
      case 'telemetry':
        return applyTelemetry(this.data.gpus, m);
      case 'summary':
        pub.summary = summaryState(m);
        return null;
      case 'aborted':
        pub.aborted = { phase: m.phase, reason: m.reason };
        return null;
    }
  }

  private applySketch(pub: PublisherState, m: SketchMessage): string | null {
    // Decode everything first so a bad payload leaves the run's sketches untouched. Decoding checks
    // every field against the buckets and the protocol's fixed resolution (lib/sketch, ADR 0012):
    // a refused sketch is a problem of this publisher, so the run cannot be complete. The sketches
    // are decoded into arrays reused from slice to slice and merged from there (ADR 0027).
    const decoded = DECODED;
    for (const [i, k] of LATENCY_METRICS.entries()) {
      decoded[i] = null;
      const b64 = m.sketches[k];
      if (b64 === undefined) continue;
      const accepted = decodeWireSketch(b64, SCRATCH[i] as Buckets);
      if (accepted.decoded === null) return `sketch ${k} ${accepted.problem}`;
      decoded[i] = accepted.decoded;
    }
    for (const [i, k] of LATENCY_METRICS.entries()) {
      const d = decoded[i];
      if (d === null || d === undefined) continue;
      const target = (this.sketches[k] ??= new LogHistogram());
      target.mergeDecoded(d);
      decoded[i] = null;
    }
    pub.requestsOk += m.requestsOk;
    pub.requestsFailed += m.requestsFailed;
    pub.inputTokens += m.inputTokens;
    pub.outputTokens += m.outputTokens;
    if (m.requestsSloMet !== undefined) pub.requestsSloMet = (pub.requestsSloMet ?? 0) + m.requestsSloMet;
    for (const [cls, n] of Object.entries(m.errorClasses)) {
      const key = this.errorClasses.has(cls) || this.errorClasses.size < MAX_ERROR_CLASSES ? cls : OTHER_ERROR_CLASS;
      this.errorClasses.set(key, (this.errorClasses.get(key) ?? 0) + n);
    }
    return null;
  }
}

function markSeq(pub: PublisherState, seq: number): void {
  if (seq === pub.contiguousUpTo + 1) {
    pub.contiguousUpTo = seq;
    while (pub.ahead.length > 0 && pub.ahead[0] === pub.contiguousUpTo + 1) {
      pub.contiguousUpTo += 1;
      pub.ahead.shift();
    }
    return;
  }
  pub.ahead.push(seq);
  pub.ahead.sort((a, b) => a - b);
}

function summaryState(m: SummaryMessage): PublisherState['summary'] {
  return {
    seq: m.seq,
    messagesBefore: m.messagesBefore,
    countsByKind: { ...m.countsByKind },
    requestsOk: m.requestsOk,
    requestsFailed: m.requestsFailed,
    inputTokens: m.inputTokens,
    outputTokens: m.outputTokens,
    baselineStartMs: m.baselineStartMs,
    baselineEndMs: m.baselineEndMs,
    windowStartMs: m.windowStartMs,
    windowEndMs: m.windowEndMs,
    warnings: [...m.warnings],
    ...(m.backendMetrics === undefined ? {} : { backendMetrics: m.backendMetrics }),
    ...(m.client === undefined ? {} : { client: m.client }),
    ...(m.gpuSettings === undefined ? {} : { gpuSettings: m.gpuSettings }),
  };
}
