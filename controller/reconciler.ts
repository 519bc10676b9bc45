// The level-based reconcile of one EnergyExperiment, keyed by namespace/name: read the cache,
// compute the desired pods and status, converge. A second reconcile with nothing new writes nothing.
// Return values: a thrown error = rate-limited retry; TerminalError = no retry; requeueAfterMs = timer.
// A pass decides and issues its writes; the writes complete in the background (ADR 0022), and what a
// pass costs follows the work that changed, not the experiment's size (ADR 0028).
import type { V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment, type SpecIssue } from '../api/validation.ts';
import type { RunMatrix } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import { REASONS } from '../api/conditions.ts';
import type { EnergyExperimentStatus, RunSummary } from '../api/status.ts';
import { InvalidInputError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { experimentContext, inSpan } from '../lib/telemetry/index.ts';
import { AttemptSpans } from './attempt-spans.ts';
import { FINALIZER, LABEL_EXPERIMENT_UID, type ExperimentObject, type KubeWriter } from './kube.ts';
import type { ObjectStore } from './informer.ts';
import { gpuControlIssues } from './gpu-control.ts';
import { buildPod, labelValue, podName, type ExperimentRef, type PodBuilderOptions } from './pods.ts';
import type { ExperimentFeed, ExperimentStreams, FeedPlan } from './results.ts';
import { isReleased } from './status-view.ts';
import { observeStatus, StatusSync } from './status-sync.ts';
import { BackgroundWrites } from './status-writer.ts';
import { hasLadder, newAggregator } from '../aggregator/index.ts';
import { ladderGateOf } from './ladder-gate.ts';
import type { AggregateResults } from '../aggregator/index.ts';
import { stepRuns, type RunPlanOutput } from './runs.ts';
import { waitingForNode } from './pod-waiting.ts';
import { adaptiveAdmission } from './adaptive.ts';
import { progressOf } from './status.ts';
import type { ControllerMetrics } from './metrics.ts';
import { ExperimentEvents } from './events.ts';
import { PodStarts, type RenderedPod } from './pod-starts.ts';
import { Artifacts } from './artifacts.ts';
import { RECLAIM_MIN_RUNS } from './memory.ts';
import { settledOrUndefined } from './settled.ts';
import { configurationsOf, decideFrom, desiredStatus, invalidStatus, renderFailedStatus } from './experiment-status.ts';

export { EventBudget, EVENT_BURST } from './events.ts';

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
  /** A finished experiment of this many runs was released (its feed stopped and dropped). */
  released?: (runs: number) => void;
}

/**
 * Pods created per reconcile at most: a pass does a bounded number of API calls whatever
 * placement.parallelism is, and asks to run again at once while more runs are due to start.
 */
export const MAX_POD_CREATES_PER_PASS = 20;
/**
 * While runs are in flight, status is rebuilt at most this often: building it reads every run (counts,
 * per-configuration cycles, the runs shown), so a 20,000-run experiment stepping many times a second
 * would spend most of each pass on a view that changes by a few runs. A finished experiment, a new
 * generation and an Aggregator failure are written at once. The run table is written every pass.
 */
export const STATUS_REFRESH_MS = 1000;
/**
 * A status build (results, status, its canonical form) grows with the experiment: ~50 ms at 5,000 runs,
 * several hundred at 20,000 on a loaded host. In flight, builds are spaced so they take at most
 * 1/STATUS_COST_SHARE of the controller's time (as results and checkpoints are, results.ts), and never
 * more than STATUS_REFRESH_MAX_MS apart: status lags the run table by seconds, not by the build's cost
 * times the pass rate (ADR 0035).
 */
export const STATUS_COST_SHARE = 20;
export const STATUS_REFRESH_MAX_MS = 10_000;

/** How long after a status build that took `buildMs` the next one is due (while runs are in flight). */
export function statusRefreshMs(buildMs: number): number {
  return Math.min(STATUS_REFRESH_MAX_MS, Math.max(STATUS_REFRESH_MS, STATUS_COST_SHARE * buildMs));
}

/** A released experiment with pods still in the cache is looked at again this often until none is left. */
const LEFTOVER_POD_RECHECK_MS = 5000;

/** What a pass's status was built from: an unchanged pass builds nothing, an early one waits. */
interface PassInputs {
  generation: number;
  results: AggregateResults | null;
  failure: ReturnType<ExperimentFeed['failure']>;
  /** The status the pass started from (or the one it wrote). */
  status: EnergyExperimentStatus;
  builtAtMs: number;
  /** What building it took (ms of CPU on this thread): spaces the next build (statusRefreshMs). */
  buildMs: number;
  /** A later pass changed runs but was too early to rebuild status: the next one rebuilds it. */
  stale: boolean;
  /** Why a running attempt's pod waits for a node, if it does. */
  waiting: string | undefined;
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

/** spec.policy.ttlSecondsAfterFinished of an experiment validated before (a released one): no revalidation. */
function ttlOf(obj: ExperimentObject): number | undefined {
  const ttl = (obj.spec as { policy?: { ttlSecondsAfterFinished?: unknown } } | undefined)?.policy
    ?.ttlSecondsAfterFinished;
  return typeof ttl === 'number' && Number.isFinite(ttl) && ttl >= 0 ? ttl : undefined;
}

export class Reconciler {
  /** Status patches and pod deletions, sent in the background (status-writer.ts). */
  readonly background: BackgroundWrites;
  private readonly validations = new Map<string, { key: string; result: ReturnType<typeof validateObject> }>();
  /** The status each experiment shows (the cache's, or ours on its way) and sending a new one. */
  private readonly statuses: StatusSync;
  /** What the last pass built its status from, by uid. */
  private readonly lastPass = new Map<string, PassInputs>();
  private readonly events: ExperimentEvents;
  private readonly starts: PodStarts;
  private readonly artifacts: Artifacts;
  /** Finalizer patches in flight, by uid: what the feed (and so every pod) waits for. */
  private readonly addingFinalizer = new Map<string, Promise<void>>();
  /** Open `llem.run.attempt` spans: pods created -> the attempt's result applied. */
  readonly attempts = new AttemptSpans();
  /** Released experiments (runs) whose pods are still being deleted: memory is reclaimed again once gone. */
  private readonly releasedRuns = new Map<string, number>();

  constructor(private readonly deps: ReconcilerDeps) {
    const requeue = (key: string): void => deps.requeue?.(key);
    this.background = new BackgroundWrites(deps.writer, deps.log, requeue);
    this.statuses = new StatusSync(this.background, deps.log);
    this.events = new ExperimentEvents(deps.writer, deps.log, () => this.now().getTime());
    this.starts = new PodStarts({
      writer: deps.writer,
      podOptions: deps.podOptions,
      log: deps.log,
      attempts: this.attempts,
      metrics: deps.metrics,
      renderPod: deps.renderPod,
      requeue,
      track: (work) => this.background.track(work),
      nowMs: () => this.now().getTime(),
    });
    this.artifacts = new Artifacts(deps.streams, deps.log, requeue);
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
    // On the object before anything exists outside it (consumer, checkpoint, pods: all wait for it), so
    // deletion cleans them up; the pass goes on meanwhile, and writes status once it is there.
    const gate = (obj.metadata?.finalizers ?? []).includes(FINALIZER) ? undefined : this.addFinalizer(obj, ref);
    const prev = this.statuses.previous(obj);
    // Finished, artifact written, feed released: results are read from the artifact from now on, and
    // nothing of it stays in memory, its run matrix included (a new generation is validated again).
    if (isReleased(prev) && prev.observedGeneration === (obj.metadata?.generation ?? 0))
      return this.releasedPass(obj, ref, prev);
    const validation = this.validated(obj, name, namespace);
    if (!validation.ok) return this.invalid(obj, ref, validation.issues);
    return this.converge(obj, ref, prev, validation, gate);
  }

  /**
   * A finished experiment whose artifact is written and feed released: results are read from the
   * artifact from now on, and nothing of it stays in memory, its run matrix included (a new
   * generation is validated again). Pods whose deletion failed or had not shown in the cache when the
   * runs finished: no stepping pass deletes them any more, so this one does (and looks again later).
   */
  private releasedPass(
    obj: ExperimentObject,
    ref: ExperimentRef,
    prev: EnergyExperimentStatus,
  ): Promise<ReconcileResult> {
    this.validations.delete(ref.uid);
    this.statuses.settled(obj);
    const leftovers = this.podsOf(ref);
    for (const p of leftovers)
      if (p.metadata?.deletionTimestamp === undefined)
        this.background.deletePod(ref.namespace, p.metadata?.name ?? '', ref.uid);
    if (leftovers.length === 0) this.background.forgetDeletions(ref.uid);
    this.reclaimOnceGone(ref.uid, leftovers.length);
    return this.afterFinish(ref, ttlOf(obj), prev, leftovers.length > 0 ? LEFTOVER_POD_RECHECK_MS : undefined);
  }

  /** Adds the finalizer in the background (once at a time); the promise settles when it is stored. */
  private addFinalizer(obj: ExperimentObject, ref: ExperimentRef): Promise<void> {
    const inFlight = this.addingFinalizer.get(ref.uid);
    if (inFlight !== undefined) return inFlight;
    const key = `${ref.namespace}/${ref.name}`;
    const write = this.deps.writer.setFinalizers(obj, [...(obj.metadata?.finalizers ?? []), FINALIZER]).finally(() => {
      this.addingFinalizer.delete(ref.uid);
      this.deps.requeue?.(key);
    });
    this.addingFinalizer.set(ref.uid, write);
    this.background.track(
      write.catch((err: unknown) => this.deps.log.warn({ err, experiment: key }, 'finalizer not added; retrying')),
    );
    return write;
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

  private invalid(obj: ExperimentObject, ref: ExperimentRef, issues: SpecIssue[]): ReconcileResult {
    const generation = obj.metadata?.generation ?? 0;
    const { status, message } = invalidStatus(
      this.statuses.previous(obj),
      issues,
      this.now().toISOString(),
      generation,
    );
    if (this.statuses.write(obj, ref, status))
      void this.events.record(obj, 'Warning', 'SpecInvalid', `The spec is invalid: ${message}`);
    return {};
  }

  /**
   * A configuration validated but its pod could not be rendered (validation and rendering disagree: a
   * bug). Failed/InvalidSpec naming the field; no pods, no retry: the same spec would fail the same way.
   */
  private renderFailed(obj: ExperimentObject, ref: ExperimentRef, err: InvalidInputError): ReconcileResult {
    const generation = obj.metadata?.generation ?? 0;
    const prev = this.statuses.previous(obj);
    const { status, message } = renderFailedStatus(prev, err.issues, this.now().toISOString(), generation);
    if (this.statuses.write(obj, ref, status))
      void this.events.record(obj, 'Warning', REASONS.InvalidSpec, `A pod could not be rendered: ${message}`);
    this.deps.log.error({ err, experiment: `${ref.namespace}/${ref.name}` }, 'pod rendering refused a validated spec');
    return {};
  }

  private async finalize(obj: ExperimentObject, ref: ExperimentRef): Promise<ReconcileResult> {
    if (!(obj.metadata?.finalizers ?? []).includes(FINALIZER)) return {};
    for (const pod of this.podsOf(ref)) await this.deps.writer.deletePod(ref.namespace, pod.metadata?.name ?? '');
    await this.background.idle();
    await this.deps.streams.cleanup(ref);
    this.background.forget(ref.uid);
    this.statuses.forget(ref.uid);
    this.releasedRuns.delete(ref.uid);
    this.forgetExperiment(ref);
    this.events.forget(ref.uid);
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

  /**
   * A released experiment's finished pods leave the cache as their deletions complete (seconds to
   * minutes after release, at MAX_DELETES_IN_FLIGHT at a time): once none is left and no deletion
   * is in flight, the memory they held (cached pods, requests) is reclaimed too, not only the feed's.
   */
  private reclaimOnceGone(uid: string, leftovers: number): void {
    const runs = this.releasedRuns.get(uid);
    if (runs === undefined || leftovers > 0) return;
    this.releasedRuns.delete(uid);
    this.deps.released?.(runs);
  }

  /**
   * Per-experiment state this reconciler still holds, by structure (a released experiment leaves
   * none behind but its parsed status; tests and the bench check it).
   */
  retained(): Record<string, number> {
    return {
      validations: this.validations.size,
      lastPass: this.lastPass.size,
      addingFinalizer: this.addingFinalizer.size,
      releasedRuns: this.releasedRuns.size,
      openAttemptSpans: this.attempts.size,
      ...this.starts.retained(),
      ...this.artifacts.retained(),
      ...this.background.retained(),
      ...this.events.retained(),
    };
  }

  /** What a finished (released) or deleted experiment no longer needs in memory. */
  private forgetExperiment(ref: ExperimentRef): void {
    this.validations.delete(ref.uid);
    this.lastPass.delete(ref.uid);
    this.artifacts.forget(ref.uid);
    this.starts.forget(ref.uid);
    this.events.forget(ref.uid);
  }

  private podsOf(ref: ExperimentRef): V1Pod[] {
    const uidLabel = labelValue(ref.uid);
    const mine = (p: V1Pod): boolean => p.metadata?.labels?.[LABEL_EXPERIMENT_UID] === uidLabel;
    if (this.deps.pods.withLabel === undefined) return this.deps.pods.list(ref.namespace).filter(mine);
    return this.deps.pods.withLabel(uidLabel).filter((p) => p.metadata?.namespace === ref.namespace);
  }

  private async converge(
    obj: ExperimentObject,
    ref: ExperimentRef,
    prev: EnergyExperimentStatus,
    valid: { experiment: { spec: EnergyExperimentSpec }; matrix: RunMatrix; warnings: SpecIssue[] },
    gate: Promise<void> | undefined,
  ): Promise<ReconcileResult> {
    const { matrix, warnings } = valid;
    const spec = valid.experiment.spec;
    const plan: FeedPlan = {
      planned: matrix.runs,
      seed: prev.runs,
      newAggregator: () => newAggregator(ref.uid, matrix, spec.placement.replicas, spec.policy.failurePolicy),
    };
    const feed = await this.feedWithin(ref, plan, gate);
    // Still loading (run table, checkpoint, consumer): this key is queued again once it has loaded.
    if (feed === undefined) return {};
    const now = this.now();
    const out = this.step(ref, spec, matrix, feed, now);
    let created: RenderedPod[];
    try {
      created = this.starts.render(ref, spec, matrix, out);
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      this.attempts.forget(ref.uid, 'failed', now);
      return this.renderFailed(obj, ref, err);
    }
    const runsChanged = this.actuate({ obj, ref, feed }, out, created, now);
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
    const expectations = this.starts.expectations;
    expectations.observed(pods.map((p) => p.metadata?.name ?? ''));
    const cacheRv = this.deps.pods.resourceVersion?.();
    const out = stepRuns({
      planned: matrix.runs,
      previous: feed.runs.list(),
      pods,
      judge: feed.judge,
      resumed: feed.resumed,
      streamCaughtUp: feed.caughtUp(),
      policy: spec.policy,
      replicas: spec.placement.replicas,
      parallelism: spec.placement.parallelism,
      now,
      retryBaseMs: this.deps.retryBaseMs ?? 10_000,
      expected: { has: (name) => expectations.pending(name, cacheRv) },
      podName: (runId, attempt, replica) => podName(ref, runId, attempt, replica),
      maxStarts: Math.max(1, Math.floor(MAX_POD_CREATES_PER_PASS / spec.placement.replicas)),
      admission: adaptiveAdmission(spec, matrix, (id) => feed.runResult(id)),
      ...(hasLadder(matrix.runs) ? { ladder: (runs) => ladderGateOf(spec, matrix, feed, runs) } : {}),
    });
    // Resumed runs are judged once, after the stream was read up to where it was at load.
    if (feed.caughtUp()) feed.resumed.clear();
    const waiting = waitingForNode(pods, out.runs);
    if (waiting !== undefined) out.waiting = waiting;
    return out;
  }

  /**
   * Takes the pass's run table and sends its writes: deletions, then (run table stored first,
   * write-ahead, ADR 0014) the new pods, and start signals, all in the background. True when a run
   * changed. Work here follows the runs that changed, not the experiment's size.
   */
  private actuate(
    { obj, ref, feed }: Pick<ExperimentContext, 'obj' | 'ref' | 'feed'>,
    out: RunPlanOutput,
    created: RenderedPod[],
    now: Date,
  ): boolean {
    const before = feed.runs.list();
    // Declared before the pods exist: the Aggregator refuses messages of attempts never started.
    for (const c of out.create) feed.startAttempt(c.run.id, c.attempt);
    const was: RunSummary[] = [];
    const is: RunSummary[] = [];
    for (let i = 0; i < out.runs.length; i++) {
      const r = out.runs[i] as RunSummary;
      if (r === before[i]) continue;
      was.push(before[i] as RunSummary);
      is.push(r);
    }
    feed.runs.update(out.runs);
    // The attempts whose result this pass applied (succeeded, failed, retried, suspended) end here.
    this.attempts.applied(ref.uid, was, is, now);
    for (const name of out.deletePods) this.background.deletePod(ref.namespace, name, ref.uid);
    this.starts.start(ref, feed, created);
    this.countFailures(out);
    for (const e of out.events) void this.events.record(obj, e.type, e.reason, e.message);
    // A pod that died without a summary leaves no end marker on the stream: the run phase decides.
    const power = this.deps.metrics?.runPower;
    for (const r of is) if (r.phase !== 'Running') power?.endRun(ref.namespace, ref.name, r.id);
    // Resent while the attempt is ready and not finished, at most every SIGNAL_RESEND_MS.
    const signalDue = this.starts.signal(ref, feed, out.signal, now.getTime());
    if (signalDue !== undefined)
      out.requeueAfterMs = out.requeueAfterMs === undefined ? signalDue : Math.min(out.requeueAfterMs, signalDue);
    return is.length > 0;
  }

  /** The status this pass implies, sent when it differs; events; metrics; release once finished. */
  private async publish(
    ctx: ExperimentContext,
    out: RunPlanOutput,
    prev: EnergyExperimentStatus,
    runsChanged: boolean,
  ): Promise<ReconcileResult> {
    const { obj, ref, spec, feed } = ctx;
    const p = progressOf(out.runs);
    const finished = p.pending === 0 && p.running === 0;
    const generation = obj.metadata?.generation ?? 0;
    const failure = feed.failure();
    const last = this.lastPass.get(ref.uid);
    const nowMs = this.now().getTime();
    const ttl = spec.policy.ttlSecondsAfterFinished;
    const deferred = this.deferredStatus(
      { ref, last, finished, generation, failure, waiting: out.waiting, nowMs },
      runsChanged,
      prev,
    );
    if (deferred !== false) return this.afterFinish(ref, ttl, prev, minDue(out.requeueAfterMs, deferred));
    // The final figures are computed fresh; in flight they are refreshed at most once a second.
    const buildT0 = performance.now();
    const aggregate = feed.aggregate(finished);
    const inputs: PassInputs = {
      generation,
      results: aggregate,
      failure,
      status: prev,
      builtAtMs: nowMs,
      buildMs: 0,
      stale: false,
      waiting: out.waiting,
    };
    // Nothing this status is made of changed (runs, results, failure, spec): the same status again,
    // not worth building (at 20,000 runs that is most of a pass) nor comparing.
    if (!runsChanged && last !== undefined && !last.stale && samePass(last, inputs))
      return this.afterFinish(ref, ttl, prev, out.requeueAfterMs);
    const status = await this.statusOf(ctx, out, prev, aggregate);
    // The artifact is being written in the background; this key is queued again when it is done.
    // That pass must build the status even if nothing else changed (a last run that failed without
    // sending anything leaves the run table and the cached results as the last written pass had them).
    if (status === null) {
      this.lastPass.delete(ref.uid);
      return {};
    }
    const wrote = this.statuses.write(obj, ref, status);
    const buildMs = performance.now() - buildT0;
    this.lastPass.set(ref.uid, { ...inputs, status: wrote ? status : prev, buildMs });
    if (wrote) this.announce(obj, prev, status);
    if (this.deps.metrics !== undefined) observeStatus(this.deps.metrics, ref, status, aggregate);
    if (isReleased(status)) this.releaseFeed(ref, ctx.matrix.runs.length);
    return this.afterFinish(ref, ttl, status, out.requeueAfterMs);
  }

  /**
   * Whether this pass leaves status as it is, and if so when a rebuild is due (undefined: none needed).
   * False: build it now. In flight, status follows the run table at most every statusRefreshMs(); a
   * finished experiment, a new generation, a new Aggregator failure and a pod starting or
   * ceasing to wait for a node are written at once.
   */
  private deferredStatus(
    pass: {
      ref: ExperimentRef;
      last: PassInputs | undefined;
      finished: boolean;
      generation: number;
      failure: PassInputs['failure'];
      waiting: string | undefined;
      nowMs: number;
    },
    runsChanged: boolean,
    prev: EnergyExperimentStatus,
  ): number | undefined | false {
    // The finalizer's patch is in flight: status waits for it (a status patch would bump the object's
    // resourceVersion under the finalizer patch's guard); its completion queues this key again.
    if (this.addingFinalizer.has(pass.ref.uid)) return undefined;
    const last = pass.last;
    if (last === undefined || pass.finished || last.generation !== pass.generation) return false;
    if (last.failure !== pass.failure || last.waiting !== pass.waiting) return false;
    const refreshMs = statusRefreshMs(last.buildMs);
    if (pass.nowMs - last.builtAtMs >= refreshMs) return false;
    last.stale ||= runsChanged || last.status !== prev;
    return last.stale ? last.builtAtMs + refreshMs - pass.nowMs : undefined;
  }

  /** The status of this pass, or null while a finished experiment's artifact is still being written. */
  private async statusOf(
    ctx: ExperimentContext,
    out: RunPlanOutput,
    prev: EnergyExperimentStatus,
    aggregate: AggregateResults | null,
  ): Promise<EnergyExperimentStatus | null> {
    const { obj, ref, spec, matrix, warnings, feed } = ctx;
    const failure = feed.failure();
    const simulated = this.deps.podOptions.simulate || (aggregate?.experiment.simulated ?? false);
    const decision = decideFrom(spec, out.runs, simulated, aggregate, { failure, waiting: out.waiting });
    const nowIso = this.now().toISOString();
    const generation = obj.metadata?.generation ?? 0;
    const build = (artifact: EnergyExperimentStatus['artifact']): EnergyExperimentStatus =>
      desiredStatus({
        spec,
        matrix,
        warnings,
        generation,
        runs: out.runs,
        prev,
        aggregate,
        simulated,
        decision,
        artifact,
        nowIso,
      });
    let artifact = prev.artifact;
    if (artifact === undefined && decision.finished) {
      // Written once, when the experiment finishes; later reconciles keep the reference.
      artifact = await this.artifacts.within(ref, matrix, feed, () => {
        const { all, best } = configurationsOf(matrix, out.runs, aggregate);
        return {
          experiment: ref,
          spec,
          runs: out.runs,
          configurations: all,
          best,
          simulated,
          completionTime: prev.completionTime ?? nowIso,
          results: aggregate,
          aggregatorFailure: failure,
        };
      });
      // Finished, its artifact still being written: status says so once it can name the artifact.
      if (artifact === undefined) return null;
    }
    return build(artifact);
  }

  /** Events for what a written status changed. Recorded in the background, like client-go's broadcaster. */
  private announce(obj: ExperimentObject, prev: EnergyExperimentStatus, status: EnergyExperimentStatus): void {
    this.degradedEvent(obj, prev, status);
    if (prev.phase !== status.phase)
      void this.events.record(
        obj,
        'Normal',
        `Experiment${String(status.phase)}`,
        `Experiment is ${String(status.phase)}: ${status.progress?.summary ?? ''} runs succeeded.`,
      );
  }

  private releaseFeed(ref: ExperimentRef, runs: number): void {
    // Dropped from the feed map at once; the final checkpoint is written in the background.
    this.background.track(this.deps.streams.release(ref).then(() => this.deps.released?.(runs)));
    // Small experiments leave little behind: only large ones are reclaimed again (memory.ts).
    if (runs >= RECLAIM_MIN_RUNS) this.releasedRuns.set(ref.uid, runs);
    this.forgetExperiment(ref);
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
    void this.events.record(obj, 'Warning', after.reason, after.message);
  }

  private countFailures(out: RunPlanOutput): void {
    for (const e of out.events)
      if (e.type === 'Warning')
        this.deps.metrics?.runFailures.inc({ reason: /failed: (\w+)/.exec(e.message)?.[1] ?? 'Unknown' });
  }

  /** The feed once loaded; until then undefined, and the key is requeued when it has (no pass waits on I/O). */
  private async feedWithin(
    ref: ExperimentRef,
    plan: FeedPlan,
    gate: Promise<void> | undefined,
  ): Promise<ExperimentFeed | undefined> {
    // A failed finalizer patch requeues the key by itself (addFinalizer): no feed this pass.
    const loading =
      gate === undefined
        ? this.deps.streams.feed(ref, plan)
        : gate.then(
            () => this.deps.streams.feed(ref, plan),
            () => undefined,
          );
    const feed = await settledOrUndefined(loading);
    if (feed === undefined) {
      const key = `${ref.namespace}/${ref.name}`;
      loading.then(
        () => this.deps.requeue?.(key),
        () => this.deps.requeue?.(key),
      );
    }
    return feed;
  }

  private async afterFinish(
    ref: ExperimentRef,
    ttl: number | undefined,
    status: EnergyExperimentStatus,
    requeueAfterMs: number | undefined,
  ): Promise<ReconcileResult> {
    const completion = status.completionTime;
    if (completion === undefined || ttl === undefined) return requeueAfterMs === undefined ? {} : { requeueAfterMs };
    const dueMs = Date.parse(completion) + ttl * 1000 - this.now().getTime();
    if (dueMs > 0) return { requeueAfterMs: dueMs };
    await this.deps.writer.deleteExperiment(ref.namespace, ref.name);
    return {};
  }
}

function samePass(last: PassInputs, now: PassInputs): boolean {
  return (
    last.status === now.status &&
    last.generation === now.generation &&
    last.results === now.results &&
    last.failure === now.failure &&
    last.waiting === now.waiting
  );
}

function minDue(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}
