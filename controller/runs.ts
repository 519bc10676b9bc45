// The run state machine, pure: previous run summaries (from status) + the pods that exist + what the
// stream has shown -> next run summaries and the pods to create or delete. Level-based: the same
// inputs always give the same outputs, so a second reconcile in a row changes nothing.
import type { V1Pod } from '@kubernetes/client-node';
import type { PlannedRun } from '../api/matrix.ts';
import type { PolicySpec } from '../api/spec.ts';
import type { RunSummary } from '../api/status.ts';
import { LABEL_ATTEMPT, LABEL_RUN } from './kube.ts';
import type { RunAttemptResult, RunLedger } from './ledger.ts';
import { labelValue } from './pods.ts';

export interface RunInputs {
  planned: PlannedRun[];
  previous: RunSummary[];
  pods: V1Pod[];
  ledger: RunLedger;
  policy: PolicySpec;
  replicas: number;
  parallelism: number;
  now: Date;
  /** Base of the retry backoff (doubles per attempt, capped at 5 minutes). */
  retryBaseMs: number;
  /** Pods created moments ago that the cache may not show yet (name -> created ms). */
  expected: ReadonlySet<string>;
  podName: (runId: string, attempt: number, replica: number) => string;
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
  /** Results of the succeeded runs, by run id (for configuration statistics). */
  results: Map<string, RunAttemptResult>;
  /** Ready attempts to (re)signal. */
  signal: { runId: string; attempt: number }[];
  /** Earliest time something is due (retry backoff, timeout), ms from now. */
  requeueAfterMs: number | undefined;
}

const MAX_BACKOFF_MS = 5 * 60 * 1000;
/** Pods all finished but the summary not yet consumed: wait this long before calling data lost. */
const DATA_GRACE_MS = 60 * 1000;

function podsOf(pods: V1Pod[], runId: string, attempt: number): V1Pod[] {
  const run = labelValue(runId);
  return pods.filter((p) => p.metadata?.labels?.[LABEL_RUN] === run && p.metadata.labels[LABEL_ATTEMPT] === String(attempt) && p.metadata.deletionTimestamp === undefined);
}

type PodFailure = { reason: string; message: string };

/** Waiting reasons that never resolve by themselves: the pod cannot start. */
const STUCK_WAITING = new Set(['ImagePullBackOff', 'ErrImagePull', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError']);

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
  return { reason: reason.replace(/[^A-Za-z0-9]/g, '') || 'PodFailed', message: `Pod ${name} failed (${reason}): ${detail.trim().slice(0, 300)}` };
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

function fail(prev: RunSummary, inputs: RunInputs, why: { reason: string; message: string }, out: RunPlanOutput): RunSummary {
  for (const p of podsOf(inputs.pods, prev.id, prev.attempt)) out.deletePods.push(p.metadata?.name ?? '');
  const now = inputs.now.toISOString();
  const permanent = NOT_RETRIED.has(why.reason);
  const retriesLeft = prev.attempt < inputs.policy.retries && !permanent;
  const message = `Attempt ${prev.attempt} failed: ${why.reason}: ${why.message}${permanent ? ' (not retried: fix the image)' : ''}`.slice(0, 1000);
  out.events.push({ type: 'Warning', reason: retriesLeft ? 'RunRetrying' : 'RunFailed', message: `Run ${prev.id}: ${message}` });
  if (retriesLeft) return { id: prev.id, configurationId: prev.configurationId, cycle: prev.cycle, phase: 'Pending', attempt: prev.attempt + 1, completionTime: now, message };
  return { ...prev, phase: 'Failed', completionTime: now, message };
}

function stepRunning(prev: RunSummary, inputs: RunInputs, out: RunPlanOutput): RunSummary {
  const result = inputs.ledger.complete(prev.id, prev.attempt, inputs.replicas);
  if (result !== null) return succeed(prev, result, inputs, out);
  const pods = podsOf(inputs.pods, prev.id, prev.attempt);
  for (const p of pods) {
    const failure = podFailure(p);
    if (failure !== undefined) return fail(prev, inputs, failure, out);
  }
  const aborted = inputs.ledger.aborted(prev.id, prev.attempt, inputs.replicas);
  if (aborted !== undefined) return fail(prev, inputs, { reason: 'AgentAborted', message: aborted }, out);
  const missing = range(inputs.replicas).filter((r) => {
    const name = inputs.podName(prev.id, prev.attempt, r);
    return !pods.some((p) => p.metadata?.name === name) && !inputs.expected.has(name);
  });
  if (missing.length > 0) return fail(prev, inputs, { reason: 'PodLost', message: `pod(s) of replica ${missing.join(', ')} disappeared (deleted or node lost)` }, out);
  const startedMs = prev.startTime === undefined ? inputs.now.getTime() : Date.parse(prev.startTime);
  const timeoutMs = inputs.policy.runTimeoutSeconds * 1000;
  if (inputs.now.getTime() - startedMs > timeoutMs) {
    return fail(prev, inputs, { reason: 'RunTimeout', message: `no complete data within policy.runTimeoutSeconds (${inputs.policy.runTimeoutSeconds} s)` }, out);
  }
  const allDone = pods.length === inputs.replicas && pods.every((p) => p.status?.phase === 'Succeeded');
  if (allDone && inputs.now.getTime() - lastFinishMs(pods) > DATA_GRACE_MS) {
    return fail(prev, inputs, { reason: 'IncompleteData', message: 'every pod finished but the run data is incomplete (missing summary or messages)' }, out);
  }
  if (inputs.ledger.allReady(prev.id, prev.attempt, inputs.replicas)) out.signal.push({ runId: prev.id, attempt: prev.attempt });
  due(out, Math.min(startedMs + timeoutMs - inputs.now.getTime(), allDone ? DATA_GRACE_MS : Infinity));
  return prev;
}

function lastFinishMs(pods: V1Pod[]): number {
  let last = 0;
  for (const p of pods) {
    const t = p.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt;
    if (t !== undefined) last = Math.max(last, new Date(t).getTime());
  }
  return last;
}

function succeed(prev: RunSummary, result: RunAttemptResult, inputs: RunInputs, out: RunPlanOutput): RunSummary {
  out.results.set(prev.id, result);
  out.events.push({ type: 'Normal', reason: 'RunSucceeded', message: `Run ${prev.id} attempt ${prev.attempt} completed with complete data.` });
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

/** One pass of the run state machine. */
export function stepRuns(inputs: RunInputs): RunPlanOutput {
  const out: RunPlanOutput = { runs: [], create: [], deletePods: [], events: [], results: new Map(), signal: [], requeueAfterMs: undefined };
  const byId = new Map(inputs.previous.map((r) => [r.id, r]));
  const suspended = inputs.policy.suspend;
  const stepped = inputs.planned.map((run) => {
    const prev = byId.get(run.id) ?? initial(run);
    if (prev.phase === 'Succeeded') {
      const done = inputs.ledger.complete(prev.id, prev.attempt, inputs.replicas);
      if (done !== null) out.results.set(prev.id, done);
      return prev;
    }
    if (prev.phase === 'Failed') return prev;
    const recovered = inputs.ledger.completedAttempt(prev.id, prev.attempt, inputs.replicas);
    if (recovered !== null && prev.phase === 'Pending') return succeed({ ...prev, attempt: recovered.attempt }, recovered.result, inputs, out);
    if (prev.phase === 'Running' && suspended) return suspend(prev, inputs, out);
    return prev.phase === 'Running' ? stepRunning(prev, inputs, out) : prev;
  });
  let slots = inputs.parallelism - stepped.filter((r) => r.phase === 'Running').length;
  for (const [i, run] of stepped.entries()) {
    const planned = inputs.planned[i];
    if (run.phase !== 'Pending' || planned === undefined || suspended || slots <= 0) continue;
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
  return out;
}

/** Suspending stops the attempt; it resumes later as the next attempt (its ids must differ). */
function suspend(prev: RunSummary, inputs: RunInputs, out: RunPlanOutput): RunSummary {
  for (const p of podsOf(inputs.pods, prev.id, prev.attempt)) out.deletePods.push(p.metadata?.name ?? '');
  return { id: prev.id, configurationId: prev.configurationId, cycle: prev.cycle, phase: 'Pending', attempt: prev.attempt + 1, message: `Attempt ${prev.attempt} stopped by suspend.` };
}
