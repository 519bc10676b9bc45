// The run state machine, pure: previous run summaries (the run table, ADR 0014) + the pods that exist
// + the Aggregator's completeness verdict (the one judge) -> next run summaries and the pods to create
// or delete. Level-based: the same inputs always give the same outputs, so a second reconcile in a row
// changes nothing (an unchanged run is returned as the same object, so callers can see what changed).
import type { V1Pod } from '@kubernetes/client-node';
import type { PlannedRun } from '../api/matrix.ts';
import type { PolicySpec } from '../api/spec.ts';
import type { RunSummary } from '../api/status.ts';
import { LABEL_ATTEMPT, LABEL_RUN } from './kube.ts';
import type { RunVerdict } from '../aggregator/index.ts';
import { labelValue } from './pods.ts';
import type { LadderAction } from '../aggregator/index.ts';

/** What the stream has shown about a run: the Aggregator's verdict, or why it cannot be trusted. */
export interface RunJudge {
  verdict(runId: string): RunVerdict | null;
  /** Set when the Aggregator failed on this attempt's data: the attempt cannot succeed. */
  failure(runId: string, attempt: number): string | undefined;
}

export interface RunInputs {
  planned: PlannedRun[];
  previous: RunSummary[];
  pods: V1Pod[];
  judge: RunJudge;
  /** Runs the table says are Running but that this process has not seen a pod of yet (after a restart). */
  resumed: ReadonlySet<string>;
  /**
   * The stream has been read up to where it was when the feed loaded (default true). Until then a
   * resumed run without pods is not judged: its pods may be gone because it finished.
   */
  streamCaughtUp?: boolean;
  policy: PolicySpec;
  replicas: number;
  parallelism: number;
  now: Date;
  /** Base of the retry backoff (doubles per attempt, capped at 5 minutes). */
  retryBaseMs: number;
  /** Pods created that the cache may not show yet (expectations.ts): they count as existing. */
  expected: { has(name: string): boolean };
  podName: (runId: string, attempt: number, replica: number) => string;
  /**
   * At most this many runs started per pass (default: no cap beyond parallelism): a pass then costs a
   * bounded number of pod creates, and `requeueAfterMs` 0 asks for the next pass at once.
   */
  maxStarts?: number;
  /**
   * Adaptive cycles (ADR 0031): per run id, from the runs as stepped this pass; a Pending run decided
   * `skip` becomes Skipped, `wait` stays Pending. Absent: every Pending run may start.
   */
  admission?: ((runs: readonly RunSummary[]) => ReadonlyMap<string, 'done' | 'run' | 'skip' | 'wait'>) | undefined;
  /**
   * Load ladders (ADR 0030): what each ladder run may do given the runs' phases after this pass's
   * updates (run, hold until the earlier step has ended, or skip past saturation). Absent: no ladder.
   */
  ladder?: (runs: readonly RunSummary[]) => ReadonlyMap<string, LadderAction>;
}

export interface RunEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface RunPlanOutput {
  runs: RunSummary[];
  create: { run: PlannedRun; attempt: number; replica: number }[];
  deletePods: string[];
  events: RunEvent[];
  /** Ready attempts to (re)signal. */
  signal: { runId: string; attempt: number }[];
  /** Earliest time something is due (retry backoff, timeout), ms from now. */
  requeueAfterMs: number | undefined;
  /** Set by the reconciler: why a running attempt's pod waits for a node (pod-waiting.ts). */
  waiting?: string;
}

const MAX_BACKOFF_MS = 5 * 60 * 1000;
/** Pods all finished but the summary not yet consumed: wait this long before calling data lost. */
const DATA_GRACE_MS = 60 * 1000;

/** Pods by run label and attempt, built once per pass: no scan of every pod per run. */
export type PodIndex = Map<string, V1Pod[]>;

export function indexPods(pods: V1Pod[]): PodIndex {
  const index: PodIndex = new Map();
  for (const p of pods) {
    const labels = p.metadata?.labels;
    if (labels === undefined || p.metadata?.deletionTimestamp !== undefined) continue;
    const key = `${labels[LABEL_RUN] ?? ''}/${labels[LABEL_ATTEMPT] ?? ''}`;
    const list = index.get(key);
    if (list === undefined) index.set(key, [p]);
    else list.push(p);
  }
  return index;
}

const indexes = new WeakMap<V1Pod[], PodIndex>();

function podsOf(pods: V1Pod[], runId: string, attempt: number): V1Pod[] {
  let index = indexes.get(pods);
  if (index === undefined) {
    index = indexPods(pods);
    indexes.set(pods, index);
  }
  return index.get(`${labelValue(runId)}/${attempt}`) ?? [];
}

type PodFailure = { reason: string; message: string };

/** Waiting reasons that never resolve by themselves: the pod cannot start. */
const STUCK_WAITING = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'ErrImageNeverPull',
  'InvalidImageName',
  'CreateContainerConfigError',
]);

/** A container (init or main) stuck before it could start. */
function stuckContainer(pod: V1Pod, name: string): PodFailure | undefined {
  const st = pod.status;
  for (const cs of [...(st?.initContainerStatuses ?? []), ...(st?.containerStatuses ?? [])]) {
    const waiting = cs.state?.waiting;
    if (waiting?.reason !== undefined && STUCK_WAITING.has(waiting.reason)) {
      return { reason: waiting.reason, message: `Pod ${name}: ${cs.name}: ${waiting.message ?? waiting.reason}.` };
    }
  }
  return undefined;
}

/** A pod in phase Failed: the pod's own reason (Evicted...) or its terminated container's (OOMKilled...). */
function failedPod(pod: V1Pod, name: string): PodFailure | undefined {
  const st = pod.status;
  if (st?.phase !== 'Failed') return undefined;
  const term = st.containerStatuses?.find((c) => c.state?.terminated !== undefined)?.state?.terminated;
  const reason = st.reason ?? term?.reason ?? 'PodFailed';
  const detail = st.message ?? term?.message ?? `exit code ${term?.exitCode ?? 'unknown'}`;
  return {
    reason: reason.replace(/[^A-Za-z0-9]/g, '') || 'PodFailed',
    message: `Pod ${name} failed (${reason}): ${detail.trim().slice(0, 300)}`,
  };
}

/** Why a pod failed, as a short CamelCase reason plus a sentence. */
export function podFailure(pod: V1Pod): PodFailure | undefined {
  const name = pod.metadata?.name ?? 'pod';
  return stuckContainer(pod, name) ?? failedPod(pod, name);
}

function retryDueMs(prev: RunSummary, inputs: RunInputs): number {
  if (prev.attempt === 0 || prev.completionTime === undefined) return 0;
  const backoff = Math.min(inputs.retryBaseMs * 2 ** (prev.attempt - 1), MAX_BACKOFF_MS);
  return Date.parse(prev.completionTime) + backoff - inputs.now.getTime();
}

/**
 * Failures another attempt would meet again (it pulls the same image, or the kubelet already retried
 * the pull): not retried, so a missing image costs one pod per run instead of a retry storm.
 */
const NOT_RETRIED = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName']);

function fail(
  prev: RunSummary,
  inputs: RunInputs,
  why: { reason: string; message: string },
  out: RunPlanOutput,
): RunSummary {
  for (const p of podsOf(inputs.pods, prev.id, prev.attempt)) out.deletePods.push(p.metadata?.name ?? '');
  const now = inputs.now.toISOString();
  const permanent = NOT_RETRIED.has(why.reason);
  const retriesLeft = prev.attempt < inputs.policy.retries && !permanent;
  const message =
    `Attempt ${prev.attempt} failed: ${why.reason}: ${why.message}${permanent ? ' (not retried: fix the image)' : ''}`.slice(
      0,
      1000,
    );
  out.events.push({
    type: 'Warning',
    reason: retriesLeft ? 'RunRetrying' : 'RunFailed',
    message: `Run ${prev.id}: ${message}`,
  });
  if (retriesLeft)
    return {
      id: prev.id,
      configurationId: prev.configurationId,
      cycle: prev.cycle,
      phase: 'Pending',
      attempt: prev.attempt + 1,
      completionTime: now,
      message,
    };
  return { ...prev, phase: 'Failed', completionTime: now, message };
}

/** The verdict on this attempt (an older attempt's verdict says nothing about this one). */
function verdictOf(prev: RunSummary, inputs: RunInputs): RunVerdict | null {
  const v = inputs.judge.verdict(prev.id);
  return v !== null && v.attempt === prev.attempt ? v : null;
}

/** What ends the attempt at once: the Aggregator failed on it, a pod failed, an agent aborted. */
function attemptBroken(
  prev: RunSummary,
  verdict: RunVerdict | null,
  pods: V1Pod[],
  inputs: RunInputs,
): PodFailure | undefined {
  const broken = inputs.judge.failure(prev.id, prev.attempt);
  if (broken !== undefined) return { reason: 'AggregatorFailed', message: broken };
  for (const p of pods) {
    const failure = podFailure(p);
    if (failure !== undefined) return failure;
  }
  if (verdict?.status === 'aborted') return { reason: 'AgentAborted', message: verdict.reasons.join('; ') };
  return undefined;
}

/** Replicas of this attempt with no pod, neither in the cache nor created moments ago. */
function missingReplicas(prev: RunSummary, pods: V1Pod[], inputs: RunInputs): number[] {
  const names = new Set(pods.map((p) => p.metadata?.name));
  return range(inputs.replicas).filter((r) => {
    const name = inputs.podName(prev.id, prev.attempt, r);
    return !names.has(name) && !inputs.expected.has(name);
  });
}

/** The attempt runs out of time, or its pods all ended without complete data: why, if so. */
function attemptOverdue(
  prev: RunSummary,
  pods: V1Pod[],
  inputs: RunInputs,
  out: RunPlanOutput,
): PodFailure | undefined {
  const nowMs = inputs.now.getTime();
  const startedMs = prev.startTime === undefined ? nowMs : Date.parse(prev.startTime);
  const timeoutMs = inputs.policy.runTimeoutSeconds * 1000;
  if (nowMs - startedMs > timeoutMs) return timedOut(inputs, pods);
  const allDone = pods.length === inputs.replicas && pods.every((p) => p.status?.phase === 'Succeeded');
  if (allDone && nowMs - lastFinishMs(pods) > DATA_GRACE_MS)
    return {
      reason: 'IncompleteData',
      message: 'every pod finished but the run data is incomplete (missing summary or messages)',
    };
  due(out, Math.min(startedMs + timeoutMs - nowMs, allDone ? DATA_GRACE_MS : Infinity));
  return undefined;
}

function stepRunning(prev: RunSummary, planned: PlannedRun, inputs: RunInputs, out: RunPlanOutput): RunSummary {
  const verdict = verdictOf(prev, inputs);
  const pods = podsOf(inputs.pods, prev.id, prev.attempt);
  if (verdict?.status === 'complete' && inputs.judge.failure(prev.id, prev.attempt) === undefined)
    return succeed(prev, inputs, out);
  const broken = attemptBroken(prev, verdict, pods, inputs);
  if (broken !== undefined) return fail(prev, inputs, broken, out);
  const missing = missingReplicas(prev, pods, inputs);
  if (awaitingStream(prev, missing, inputs)) return prev;
  // After a restart, a Running run with no pod and no data for its attempt was recorded (write-ahead)
  // but its pods never got created: create them now, same attempt, nothing of it exists anywhere.
  if (missing.length === inputs.replicas && verdict === null && inputs.resumed.has(prev.id)) {
    for (const replica of missing) out.create.push({ run: planned, attempt: prev.attempt, replica });
    return prev;
  }
  if (missing.length > 0) {
    const message = `pod(s) of replica ${missing.join(', ')} disappeared (deleted or node lost)`;
    return fail(prev, inputs, { reason: 'PodLost', message }, out);
  }
  const overdue = attemptOverdue(prev, pods, inputs, out);
  if (overdue !== undefined) return fail(prev, inputs, overdue, out);
  if (verdict !== null && verdict.readyReplicas >= inputs.replicas)
    out.signal.push({ runId: prev.id, attempt: prev.attempt });
  return prev;
}

/** A resumed run without its pods, while the stream is still being read (its data may finish it). */
function awaitingStream(prev: RunSummary, missing: number[], inputs: RunInputs): boolean {
  return missing.length > 0 && inputs.resumed.has(prev.id) && inputs.streamCaughtUp === false;
}

function timedOut(inputs: RunInputs, pods: V1Pod[] = []): PodFailure {
  return {
    reason: 'RunTimeout',
    message: `no complete data within policy.runTimeoutSeconds (${inputs.policy.runTimeoutSeconds} s)${waitingNote(pods)}`,
  };
}

/**
 * What a container the kubelet keeps retrying was waiting on when the run ran out of time (e.g.
 * CreateContainerError: runc's init OOM-killed by a memory limit too low to start the container).
 */
function waitingNote(pods: V1Pod[]): string {
  for (const p of pods)
    for (const cs of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
      const w = cs.state?.waiting;
      if (w?.reason === undefined || w.reason === 'PodInitializing' || w.reason === 'ContainerCreating') continue;
      return `; pod ${p.metadata?.name ?? '?'}: ${cs.name}: ${w.reason}${w.message === undefined ? '' : `: ${w.message.trim().slice(0, 300)}`}`;
    }
  return '';
}

function lastFinishMs(pods: V1Pod[]): number {
  let last = 0;
  for (const p of pods) {
    const t = p.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt;
    if (t !== undefined) last = Math.max(last, new Date(t).getTime());
  }
  return last;
}

function succeed(prev: RunSummary, inputs: RunInputs, out: RunPlanOutput): RunSummary {
  // Its data is on the stream and in the Aggregator: the finished pods go, so the pod cache (and the
  // controller's memory) stays bounded by the runs in flight, not by the experiment's size.
  for (const p of podsOf(inputs.pods, prev.id, prev.attempt)) out.deletePods.push(p.metadata?.name ?? '');
  out.events.push({
    type: 'Normal',
    reason: 'RunSucceeded',
    message: `Run ${prev.id} attempt ${prev.attempt} completed with complete data.`,
  });
  // joulesPerToken comes from the Aggregator when status is written (withAggregatorRunMetrics).
  const { message: _drop, ...rest } = prev;
  return { ...rest, phase: 'Succeeded', completionTime: inputs.now.toISOString() };
}

function due(out: RunPlanOutput, ms: number): void {
  if (!Number.isFinite(ms)) return;
  const v = Math.max(ms, 100);
  out.requeueAfterMs = out.requeueAfterMs === undefined ? v : Math.min(out.requeueAfterMs, v);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function initial(run: PlannedRun): RunSummary {
  return { id: run.id, configurationId: run.configurationId, cycle: run.cycle, phase: 'Pending', attempt: 0 };
}

/** Not needed: its configuration met its CI target or the GPU budget is spent (adaptive cycles). */
function skip(prev: RunSummary, now: Date): RunSummary {
  return {
    id: prev.id,
    configurationId: prev.configurationId,
    cycle: prev.cycle,
    phase: 'Skipped',
    attempt: prev.attempt,
    completionTime: now.toISOString(),
    message: 'Not needed: adaptive cycles stopped its configuration (target met or GPU budget spent).',
  };
}

/** Whether a Pending run may start (adaptive cycles: it may wait, or become Skipped in place). */
function admittedNow(
  admitted: ReadonlyMap<string, 'done' | 'run' | 'skip' | 'wait'> | undefined,
  stepped: RunSummary[],
  i: number,
  now: Date,
): boolean {
  const run = stepped[i];
  const admit = run === undefined ? 'run' : (admitted?.get(run.id) ?? 'run');
  if (admit === 'skip' && run !== undefined) stepped[i] = skip(run, now);
  return admit === 'run';
}

/** One pass of the run state machine. */
export function stepRuns(inputs: RunInputs): RunPlanOutput {
  const out: RunPlanOutput = {
    runs: [],
    create: [],
    deletePods: [],
    events: [],
    signal: [],
    requeueAfterMs: undefined,
  };
  const previousOf = previousLookup(inputs);
  const suspended = inputs.policy.suspend;
  const stepped = inputs.planned.map((run, i) => {
    const prev = adoptNewerAttempt(previousOf(run, i) ?? initial(run), inputs);
    if (prev.phase === 'Succeeded' || prev.phase === 'Failed' || prev.phase === 'Skipped') return prev;
    const v = inputs.judge.verdict(prev.id);
    // An attempt given up on (timeout, suspend) whose complete data arrived after all: it counts, and
    // the run is not started again.
    if (prev.phase === 'Pending' && v?.status === 'complete' && v.attempt < prev.attempt)
      return succeed({ ...prev, attempt: v.attempt }, inputs, out);
    if (prev.phase === 'Running' && suspended) return suspend(prev, inputs, out);
    return prev.phase === 'Running' ? stepRunning(prev, run, inputs, out) : prev;
  });
  const free = inputs.parallelism - stepped.filter((r) => r.phase === 'Running').length;
  let slots = Math.min(free, inputs.maxStarts ?? Infinity);
  const admitted = inputs.admission?.(stepped);
  const held = suspended ? new Set<string>() : gateLadder(stepped, inputs);
  for (const [i, run] of stepped.entries()) {
    const planned = inputs.planned[i];
    if (run.phase !== 'Pending' || planned === undefined || suspended || held.has(run.id)) continue;
    if (!admittedNow(admitted, stepped, i, inputs.now)) continue;
    if (slots <= 0) {
      // Capped by maxStarts, not by parallelism: the next pass starts more right away.
      if (free > (inputs.maxStarts ?? Infinity)) out.requeueAfterMs = 0;
      break;
    }
    const wait = retryDueMs(run, inputs);
    if (wait > 0) {
      due(out, wait);
      continue;
    }
    slots -= 1;
    for (const replica of range(inputs.replicas)) out.create.push({ run: planned, attempt: run.attempt, replica });
    stepped[i] = { ...run, phase: 'Running', startTime: inputs.now.toISOString() };
    due(out, inputs.policy.runTimeoutSeconds * 1000);
  }
  out.runs = stepped;
  releaseFinishedPods(inputs, stepped, out);
  return out;
}

/**
 * The previous summary of each planned run: the run table keeps plan order, so by position (no map of
 * 20,000 runs built per pass); by id when the orders differ (an older controller's status.runs).
 */
function previousLookup(inputs: RunInputs): (run: PlannedRun, i: number) => RunSummary | undefined {
  const prev = inputs.previous;
  const aligned = prev.length === inputs.planned.length && inputs.planned.every((r, i) => prev[i]?.id === r.id);
  if (aligned) return (_run, i) => prev[i];
  const byId = new Map(prev.map((r) => [r.id, r]));
  return (run) => byId.get(run.id);
}

const labelsOfPlan = new WeakMap<PlannedRun[], Map<string, number>>();

/**
 * Pods of a finished run that are still there (a controller killed between writing the run table and
 * deleting them): deleted now, so nothing lingers until the experiment is deleted.
 */
function releaseFinishedPods(inputs: RunInputs, runs: RunSummary[], out: RunPlanOutput): void {
  let byLabel = labelsOfPlan.get(inputs.planned);
  if (byLabel === undefined) {
    byLabel = new Map(inputs.planned.map((r, i) => [labelValue(r.id), i]));
    labelsOfPlan.set(inputs.planned, byLabel);
  }
  const queued = new Set(out.deletePods);
  for (const p of inputs.pods) {
    const name = p.metadata?.name ?? '';
    const i = byLabel.get(p.metadata?.labels?.[LABEL_RUN] ?? '');
    const phase = i === undefined ? undefined : runs[i]?.phase;
    if (
      (phase === 'Succeeded' || phase === 'Failed') &&
      !queued.has(name) &&
      p.metadata?.deletionTimestamp === undefined
    )
      out.deletePods.push(name);
  }
}

/**
 * The stream knows an attempt newer than the table (a table write lost in a crash): that attempt's
 * pods were created, so the run is Running it. Never go back to an attempt that already has data.
 */
function adoptNewerAttempt(prev: RunSummary, inputs: RunInputs): RunSummary {
  if (prev.phase === 'Succeeded' || prev.phase === 'Failed' || prev.phase === 'Skipped') return prev;
  const v = inputs.judge.verdict(prev.id);
  if (v === null || v.attempt <= prev.attempt) return prev;
  return {
    id: prev.id,
    configurationId: prev.configurationId,
    cycle: prev.cycle,
    phase: 'Running',
    attempt: v.attempt,
    startTime: inputs.now.toISOString(),
  };
}

/** Suspending stops the attempt; it resumes later as the next attempt (its ids must differ). */
function suspend(prev: RunSummary, inputs: RunInputs, out: RunPlanOutput): RunSummary {
  for (const p of podsOf(inputs.pods, prev.id, prev.attempt)) out.deletePods.push(p.metadata?.name ?? '');
  return {
    id: prev.id,
    configurationId: prev.configurationId,
    cycle: prev.cycle,
    phase: 'Pending',
    attempt: prev.attempt + 1,
    message: `Attempt ${prev.attempt} stopped by suspend.`,
  };
}

/** Succeeded, Failed or Skipped: nothing more happens to the run. */
export function ended(r: Pick<RunSummary, 'phase'>): boolean {
  return r.phase === 'Succeeded' || r.phase === 'Failed' || r.phase === 'Skipped';
}

/** Ladder runs past saturation become Skipped; returns the ids of those that must wait for an earlier step. */
function gateLadder(stepped: RunSummary[], inputs: RunInputs): Set<string> {
  const held = new Set<string>();
  const gate = inputs.ladder?.(stepped);
  if (gate === undefined) return held;
  for (const [i, run] of stepped.entries()) {
    const action = run.phase === 'Pending' ? gate.get(run.id) : undefined;
    if (action?.action === 'skip') stepped[i] = { ...run, phase: 'Skipped', message: action.reason.slice(0, 1024) };
    else if (action?.action === 'hold') held.add(run.id);
  }
  return held;
}
