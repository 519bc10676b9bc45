// The streaming aggregator: pure state, no I/O. The bus consumer feeds it decoded wire messages
// with their JetStream stream sequence; the controller reads results() and persists checkpoint()
// bytes next to lastStreamSeq so a restarted controller resumes without double counting.
import { z } from 'zod';
import { isDecodedMessage, validateWireMessage, type WireMessage } from '../api/protocol.ts';
import { CheckpointError, InvalidInputError } from '../lib/errors.ts';
import { runResult, type RunResult } from './run-results.ts';
import { RunState, type ApplyOutcome } from './run-state.ts';
import { completeness, type RunStatus } from './completeness.ts';
import {
  configResult,
  experimentResult,
  pooledSketch,
  type ConfigResult,
  type ExperimentResult,
  type RollupInput,
} from './rollup.ts';
import {
  AggregatorPlanSchema,
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  CheckpointSchema,
  READABLE_CHECKPOINT_VERSIONS,
  type AggregatorPlan,
  type CheckpointData,
  type LatencyMetric,
  type PlannedRun,
} from './state.ts';

/**
 * The one judge of a run's completeness (issue #16 item 2): the controller's run state machine and
 * status read this verdict; nothing else tracks sequence numbers.
 */
export interface RunVerdict {
  /** The newest attempt this run has data for (an older attempt's messages are stale). */
  attempt: number;
  status: RunStatus;
  reasons: string[];
  /** Replicas of `attempt` that said `ready` (the start barrier waits for all of them). */
  readyReplicas: number;
}

export interface AggregateResults {
  experimentUid: string;
  /** Highest stream sequence seen; resume the consumer after it. */
  lastStreamSeq: number;
  runs: RunResult[];
  configurations: ConfigResult[];
  experiment: ExperimentResult;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export class Aggregator {
  private readonly plan: AggregatorPlan;
  private readonly planned = new Map<string, PlannedRun>();
  private readonly runs = new Map<string, RunState>();
  /** Attempts above 0 that the runtime started, per run (attempt 0 is started by the plan). */
  private readonly started = new Map<string, Set<number>>();
  private streamSeq = 0;
  /**
   * results() is recomputed for what changed since the last call: runs touched by a message (their
   * result) and the configurations holding them. A run's result depends only on its plan and state,
   * so the cached parts are the ones a full computation would give (results() stays a pure function
   * of the applied messages); a 20,000-run experiment no longer recomputes every run's result each time.
   */
  private readonly touched = new Set<string>();
  /**
   * runVerdict() per run, until a message touches the run: the controller asks for every run in flight
   * on every pass, and a verdict (completeness, plausibility) depends only on that run's own state.
   * Shared objects: callers must not mutate them.
   */
  private readonly verdicts = new Map<string, RunVerdict | null>();
  private rollup:
    | { inputs: Map<string, RollupInput>; configs: Map<string, ConfigResult>; groups: Map<string, PlannedRun[]> }
    | undefined;

  constructor(plan: AggregatorPlan) {
    const parsed = AggregatorPlanSchema.safeParse(plan);
    if (!parsed.success) {
      throw new InvalidInputError([{ file: 'run plan', path: '', message: z.prettifyError(parsed.error) }]);
    }
    this.plan = parsed.data;
    for (const [i, r] of this.plan.runs.entries()) {
      if (this.planned.has(r.runId)) {
        throw new InvalidInputError([
          {
            file: 'run plan',
            path: `runs.${i}.runId`,
            message: `run id ${r.runId} appears twice; run ids must be unique`,
          },
        ]);
      }
      this.planned.set(r.runId, r);
    }
  }

  get lastStreamSeq(): number {
    return this.streamSeq;
  }

  /**
   * Records that the runtime started `attempt` of a run (it creates the attempt's pods or agents
   * right after). Messages of an attempt never started are refused, so a stray or hostile message
   * for attempt 99 cannot replace the run's data. Idempotent; attempt 0 needs no call.
   */
  startAttempt(runId: string, attempt: number): void {
    if (!this.planned.has(runId)) {
      const message = `run ${runId} is not in the run plan; start only planned runs`;
      throw new InvalidInputError([{ file: 'run plan', path: 'runId', message }]);
    }
    if (!Number.isSafeInteger(attempt) || attempt < 0) {
      const message = `attempt must be a non-negative integer, got ${attempt}`;
      throw new InvalidInputError([{ file: 'run plan', path: 'attempt', message }]);
    }
    if (attempt === 0) return;
    const set = this.started.get(runId) ?? new Set<number>();
    set.add(attempt);
    this.started.set(runId, set);
  }

  /** Whether `attempt` of a run was started (always true for attempt 0). */
  attemptStarted(runId: string, attempt: number): boolean {
    return attempt === 0 || this.started.get(runId)?.has(attempt) === true;
  }

  /**
   * Applies one message. `streamSeq` is its JetStream stream sequence: strictly increasing over
   * the stream, so one at or below the last seen is a redelivery and counts as a duplicate.
   * The message is validated again here (the wire schema) unless decodeMessage produced it:
   * callers may hand over objects that never went through decodeMessage, and nothing that fails
   * the schema may reach the state.
   */
  apply(message: WireMessage, streamSeq: number): ApplyOutcome {
    return this.advance(streamSeq) ?? this.applyOne(message);
  }

  /**
   * Applies the messages of one batch (ADR 0021: one bus message, one stream sequence) in order.
   * A redelivered batch is a duplicate as a whole; within a batch each message is checked as apply()
   * checks it, so a message already applied from another bus message is still a duplicate of its seq.
   */
  applyBatch(messages: readonly WireMessage[], streamSeq: number): ApplyOutcome[] {
    const stale = this.advance(streamSeq);
    if (stale !== null) return messages.map(() => stale);
    return messages.map((m) => this.applyOne(m));
  }

  /** Moves to `streamSeq`, or says why that sequence was already applied. */
  private advance(streamSeq: number): ApplyOutcome | null {
    if (!(streamSeq > this.streamSeq) || !Number.isSafeInteger(streamSeq)) {
      const reason = `stream sequence ${streamSeq} is at or below the last applied ${this.streamSeq}`;
      return { outcome: 'duplicate', reason };
    }
    this.streamSeq = streamSeq;
    return null;
  }

  private applyOne(message: WireMessage): ApplyOutcome {
    let m = message;
    if (!isDecodedMessage(message)) {
      const parsed = validateWireMessage(message);
      if (!parsed.success) {
        return this.refuse(message, `fails the wire schema: ${z.prettifyError(parsed.error).replaceAll('\n', ' ')}`);
      }
      m = parsed.data;
    }
    if (m.experimentUid !== this.plan.experimentUid) {
      const reason = `message is for experiment ${m.experimentUid}, not ${this.plan.experimentUid}`;
      return { outcome: 'rejected', reason };
    }
    const plan = this.planned.get(m.runId);
    if (plan === undefined) return { outcome: 'rejected', reason: `run ${m.runId} is not in the run plan` };
    this.touch(m.runId);
    const run = this.runFor(plan, m);
    return 'outcome' in run ? run : run.apply(m);
  }

  /** The state a message of this attempt goes to, or why it goes nowhere. */
  private runFor(plan: PlannedRun, m: WireMessage): RunState | ApplyOutcome {
    if (!this.attemptStarted(m.runId, m.attempt)) {
      const known = [0, ...[...(this.started.get(m.runId) ?? [])].sort((a, b) => a - b)].join(', ');
      const reason = `attempt ${m.attempt} of run ${m.runId} was never started (started: ${known})`;
      return { outcome: 'rejected', reason };
    }
    const run = this.runs.get(m.runId);
    if (run !== undefined && m.attempt < run.data.attempt) {
      const reason = `attempt ${m.attempt} of run ${m.runId} is older than attempt ${run.data.attempt}`;
      return { outcome: 'stale-attempt', reason };
    }
    if (run !== undefined && m.attempt === run.data.attempt) return run;
    if (run !== undefined && completeness(run, plan.replicas).status === 'complete') {
      // Complete data is final: a later attempt (a retry started in a race with the summary) never wipes it.
      const reason =
        `run ${m.runId} already has complete attempt ${run.data.attempt}; ` + `attempt ${m.attempt} is not merged`;
      return { outcome: 'rejected', reason };
    }
    // A newer attempt replaces everything the older, unfinished one contributed.
    const fresh = RunState.fresh(plan, m.attempt);
    this.runs.set(m.runId, fresh);
    return fresh;
  }

  /** A message that fails the schema still counts against its run's current attempt, when it names one. */
  private refuse(message: WireMessage, reason: string): ApplyOutcome {
    if (typeof message !== 'object' || message === null) return { outcome: 'rejected', reason };
    const raw = message as Partial<Record<string, unknown>>;
    const ours = typeof raw['runId'] === 'string' && raw['experimentUid'] === this.plan.experimentUid;
    const run = ours ? this.runs.get(raw['runId'] as string) : undefined;
    if (run !== undefined && raw['attempt'] === run.data.attempt) {
      this.touch(raw['runId'] as string);
      run.reject(`a message (seq ${String(raw['seq'])}) ${reason}`);
    }
    return { outcome: 'rejected', reason };
  }

  /** Per-run, per-configuration and per-experiment results; a pure function of the applied messages. */
  results(): AggregateResults {
    const fresh = this.rollup === undefined;
    const cache = this.rollup ?? this.newRollup();
    this.rollup = cache;
    const rollupInput = (p: PlannedRun): RollupInput => {
      const state = this.runs.get(p.runId);
      return { result: runResult(p, state), state, failurePolicy: p.failurePolicy };
    };
    const stale = new Set<string>();
    if (fresh) for (const p of this.plan.runs) cache.inputs.set(p.runId, rollupInput(p));
    for (const id of this.touched) {
      const p = this.planned.get(id);
      if (p === undefined) continue;
      cache.inputs.set(id, rollupInput(p));
      stale.add(p.configId);
    }
    this.touched.clear();
    const inputs = this.plan.runs.map((p) => cache.inputs.get(p.runId) as RollupInput);
    // Configurations in order of their first run in the plan; only those holding a changed run are rolled up again.
    const configurations = [...cache.groups.entries()].map(([id, runs]) => {
      const known = cache.configs.get(id);
      if (known !== undefined && !fresh && !stale.has(id)) return known;
      const c = configResult(
        id,
        runs.map((p) => cache.inputs.get(p.runId) as RollupInput),
      );
      cache.configs.set(id, c);
      return c;
    });
    return {
      experimentUid: this.plan.experimentUid,
      lastStreamSeq: this.streamSeq,
      runs: inputs.map((i) => i.result),
      configurations,
      experiment: experimentResult(this.plan.experimentUid, inputs, configurations),
    };
  }

  /** The cache results() keeps between calls; the grouping of runs by configuration is the plan's, fixed. */
  private newRollup(): NonNullable<Aggregator['rollup']> {
    const groups = new Map<string, PlannedRun[]>();
    for (const p of this.plan.runs) {
      const list = groups.get(p.configId);
      if (list === undefined) groups.set(p.configId, [p]);
      else list.push(p);
    }
    return { inputs: new Map(), configs: new Map(), groups };
  }

  /** A message changed this run's state: its results and verdict are computed again when next asked. */
  private touch(runId: string): void {
    this.touched.add(runId);
    this.verdicts.delete(runId);
  }

  /** The completeness verdict of one run's newest attempt; null when it has no messages yet. */
  runVerdict(runId: string): RunVerdict | null {
    const known = this.verdicts.get(runId);
    if (known !== undefined) return known;
    const plan = this.planned.get(runId);
    const run = this.runs.get(runId);
    if (plan === undefined) return null;
    if (run === undefined) {
      // No messages yet (most of a big experiment's runs, asked for on every pass): kept too.
      this.verdicts.set(runId, null);
      return null;
    }
    const c = completeness(run, plan.replicas);
    const readyReplicas = run.data.publishers.filter((p) => p.received.ready > 0).length;
    const verdict = { attempt: run.data.attempt, status: c.status, reasons: c.reasons, readyReplicas };
    this.verdicts.set(runId, verdict);
    return verdict;
  }

  /** One run's results, without computing every other run's. */
  runResult(runId: string): RunResult | null {
    const plan = this.planned.get(runId);
    return plan === undefined ? null : runResult(plan, this.runs.get(runId));
  }

  /**
   * CDF points [value, fraction] of one latency metric, pooled over the given runs (a
   * configuration's `runsIncluded`): for CDF plots, which need more than the reported percentiles.
   */
  latencyCdf(runIds: readonly string[], metric: LatencyMetric, points = 50): Array<[number, number]> {
    const merged = pooledSketch(
      runIds.map((id) => this.runs.get(id)),
      metric,
    );
    if (merged === null || merged.count === 0) return [];
    const out: Array<[number, number]> = [];
    for (let i = 0; i <= points; i += 1) {
      const q = Math.min(0.999, i / points);
      out.push([merged.quantile(q), q]);
    }
    return out;
  }

  /**
   * Quantile q (0..1) of one latency metric over one run's samples (its merged sketch): SLO targets
   * name any percentile, not only the reported ones. Null when the run has no such samples.
   */
  runQuantile(runId: string, metric: LatencyMetric, q: number): number | null {
    const sketch = this.runs.get(runId)?.sketches[metric];
    return sketch === null || sketch === undefined || sketch.count === 0 ? null : sketch.quantile(q);
  }

  /** results() as JSON: byte-identical for the same messages in the same order. */
  resultsJson(): string {
    return JSON.stringify(this.results());
  }

  /** The whole state as versioned bytes (UTF-8 JSON; sketches in their lossless binary form). */
  checkpoint(): Uint8Array {
    const data: CheckpointData = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      plan: this.plan,
      lastStreamSeq: this.streamSeq,
      started: this.plan.runs.flatMap((p) => {
        const set = this.started.get(p.runId);
        return set === undefined ? [] : [{ runId: p.runId, attempts: [...set].sort((a, b) => a - b) }];
      }),
      runs: this.plan.runs.flatMap((p) => {
        const r = this.runs.get(p.runId);
        return r === undefined ? [] : [r.toData()];
      }),
    };
    return encoder.encode(JSON.stringify(data));
  }

  static restore(bytes: Uint8Array): Aggregator {
    let raw: unknown;
    try {
      raw = JSON.parse(decoder.decode(bytes));
    } catch (err) {
      throw new CheckpointError(`aggregator checkpoint is not UTF-8 JSON: ${(err as Error).message}`, { cause: err });
    }
    const version = (raw as { version?: unknown } | null)?.version;
    if (typeof version !== 'number' || !READABLE_CHECKPOINT_VERSIONS.includes(version)) {
      const readable = READABLE_CHECKPOINT_VERSIONS.join(', ');
      throw new CheckpointError(
        `aggregator checkpoint version ${String(version)} is not supported (this build reads ${readable})`,
      );
    }
    const parsed = CheckpointSchema.safeParse(raw);
    if (!parsed.success)
      throw new CheckpointError(`aggregator checkpoint is malformed: ${z.prettifyError(parsed.error)}`);
    const agg = new Aggregator(parsed.data.plan);
    agg.streamSeq = parsed.data.lastStreamSeq;
    for (const s of parsed.data.started) {
      if (!agg.planned.has(s.runId)) {
        throw new CheckpointError(`aggregator checkpoint starts run ${s.runId}, which its plan lacks`);
      }
      for (const a of s.attempts) agg.startAttempt(s.runId, a);
    }
    for (const data of parsed.data.runs) {
      const plan = agg.planned.get(data.runId);
      if (plan === undefined)
        throw new CheckpointError(`aggregator checkpoint holds run ${data.runId}, which its plan lacks`);
      // Data of an attempt was accepted, so that attempt was started (version 1 did not record it).
      agg.startAttempt(data.runId, data.attempt);
      try {
        agg.runs.set(data.runId, RunState.fromData(plan, data));
      } catch (err) {
        throw new CheckpointError(
          `aggregator checkpoint: run ${data.runId} has an undecodable sketch: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    return agg;
  }
}
