// A run is complete only when every planned replica's summary has arrived, its sequence numbers
// are contiguous up to the summary, the per-kind counts match what the summary says was sent,
// and the sketch totals match the summary's totals. Anything else is reported with reasons.
// A run whose input was rejected (a message refused, an implausible reading) is incomplete and
// `inputRejected`: it is never merged into statistics, under any failure policy. A run that is
// whole but in which no request succeeded is `failed`: it measured nothing.
import { plausibilityProblems } from './plausibility.ts';
import type { PublisherState } from './state.ts';
import type { RunState } from './run-state.ts';

export type RunStatus = 'pending' | 'complete' | 'incomplete' | 'failed' | 'aborted';

export interface Completeness {
  status: RunStatus;
  /** Sentences saying what is missing or wrong; empty when complete. */
  reasons: string[];
  /** Some input of this attempt was refused or implausible: never merged, never "best". */
  inputRejected: boolean;
}

const COUNTED_KINDS = ['hello', 'ready', 'sketch', 'telemetry'] as const;
const TOTALS = ['requestsOk', 'requestsFailed', 'inputTokens', 'outputTokens'] as const;

function publisherProblems(p: PublisherState, configHash: string): string[] {
  const who = `replica ${p.replica}`;
  const out = p.problems.map((x) => `${who}: ${x}`);
  if (p.configHash !== null && p.configHash !== configHash) {
    out.push(`${who}: ran configuration hash ${p.configHash}, the plan expects ${configHash}`);
  }
  const s = p.summary;
  if (s === null) {
    out.push(`${who}: no summary yet (${p.contiguousUpTo} contiguous messages so far)`);
    return out;
  }
  if (p.contiguousUpTo < s.seq)
    out.push(`${who}: messages missing: seq ${p.contiguousUpTo + 1} is absent, the summary is seq ${s.seq}`);
  if (s.seq !== s.messagesBefore + 1)
    out.push(`${who}: summary seq ${s.seq} does not follow its ${s.messagesBefore} earlier messages`);
  const after = p.ahead.filter((q) => q > s.seq).length + Math.max(0, p.contiguousUpTo - s.seq);
  if (after > 0) out.push(`${who}: ${after} message(s) arrived after the summary`);
  for (const k of COUNTED_KINDS) {
    if (p.received[k] !== s.countsByKind[k])
      out.push(`${who}: ${p.received[k]} ${k} message(s) received, the summary says ${s.countsByKind[k]} were sent`);
  }
  for (const k of TOTALS) {
    if (p[k] !== s[k]) out.push(`${who}: sketches add up to ${p[k]} ${k}, the summary says ${s[k]}`);
  }
  return out;
}

function allFailed(run: RunState): string | null {
  let ok = 0;
  let failed = 0;
  for (const p of run.data.publishers) {
    ok += p.requestsOk;
    failed += p.requestsFailed;
  }
  if (ok > 0) return null;
  const classes = [...run.errorClasses.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([c, n]) => `${c} ${n}`);
  const byClass = classes.length > 0 ? `: ${classes.join(', ')}` : '';
  return failed === 0
    ? 'no request was sent or completed in the window: the run measured nothing'
    : `every request failed (${failed}${byClass}): the run measured nothing`;
}

export function completeness(run: RunState | undefined, replicas: number): Completeness {
  if (run === undefined || run.data.publishers.length === 0) {
    return { status: 'pending', reasons: ['no messages received yet'], inputRejected: false };
  }
  const implausible = plausibilityProblems(run);
  const inputRejected =
    implausible.length > 0 || run.data.problems.length > 0 || run.data.publishers.some((p) => p.problems.length > 0);
  const aborted = run.data.publishers.filter((p) => p.aborted !== null);
  if (aborted.length > 0) {
    return {
      status: 'aborted',
      reasons: aborted.map((p) => `replica ${p.replica} aborted during ${p.aborted?.phase}: ${p.aborted?.reason}`),
      inputRejected,
    };
  }
  const reasons: string[] = [...run.data.problems, ...implausible];
  for (let r = 0; r < replicas; r++) {
    const p = run.publisher(r);
    if (p === undefined) reasons.push(`replica ${r}: no messages received`);
    else reasons.push(...publisherProblems(p, run.plan.configHash));
  }
  if (reasons.length > 0) return { status: 'incomplete', reasons, inputRejected };
  const failed = allFailed(run);
  if (failed !== null) return { status: 'failed', reasons: [failed], inputRejected };
  return { status: 'complete', reasons, inputRejected };
}
