// The level-based reconcile of one EnergyExperiment, keyed by namespace/name: read the cache,
// compute the desired pods and status, converge. A second reconcile with nothing new writes nothing.
// Return values: a thrown error = rate-limited retry; TerminalError = no retry; requeueAfterMs = timer.
import type { V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment, type SpecIssue } from '../api/validation.ts';
import type { RunMatrix } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import { REASONS } from '../api/conditions.ts';
import type { EnergyExperimentStatus } from '../api/status.ts';
import { InvalidInputError } from '../lib/errors.ts';
import { canonicalJson } from '../api/paths.ts';
import type { Logger } from '../lib/log.ts';
import { context, experimentContext, inSpan } from '../lib/telemetry/index.ts';
import { AttemptSpans } from './attempt-spans.ts';
import { FINALIZER, LABEL_EXPERIMENT_UID, type ExperimentObject, type KubeWriter } from './kube.ts';
import type { ObjectStore } from './informer.ts';
import { busCredentialSecret } from './bus-credentials.ts';
import { gpuControlIssues } from './gpu-control.ts';
import { buildPod, labelValue, podName, type ExperimentRef, type PodBuilderOptions } from './pods.ts';
import type { AggregatorFailure, ExperimentFeed, ExperimentStreams, FeedPlan } from './results.ts';
import { experimentStatus, isReleased } from './status-view.ts';
import { BackgroundWrites } from './status-writer.ts';
import { hasLadder, newAggregator } from '../aggregator/index.ts';
import { artifactAnalysis, ladderGateOf } from './ladder-gate.ts';
import type { ExperimentAnalysis } from '../aggregator/index.ts';
import { measurementWeaknesses, statusMetrics, withAggregatorRunMetrics } from './aggregate-view.ts';
import { configLabelsOf, resultsFiles } from '../report/files.ts';
import type { AdaptiveOutcome, AggregateResults } from '../aggregator/index.ts';
import { stepRuns, type RunEvent, type RunPlanOutput } from './runs.ts';
import { waitingForNode } from './pod-waiting.ts';
import { adaptiveAdmission, adaptiveDecisions } from './adaptive.ts';
import {
  applyConditions,
  bestConfiguration,
  boundConfigurations,
  boundRuns,
  configurationResults,
  decidePhase,
  progressOf,
  statusChanged,
} from './status.ts';
import type { ControllerMetrics } from './metrics.ts';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface ReconcilerDeps {
  experiments: ObjectStore<ExperimentObject>;
  pods: ObjectStore<V1Pod>;
  writer: KubeWriter;
  streams: ExperimentStreams;
  podOptions: PodBuilderOptions;
  log: Logger;
  metrics?: ControllerMetrics;
  retryBaseMs?: number;
  now?: () => Date;
  /** The pod renderer (tests inject a failing one: validation should make that impossible). */
  renderPod?: typeof buildPod;
  /** A background status patch failed: reconcile this key (namespace/name) again, rate-limited. */
  requeue?: (key: string) => void;
}

/**
 * How long a created pod counts as existing before the cache shows it: client-go's ExpectationsTimeout.
 * A 20,000-run experiment on a loaded host had runs fail PodLost at 60 s (a cache lagging that long is
 * one way to get them; not proven to be the only one).
 */
const EXPECTATION_TTL_MS = 5 * 60_000;
/** How long a reconcile waits for an experiment's feed to load before returning (it is requeued when loaded). */
const FEED_WAIT_MS = 50;
/** How long a reconcile waits for a finished experiment's artifact before returning (requeued when stored). */
const ARTIFACT_WAIT_MS = 50;
/**
 * Pods created per reconcile at most: a pass does a bounded number of API calls whatever
 * placement.parallelism is, and asks to run again at once while more runs are due to start.
 */
export const MAX_POD_CREATES_PER_PASS = 20;

/**
 * A token bucket per experiment, like client-go's EventSourceObjectSpamFilter: a burst of
 * EVENT_BURST, then one event per EVENT_REFILL_MS. Without it 200 runs finishing in one pass meant
 * 200 Event creates (each an API write) per pass.
 */
export const EVENT_BURST = 25;
const EVENT_REFILL_MS = 5000;

export class EventBudget {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  take(key: string, nowMs: number): boolean {
    const b = this.buckets.get(key) ?? { tokens: EVENT_BURST, atMs: nowMs };
    b.tokens = Math.min(EVENT_BURST, b.tokens + (nowMs - b.atMs) / EVENT_REFILL_MS);
    b.atMs = nowMs;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }
}

/** What a pass's status is made of, besides the run table. */
interface PassInputs {
  generation: number;
  results: AggregateResults | null;
  failure: AggregatorFailure | null;
  /** The status the pass started from (or the one it wrote). */
  status: EnergyExperimentStatus;
  /** Why a running attempt's pod waits for a node, if it does. */
  waiting: string | undefined;
}

/** The phase and conditions this pass implies (runs, the Aggregator's weaknesses and failure). */
function decideFrom(
  spec: EnergyExperimentSpec,
  runs: RunPlanOutput['runs'],
  simulated: boolean,
  aggregate: AggregateResults | null,
  found: { failure: AggregatorFailure | null; waiting: string | undefined },
): ReturnType<typeof decidePhase> {
  const { failure, waiting } = found;
  return decidePhase(runs, {
    suspended: spec.policy.suspend,
    strict: spec.policy.failurePolicy === 'strict',
    simulated,
    retrying: retryingRuns(runs),
    ...measurementWeaknesses(aggregate),
    ...(failure !== null ? { aggregatorFailure: failure.message } : {}),
    ...(waiting !== undefined ? { waiting } : {}),
  });
}

/** Runs between attempts after a failure (the Degraded Retrying condition counts them). */
function retryingRuns(runs: RunPlanOutput['runs']): number {
  let n = 0;
  for (const r of runs)
    if (r.attempt > 0 && (r.phase === 'Pending' || r.phase === 'Running') && r.message !== undefined) n += 1;
  return n;
}

function samePass(last: PassInputs | undefined, now: PassInputs): boolean {
  return (
    last !== undefined &&
    last.status === now.status &&
    last.generation === now.generation &&
    last.results === now.results &&
    last.failure === now.failure &&
    last.waiting === now.waiting
  );
}

interface ArtifactWrite {
  promise: Promise<{ uri: string; kind: 'objectStore' }>;
  done: { uri: string; kind: 'objectStore' } | undefined;
}

interface RenderedPod {
  pod: V1Pod;
  runId: string;
}

interface ExperimentContext {
  obj: ExperimentObject;
  ref: ExperimentRef;
  spec: EnergyExperimentSpec;
  matrix: RunMatrix;
  feed: ExperimentFeed;
  /** Valid, but weaker than intended (e.g. concurrency above requests): shown in the Validated condition. */
  warnings: SpecIssue[];
}

function validMessage(matrix: RunMatrix, warnings: SpecIssue[]): string {
  const head = `The spec is valid: ${matrix.configurations.length} configuration(s), ${matrix.runs.length} run(s).`;
  if (warnings.length === 0) return head;
  return `${head} Warnings: ${warnings.map((w) => `${w.path}: ${w.message}`).join('; ')}`.slice(0, 4000);
}

/** startTime once any run started, completionTime once finished: each set once, then kept. */
function statusTimes(
  runs: RunPlanOutput['runs'],
  finished: boolean,
  prev: EnergyExperimentStatus,
  nowIso: string,
): { started?: string; completionTime?: string } {
  const started = runs.some((r) => r.startTime !== undefined) ? (prev.startTime ?? nowIso) : undefined;
  const completionTime = finished ? (prev.completionTime ?? nowIso) : undefined;
  return { ...(started !== undefined ? { started } : {}), ...(completionTime !== undefined ? { completionTime } : {}) };
}

/** The object's spec as the planner sees it (the same validation `llem validate` runs). */
function validateObject(
  obj: ExperimentObject,
  name: string,
  namespace: string,
): ReturnType<typeof validateEnergyExperiment> {
  const labels = obj.metadata?.labels;
  return validateEnergyExperiment({
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: { name, namespace, ...(labels !== undefined ? { labels } : {}) },
    spec: obj.spec,
  });
}

export class Reconciler {
  /** Status patches and pod deletions, sent in the background (status-writer.ts). */
  readonly background: BackgroundWrites;
  private readonly validations = new Map<string, { key: string; result: ReturnType<typeof validateObject> }>();
  /** The status last read from the cache, by uid: parsed once per resourceVersion, not per reconcile. */
  private readonly parsed = new Map<string, { rv: string; status: EnergyExperimentStatus }>();
  /** What the last pass built its status from, by uid: an unchanged pass builds nothing. */
  private readonly lastPass = new Map<string, PassInputs>();
  /** Events of passes whose status waited for the artifact, by uid: recorded with the status that shows them. */
  private readonly deferredEvents = new Map<string, RunEvent[]>();
  /** Events per experiment, rate-limited like client-go's spam filter (status and the artifact keep every run). */
  private readonly eventBudget = new EventBudget();
  /** Artifacts being written (or written) for finished experiments, by uid. */
  private readonly artifacts = new Map<string, ArtifactWrite>();
  /** Pods we created and the cache may not show yet: name -> created ms. */
  private readonly expectations = new Map<string, number>();

  /** `<uid>/<runId>` of runs whose credentials Secret exists (created or found). */
  private readonly busSecrets = new Set<string>();
  /** Open `llem.run.attempt` spans: pods created -> the attempt's result applied. */
  readonly attempts = new AttemptSpans();

  constructor(private readonly deps: ReconcilerDeps) {
    this.background = new BackgroundWrites(deps.writer, deps.log, (key) => deps.requeue?.(key));
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = '', name = ''] = key.split('/');
    const obj = this.deps.experiments.get(namespace, name);
    if (obj === undefined) return {};
    const uid = obj.metadata?.uid ?? '';
    const ref: ExperimentRef = { name, namespace, uid };
    // One span per reconcile in the experiment's trace; pods created here carry it as the agents' parent.
    const attrs = { 'llem.experiment.name': name, 'k8s.namespace.name': namespace, 'llem.experiment.uid': uid };
    return inSpan(
      'llem.reconcile',
      attrs,
      async (span) => {
        const result = await this.reconcileObject(obj, ref);
        span.setAttribute('llem.reconcile.outcome', result.requeueAfterMs === undefined ? 'done' : 'requeue');
        return result;
      },
      experimentContext(uid),
    );
  }

  private async reconcileObject(obj: ExperimentObject, ref: ExperimentRef): Promise<ReconcileResult> {
    const { name, namespace } = ref;
    if (obj.metadata?.deletionTimestamp !== undefined) return this.finalize(obj, ref);
    if (!(obj.metadata?.finalizers ?? []).includes(FINALIZER)) {
      await this.deps.writer.setFinalizers(obj, [...(obj.metadata?.finalizers ?? []), FINALIZER]);
    }
    const validation = this.validated(obj, name, namespace);
    if (!validation.ok) return this.invalid(obj, ref, validation.issues);
    return this.converge(obj, ref, validation.experiment.spec, validation.matrix, validation.warnings);
  }

  /**
   * Validation (schema, rules, rendering, the run matrix: 20,000 runs hashed) once per generation:
   * the spec only changes with the generation; labels are part of the key since they do not bump it.
   */
  private validated(obj: ExperimentObject, name: string, namespace: string): ReturnType<typeof validateObject> {
    const key = `${obj.metadata?.generation ?? 0}/${JSON.stringify(obj.metadata?.labels ?? {})}`;
    const uid = obj.metadata?.uid ?? '';
    const known = this.validations.get(uid);
    if (known !== undefined && known.key === key) return known.result;
    let result = validateObject(obj, name, namespace);
    if (result.ok) {
      const refused = gpuControlIssues(result.experiment.spec, result.matrix, this.deps.podOptions.gpuControl === true);
      if (refused.length > 0) result = { ok: false, issues: refused, warnings: result.warnings };
    }
    this.validations.set(uid, { key, result });
    return result;
  }

  /** Status as last written (ours, when the cache lags), read through the status schema. */
  private previousStatus(obj: ExperimentObject): EnergyExperimentStatus {
    const uid = obj.metadata?.uid ?? '';
    const mine = this.background.wanted.get(uid);
    const rv = Number(obj.metadata?.resourceVersion ?? '0');
    // Ours while its patch is in flight, or until the cache shows a version at least as new.
    if (mine !== undefined && (mine.rv === undefined || (Number.isFinite(rv) && rv <= mine.rv))) return mine.status;
    const cached = this.parsed.get(uid);
    const rvText = obj.metadata?.resourceVersion ?? '';
    if (cached !== undefined && cached.rv === rvText && rvText !== '') return cached.status;
    const status = experimentStatus(obj.status, this.deps.log);
    this.parsed.set(uid, { rv: rvText, status });
    return status;
  }

  /**
   * Sends the status when it differs from the last one wanted (or, without one, from the cache's);
   * true when it did. The patch goes in the background (status-writer.ts): the reconcile does not wait.
   */
  private writeStatus(obj: ExperimentObject, ref: ExperimentRef, status: EnergyExperimentStatus): boolean {
    const canonical = canonicalJson(status);
    const mine = this.background.wanted.get(ref.uid);
    const prev = this.previousStatus(obj);
    // What we wanted last is compared by its canonical form, computed once (status can be ~200 KB).
    if (mine !== undefined && prev === mine.status ? mine.canonical === canonical : !statusChanged(prev, status))
      return false;
    this.background.status(ref.uid, ref.namespace, ref.name, status, canonical);
    return true;
  }

  private async invalid(obj: ExperimentObject, ref: ExperimentRef, issues: SpecIssue[]): Promise<ReconcileResult> {
    const generation = obj.metadata?.generation ?? 0;
    const prev = this.previousStatus(obj);
    const message = issues
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ')
      .slice(0, 4000);
    const now = this.now().toISOString();
    const conditions = applyConditions(
      prev.conditions,
      [
        { type: 'Validated', status: 'False', reason: REASONS.SpecInvalid, message: `The spec is invalid: ${message}` },
        {
          type: 'Running',
          status: 'False',
          reason: REASONS.SpecInvalid,
          message: 'Nothing runs until the spec is fixed.',
        },
        {
          type: 'Failed',
          status: 'True',
          reason: REASONS.SpecInvalid,
          message: 'The spec is invalid; fix it and the experiment is validated again.',
        },
      ],
      now,
      generation,
    );
    const status: EnergyExperimentStatus = { ...prev, observedGeneration: generation, phase: 'Invalid', conditions };
    if (this.writeStatus(obj, ref, status))
      void this.event(obj, 'Warning', 'SpecInvalid', `The spec is invalid: ${message}`);
    return {};
  }

  /**
   * A configuration validated but its pod could not be rendered (validation and rendering disagree: a
   * bug). Failed/InvalidSpec naming the field; no pods, no retry: the same spec would fail the same way.
   */
  private async renderFailed(
    obj: ExperimentObject,
    ref: ExperimentRef,
    err: InvalidInputError,
  ): Promise<ReconcileResult> {
    const generation = obj.metadata?.generation ?? 0;
    const prev = this.previousStatus(obj);
    const message = err.issues
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ')
      .slice(0, 4000);
    const conditions = applyConditions(
      prev.conditions,
      [
        {
          type: 'Running',
          status: 'False',
          reason: REASONS.InvalidSpec,
          message: 'No pod can be built for this spec; nothing runs until it is changed.',
        },
        {
          type: 'Succeeded',
          status: 'False',
          reason: REASONS.InvalidSpec,
          message: `A pod could not be rendered: ${message}`,
        },
        {
          type: 'Failed',
          status: 'True',
          reason: REASONS.InvalidSpec,
          message: `A pod could not be rendered: ${message}`,
        },
      ],
      this.now().toISOString(),
      generation,
    );
    const status: EnergyExperimentStatus = { ...prev, observedGeneration: generation, phase: 'Failed', conditions };
    if (this.writeStatus(obj, ref, status))
      void this.event(obj, 'Warning', REASONS.InvalidSpec, `A pod could not be rendered: ${message}`);
    this.deps.log.error({ err, experiment: `${ref.namespace}/${ref.name}` }, 'pod rendering refused a validated spec');
    return {};
  }

  private async finalize(obj: ExperimentObject, ref: ExperimentRef): Promise<ReconcileResult> {
    if (!(obj.metadata?.finalizers ?? []).includes(FINALIZER)) return {};
    for (const pod of this.podsOf(ref)) await this.deps.writer.deletePod(ref.namespace, pod.metadata?.name ?? '');
    await this.background.idle();
    await this.deps.streams.cleanup(ref);
    this.background.forget(ref.uid);
    this.parsed.delete(ref.uid);
    this.validations.delete(ref.uid);
    this.lastPass.delete(ref.uid);
    this.deferredEvents.delete(ref.uid);
    this.artifacts.delete(ref.uid);
    this.eventBudget.forget(ref.uid);
    this.deps.metrics?.forgetExperiment(ref.namespace, ref.name);
    this.attempts.forget(ref.uid, 'deleted', this.now());
    await this.deps.writer.setFinalizers(
      obj,
      (obj.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER),
    );
    this.deps.log.info(
      { experiment: `${ref.namespace}/${ref.name}` },
      'experiment deleted: pods, consumer and checkpoint cleaned up',
    );
    return {};
  }

  private podsOf(ref: ExperimentRef): V1Pod[] {
    const uidLabel = labelValue(ref.uid);
    return this.deps.pods.list(ref.namespace).filter((p) => p.metadata?.labels?.[LABEL_EXPERIMENT_UID] === uidLabel);
  }

  private expected(pods: V1Pod[]): Set<string> {
    const now = Date.now();
    for (const p of pods) this.expectations.delete(p.metadata?.name ?? '');
    for (const [n, at] of this.expectations) if (now - at > EXPECTATION_TTL_MS) this.expectations.delete(n);
    return new Set(this.expectations.keys());
  }

  private async converge(
    obj: ExperimentObject,
    ref: ExperimentRef,
    spec: EnergyExperimentSpec,
    matrix: RunMatrix,
    warnings: SpecIssue[],
  ): Promise<ReconcileResult> {
    const prev = this.previousStatus(obj);
    // Finished, artifact written, feed released: results are read from the artifact from now on.
    if (isReleased(prev)) {
      // Nothing of a finished experiment stays in memory, its run matrix included.
      this.validations.delete(ref.uid);
      return this.afterFinish(ref, spec, prev, undefined);
    }
    const feed = await this.feedWithin(ref, {
      planned: matrix.runs,
      seed: prev.runs,
      newAggregator: () => newAggregator(ref.uid, matrix, spec.placement.replicas, spec.policy.failurePolicy),
    });
    // Still loading (run table, checkpoint, consumer): this key is queued again once it has loaded.
    if (feed === undefined) return {};
    const now = this.now();
    const out = this.step(ref, spec, matrix, feed, now);
    let created: RenderedPod[];
    try {
      created = this.renderPods(ref, spec, matrix, out);
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      this.attempts.forget(ref.uid, 'failed', now);
      return this.renderFailed(obj, ref, err);
    }
    const runsChanged = this.actuate(ref, feed, out, created, now);
    return this.publish({ obj, ref, spec, matrix, feed, warnings }, out, prev, runsChanged);
  }

  /** One pass of the run state machine over the run table, the pods and the Aggregator's verdicts. */
  private step(
    ref: ExperimentRef,
    spec: EnergyExperimentSpec,
    matrix: RunMatrix,
    feed: ExperimentFeed,
    now: Date,
  ): RunPlanOutput {
    const pods = this.podsOf(ref);
    const out = stepRuns({
      planned: matrix.runs,
      previous: feed.runs.list(),
      pods,
      judge: feed.judge,
      resumed: feed.resumed,
      policy: spec.policy,
      replicas: spec.placement.replicas,
      parallelism: spec.placement.parallelism,
      now,
      retryBaseMs: this.deps.retryBaseMs ?? 10_000,
      expected: this.expected(pods),
      podName: (runId, attempt, replica) => podName(ref, runId, attempt, replica),
      maxStarts: Math.max(1, Math.floor(MAX_POD_CREATES_PER_PASS / spec.placement.replicas)),
      ...(hasLadder(matrix.runs) ? { ladder: (runs) => ladderGateOf(spec, matrix, feed, runs) } : {}),
      admission: adaptiveAdmission(spec, matrix, (id) => feed.runResult(id)),
    });
    feed.resumed.clear();
    const waiting = waitingForNode(pods, out.runs);
    if (waiting !== undefined) out.waiting = waiting;
    return out;
  }

  /**
   * Takes the pass's run table and sends its writes: deletions, then (run table stored first,
   * write-ahead, ADR 0014) the new pods, and start signals, all in the background. True when a run
   * changed.
   */
  private actuate(
    ref: ExperimentRef,
    feed: ExperimentFeed,
    out: RunPlanOutput,
    created: RenderedPod[],
    now: Date,
  ): boolean {
    const before = feed.runs.list();
    // Declared before the pods exist: the Aggregator refuses messages of attempts never started.
    for (const c of out.create) feed.startAttempt(c.run.id, c.attempt);
    const runsChanged = out.runs.some((r, i) => r !== before[i]);
    feed.runs.update(out.runs);
    // The attempts whose result this pass applied (succeeded, failed, retried, suspended) end here.
    this.attempts.applied(ref.uid, before, out.runs, now);
    for (const name of out.deletePods) this.background.deletePod(ref.namespace, name);
    for (const { pod } of created) this.expectations.set(pod.metadata?.name ?? '', Date.now());
    this.background.track(this.persistThenCreate(ref, feed, created));
    this.countFailures(out);
    // Resent on every pass while the attempt is ready and not finished: a lost one is resent by the next.
    for (const s of out.signal) this.background.track(feed.signalStart(s.runId, s.attempt));
    return runsChanged;
  }

  /** The status this pass implies, sent when it differs; events; metrics; release once finished. */
  private async publish(
    ctx: ExperimentContext,
    out: RunPlanOutput,
    prev: EnergyExperimentStatus,
    runsChanged: boolean,
  ): Promise<ReconcileResult> {
    const { obj, ref, spec, feed } = ctx;
    // The final figures are computed fresh; in flight they are refreshed at most once a second.
    const p = progressOf(out.runs);
    const aggregate = feed.aggregate(p.pending === 0 && p.running === 0);
    const inputs: PassInputs = {
      generation: obj.metadata?.generation ?? 0,
      results: aggregate,
      failure: feed.failure(),
      status: prev,
      waiting: out.waiting,
    };
    // Nothing this status is made of changed (runs, results, failure, spec): the same status again,
    // not worth building (at 20,000 runs that is most of a pass) nor comparing.
    if (!runsChanged && samePass(this.lastPass.get(ref.uid), inputs))
      return this.afterFinish(ref, spec, prev, out.requeueAfterMs);
    const status = await this.desiredStatus(ctx, out, prev, aggregate);
    // The artifact is being written in the background; this key is queued again when it is done. That
    // pass must build the status even if nothing else changed (a last run that failed without sending
    // anything leaves the run table and the cached results as the last written pass had them).
    if (status === null) {
      this.lastPass.delete(ref.uid);
      if (out.events.length > 0)
        this.deferredEvents.set(ref.uid, [...(this.deferredEvents.get(ref.uid) ?? []), ...out.events]);
      return {};
    }
    const wrote = this.writeStatus(obj, ref, status);
    this.lastPass.set(ref.uid, { ...inputs, status: wrote ? status : prev });
    if (wrote) {
      out.events = [...(this.deferredEvents.get(ref.uid) ?? []), ...out.events];
      this.deferredEvents.delete(ref.uid);
      this.announce(obj, prev, status, out);
    }
    this.observe(ref, out, status.best, aggregate);
    if (isReleased(status)) this.releaseFeed(ref);
    return this.afterFinish(ref, spec, status, out.requeueAfterMs);
  }

  /** Events for what a written status changed. Recorded in the background, like client-go's broadcaster. */
  private announce(
    obj: ExperimentObject,
    prev: EnergyExperimentStatus,
    status: EnergyExperimentStatus,
    out: RunPlanOutput,
  ): void {
    for (const e of out.events) void this.event(obj, e.type, e.reason, e.message);
    this.degradedEvent(obj, prev, status);
    if (prev.phase !== status.phase)
      void this.event(
        obj,
        'Normal',
        `Experiment${String(status.phase)}`,
        `Experiment is ${String(status.phase)}: ${progressOf(out.runs).summary} runs succeeded.`,
      );
  }

  private releaseFeed(ref: ExperimentRef): void {
    // Dropped from the feed map at once; the final checkpoint is written in the background.
    this.background.track(this.deps.streams.release(ref));
    this.validations.delete(ref.uid);
    this.lastPass.delete(ref.uid);
    this.deferredEvents.delete(ref.uid);
    this.artifacts.delete(ref.uid);
    // Per-run power series of a finished experiment: every run has ended.
    this.deps.metrics?.runPower.forgetExperiment(ref.namespace, ref.name);
  }

  /** A Warning Event whenever the Degraded condition takes a new reason (AggregatorFailed included). */
  private degradedEvent(obj: ExperimentObject, prev: EnergyExperimentStatus, next: EnergyExperimentStatus): void {
    const before = prev.conditions.find((c) => c.type === 'Degraded');
    const after = next.conditions.find((c) => c.type === 'Degraded');
    if (after === undefined || after.status !== 'True' || (before?.status === 'True' && before.reason === after.reason))
      return;
    if (after.reason === REASONS.Simulated) return;
    void this.event(obj, 'Warning', after.reason, after.message);
  }

  /** Every pod of this pass, rendered before anything is written: a render failure writes nothing. */
  private renderPods(
    ref: ExperimentRef,
    spec: EnergyExperimentSpec,
    matrix: RunMatrix,
    out: RunPlanOutput,
  ): RenderedPod[] {
    const render = this.deps.renderPod ?? buildPod;
    const byId = new Map(matrix.configurations.map((c) => [c.id, c]));
    return out.create.flatMap((c) => {
      const configuration = byId.get(c.run.configurationId);
      if (configuration === undefined) return [];
      // Rendered in the attempt's span: the agent config carries its traceparent (the agents' parent).
      const attempt = this.attempts.started(ref.uid, c.run.id, c.attempt, { 'llem.config.hash': c.run.configHash });
      const pod = context.with(attempt, () =>
        render(
          { experiment: ref, spec, configuration, run: c.run, attempt: c.attempt, replica: c.replica },
          this.deps.podOptions,
        ),
      );
      return [{ pod, runId: c.run.id }];
    });
  }

  private countFailures(out: RunPlanOutput): void {
    for (const e of out.events)
      if (e.type === 'Warning')
        this.deps.metrics?.runFailures.inc({ reason: /failed: (\w+)/.exec(e.message)?.[1] ?? 'Unknown' });
  }

  /** The feed, if it loads within FEED_WAIT_MS; otherwise undefined, and the key is requeued once it loaded. */
  private async feedWithin(ref: ExperimentRef, plan: FeedPlan): Promise<ExperimentFeed | undefined> {
    const loading = this.deps.streams.feed(ref, plan);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), FEED_WAIT_MS)));
    const feed = await Promise.race([loading, late]);
    clearTimeout(timer);
    if (feed === undefined) {
      const key = `${ref.namespace}/${ref.name}`;
      loading.then(
        () => this.deps.requeue?.(key),
        () => this.deps.requeue?.(key),
      );
    }
    return feed;
  }

  /**
   * In the background: the run table first (write-ahead), then the pods. If either fails, the pods
   * not created lose their expectation and their runs are marked resumed, so the next pass creates
   * the same attempt's pods again instead of calling them lost; that pass is requeued.
   */
  private async persistThenCreate(ref: ExperimentRef, feed: ExperimentFeed, created: RenderedPod[]): Promise<void> {
    try {
      await feed.runs.persist();
    } catch (err) {
      for (const { pod, runId } of created) this.createFailed(ref, feed, runId, pod.metadata?.name, err);
      if (created.length === 0) throw err;
      return;
    }
    if (created.length > 0) await this.createPods(ref, feed, created);
  }

  private createFailed(
    ref: ExperimentRef,
    feed: ExperimentFeed,
    runId: string,
    name: string | undefined,
    err: unknown,
  ): void {
    if (name !== undefined) this.expectations.delete(name);
    feed.resumed.add(runId);
    this.deps.log.warn({ err, run: runId, pod: name }, 'pod not created; the next pass creates it again');
    this.deps.requeue?.(`${ref.namespace}/${ref.name}`);
  }

  private async createPods(ref: ExperimentRef, feed: ExperimentFeed, created: RenderedPod[]): Promise<void> {
    const failed = (runId: string, name: string | undefined, err: unknown): void =>
      this.createFailed(ref, feed, runId, name, err);
    await Promise.all(
      [...new Set(created.map((c) => c.runId))].map((runId) =>
        this.ensureBusCredentials(ref, runId).catch((err: unknown) => failed(runId, undefined, err)),
      ),
    );
    await Promise.all(
      created.map(async ({ pod, runId }) => {
        const name = pod.metadata?.name ?? '';
        if (feed.resumed.has(runId)) return void this.expectations.delete(name);
        try {
          await this.deps.writer.createPod(pod);
          this.deps.metrics?.podsCreated.inc();
        } catch (err) {
          failed(runId, name, err);
        }
      }),
    );
  }

  /** The run's bus credentials Secret (ADR 0011), created once per run before its first pod. */
  private async ensureBusCredentials(ref: ExperimentRef, runId: string): Promise<void> {
    const issuer = this.deps.podOptions.busIssuer;
    const key = `${ref.uid}/${runId}`;
    if (issuer === undefined || this.busSecrets.has(key) || this.deps.writer.createSecret === undefined) return;
    await this.deps.writer.createSecret(busCredentialSecret(issuer, ref, runId));
    this.busSecrets.add(key);
  }

  private async desiredStatus(
    ctx: ExperimentContext,
    out: RunPlanOutput,
    prev: EnergyExperimentStatus,
    aggregate: AggregateResults | null,
  ): Promise<EnergyExperimentStatus | null> {
    const { obj, ref, spec, matrix, warnings } = ctx;
    const generation = obj.metadata?.generation ?? 0;
    const nowIso = this.now().toISOString();
    const p = progressOf(out.runs);
    const failure = ctx.feed.failure();
    const all = configurationResults(
      matrix.configurations,
      out.runs,
      aggregate === null ? null : statusMetrics(aggregate),
    );
    const best = bestConfiguration(all);
    const configurations = boundConfigurations(all);
    const simulated = this.deps.podOptions.simulate || (aggregate?.experiment.simulated ?? false);
    const decision = decideFrom(spec, out.runs, simulated, aggregate, { failure, waiting: out.waiting });
    const conditions = applyConditions(
      prev.conditions,
      [
        { type: 'Validated', status: 'True', reason: REASONS.SpecValid, message: validMessage(matrix, warnings) },
        ...decision.updates,
      ],
      nowIso,
      generation,
    );
    const { started, completionTime } = statusTimes(out.runs, decision.finished, prev, nowIso);
    const runs = withAggregatorRunMetrics(boundRuns(out.runs), aggregate);
    // Written once, when the experiment finishes; later reconciles keep the reference.
    const body = {
      experiment: ref,
      spec,
      runs: out.runs,
      configurations: all,
      best,
      simulated,
      completionTime,
      results: aggregate,
      aggregatorFailure: failure,
    };
    const artifact = prev.artifact ?? (decision.finished ? await this.artifactWithin(ctx, body) : undefined);
    // Finished, its artifact still being written: status says so once it can name the artifact.
    if (decision.finished && artifact === undefined) return null;
    return {
      observedGeneration: generation,
      phase: decision.phase,
      conditions,
      progress: p,
      runs,
      configurations,
      ...(best !== undefined ? { best } : {}),
      ...(artifact !== undefined ? { artifact } : {}),
      simulated,
      ...(started !== undefined ? { startTime: started } : {}),
      ...(completionTime !== undefined ? { completionTime } : {}),
    };
  }

  /**
   * The finished experiment's artifact (results.json, CSVs, report.html: rendering and storing take
   * a second or more at 20,000 runs) is written in the background: undefined until it is stored,
   * then its reference. A failed write is forgotten and tried again by the next pass.
   */
  private async artifactWithin(
    ctx: ExperimentContext,
    body: Parameters<Reconciler['artifactOf']>[1],
  ): Promise<{ uri: string; kind: 'objectStore' } | undefined> {
    const uid = ctx.ref.uid;
    let entry = this.artifacts.get(uid);
    if (entry === undefined) {
      const key = `${ctx.ref.namespace}/${ctx.ref.name}`;
      const e: ArtifactWrite = { promise: this.artifactOf(ctx, body), done: undefined };
      e.promise.then(
        (a) => {
          e.done = a;
          this.deps.requeue?.(key);
        },
        (err: unknown) => {
          this.artifacts.delete(uid);
          this.deps.log.warn({ err, experiment: key }, 'artifact not written; the next pass writes it again');
          this.deps.requeue?.(key);
        },
      );
      this.artifacts.set(uid, e);
      entry = e;
    }
    if (entry.done !== undefined) return entry.done;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ARTIFACT_WAIT_MS)));
    const done = await Promise.race([entry.promise.catch(() => undefined), late]);
    clearTimeout(timer);
    return done;
  }

  private async artifactOf(
    ctx: ExperimentContext,
    body: Parameters<Reconciler['putArtifact']>[1] & { runs: RunPlanOutput['runs'] },
  ): Promise<{ uri: string; kind: 'objectStore' }> {
    const { aggregatorFailure, ...rest } = body;
    const analysis = artifactAnalysis(ctx.spec, ctx.matrix, ctx.feed, body.runs, body.results);
    const adaptive = adaptiveDecisions(ctx.spec, ctx.matrix, body.runs, (id) => ctx.feed.runResult(id));
    const doc = {
      ...rest,
      ...(analysis === undefined ? {} : { analysis }),
      ...(adaptive === null ? {} : { adaptive: adaptive.outcome }),
      runs: withAggregatorRunMetrics(body.runs, body.results),
      ...(aggregatorFailure !== null && aggregatorFailure !== undefined ? { aggregatorFailure } : {}),
    };
    return { uri: await this.putArtifact(ctx, doc), kind: 'objectStore' };
  }

  /** results.json plus the CSVs, plots and report.html (no power time series: the controller keeps no raw samples). */
  private async putArtifact(
    ctx: ExperimentContext,
    body: { simulated: boolean; completionTime?: string | undefined; results: AggregateResults | null } & Record<
      string,
      unknown
    >,
  ): Promise<string> {
    const cdfs = ctx.feed.cdfSource();
    const files =
      body.results === null || cdfs === null
        ? new Map<string, string>()
        : resultsFiles({
            title: `llem results: ${ctx.ref.namespace}/${ctx.ref.name}${body.simulated ? ' (simulated)' : ''}`,
            simulated: body.simulated,
            manifestPath: `EnergyExperiment ${ctx.ref.namespace}/${ctx.ref.name}`,
            generatedAt: body.completionTime ?? this.now().toISOString(),
            results: body.results,
            aggregator: cdfs,
            labels: configLabelsOf(ctx.matrix),
            power: null,
            windows: [],
            environment: {},
            analysis: body['analysis'] as ExperimentAnalysis | undefined,
            adaptive: (body['adaptive'] as AdaptiveOutcome | undefined) ?? null,
          });
    return await this.deps.streams.putArtifact(ctx.ref, body, files);
  }

  private async afterFinish(
    ref: ExperimentRef,
    spec: EnergyExperimentSpec,
    status: EnergyExperimentStatus,
    requeueAfterMs: number | undefined,
  ): Promise<ReconcileResult> {
    const completion = status.completionTime;
    const ttl = spec.policy.ttlSecondsAfterFinished;
    if (completion === undefined || ttl === undefined) return requeueAfterMs === undefined ? {} : { requeueAfterMs };
    const dueMs = Date.parse(completion) + ttl * 1000 - this.now().getTime();
    if (dueMs > 0) return { requeueAfterMs: dueMs };
    await this.deps.writer.deleteExperiment(ref.namespace, ref.name);
    return {};
  }

  private observe(
    ref: ExperimentRef,
    out: RunPlanOutput,
    best: { joulesPerToken: number } | undefined,
    aggregate: AggregateResults | null,
  ): void {
    const m = this.deps.metrics;
    if (m === undefined) return;
    const labels = { namespace: ref.namespace, experiment: ref.name };
    const p = progressOf(out.runs);
    for (const [phase, n] of [
      ['Pending', p.pending],
      ['Running', p.running],
      ['Succeeded', p.succeeded],
      ['Failed', p.failed],
    ] as const)
      m.experimentRuns.set({ ...labels, phase }, n);
    const energy = aggregate?.experiment.totals.energyJoules ?? null;
    if (energy !== null) m.experimentEnergy.set(labels, energy);
    else m.experimentEnergy.remove(labels);
    if (best !== undefined) m.experimentJoulesPerToken.set(labels, best.joulesPerToken);
    // A pod that died without a summary leaves no end marker on the stream: the run phase decides.
    for (const r of out.runs) if (r.phase !== 'Running') m.runPower.endRun(ref.namespace, ref.name, r.id);
  }

  private async event(
    obj: ExperimentObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    if (!this.eventBudget.take(obj.metadata?.uid ?? '', this.now().getTime())) {
      return;
    }
    try {
      await this.deps.writer.recordEvent(obj, type, reason, message);
    } catch (err) {
      this.deps.log.warn({ err, reason }, 'could not record event');
    }
  }
}
