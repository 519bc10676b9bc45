// A run is complete only when every planned replica's summary has arrived, its sequence numbers
// are contiguous up to the summary, the per-kind counts match what the summary says was sent,
// and the sketch totals match the summary's totals. Anything else is reported with reasons.
import type { PublisherState } from './state.ts';
import type { RunState } from './run-state.ts';

export type RunStatus = 'pending' | 'complete' | 'incomplete' | 'aborted';

export interface Completeness {
  status: RunStatus;
  /** Sentences saying what is missing or wrong; empty when complete. */
  reasons: string[];
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
  if (p.contiguousUpTo < s.seq) out.push(`${who}: messages missing: seq ${p.contiguousUpTo + 1} is absent, the summary is seq ${s.seq}`);
  if (s.seq !== s.messagesBefore + 1) out.push(`${who}: summary seq ${s.seq} does not follow its ${s.messagesBefore} earlier messages`);
  const after = p.ahead.filter((q) => q > s.seq).length + Math.max(0, p.contiguousUpTo - s.seq);
  if (after > 0) out.push(`${who}: ${after} message(s) arrived after the summary`);
  for (const k of COUNTED_KINDS) {
    if (p.received[k] !== s.countsByKind[k]) out.push(`${who}: ${p.received[k]} ${k} message(s) received, the summary says ${s.countsByKind[k]} were sent`);
  }
  for (const k of TOTALS) {
    if (p[k] !== s[k]) out.push(`${who}: sketches add up to ${p[k]} ${k}, the summary says ${s[k]}`);
  }
  return out;
}

export function completeness(run: RunState | undefined, replicas: number): Completeness {
  if (run === undefined || run.data.publishers.length === 0) return { status: 'pending', reasons: ['no messages received yet'] };
  const aborted = run.data.publishers.filter((p) => p.aborted !== null);
  if (aborted.length > 0) {
    return {
      status: 'aborted',
      reasons: aborted.map((p) => `replica ${p.replica} aborted during ${p.aborted?.phase}: ${p.aborted?.reason}`),
    };
  }
  const reasons: string[] = [];
  for (let r = 0; r < replicas; r++) {
    const p = run.publisher(r);
    if (p === undefined) reasons.push(`replica ${r}: no messages received`);
    else reasons.push(...publisherProblems(p, run.plan.configHash));
  }
  return reasons.length === 0 ? { status: 'complete', reasons } : { status: 'incomplete', reasons };
}
