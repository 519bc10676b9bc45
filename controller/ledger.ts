// What the controller knows from the wire, per experiment: per publisher (run, attempt, replica)
// the sequence numbers seen, the summary, the energy marks and the readiness for the start barrier.
// A run attempt counts only when every replica's summary arrived and its message count matches the
// sequence numbers received (no gaps): partial attempts are never folded into results.
// Deterministic and serialisable (sorted keys), so it can be checkpointed next to the aggregator's.
import type { WireMessage } from '../api/protocol.ts';

export interface PublisherRecord {
  seqs: number[];
  ready: boolean;
  simulated: boolean;
  summarySeq?: number;
  messagesBefore?: number;
  aborted?: string;
  outputTokens?: number;
  inputTokens?: number;
  requestsOk?: number;
  requestsFailed?: number;
  windowStartMs?: number;
  windowEndMs?: number;
  /** Energy counter per GPU at windowStart / windowEnd, millijoules. */
  startMj: Record<string, number>;
  endMj: Record<string, number>;
}

export interface RunAttemptResult {
  /** Rough counter delta for bookkeeping; NaN when a counter reset or a boundary is missing. */
  energyJoules: number;
  outputTokens: number;
  inputTokens: number;
  requestsOk: number;
  windowSeconds: number;
  simulated: boolean;
}

export type ApplyOutcome = 'applied' | 'duplicate';

export function publisherKey(runId: string, attempt: number, replica: number): string {
  return `${runId}/${attempt}/${replica}`;
}

export class RunLedger {
  private readonly publishers = new Map<string, PublisherRecord>();
  private readonly startSignalled = new Set<string>();

  apply(m: WireMessage): ApplyOutcome {
    const key = publisherKey(m.runId, m.attempt, m.replica);
    let rec = this.publishers.get(key);
    if (rec === undefined) {
      rec = { seqs: [], ready: false, simulated: m.simulated, startMj: {}, endMj: {} };
      this.publishers.set(key, rec);
    }
    if (rec.seqs.includes(m.seq)) return 'duplicate';
    rec.seqs.push(m.seq);
    rec.simulated ||= m.simulated;
    applyKind(rec, m);
    return 'applied';
  }

  /** True when every replica of the attempt has said `ready` (start barrier). */
  allReady(runId: string, attempt: number, replicas: number): boolean {
    for (let r = 0; r < replicas; r++) if (this.publishers.get(publisherKey(runId, attempt, r))?.ready !== true) return false;
    return true;
  }

  markSignalled(runId: string, attempt: number): boolean {
    const k = `${runId}/${attempt}`;
    if (this.startSignalled.has(k)) return false;
    this.startSignalled.add(k);
    return true;
  }

  /** The first abort reason of any replica of this attempt, if one aborted. */
  aborted(runId: string, attempt: number, replicas: number): string | undefined {
    for (let r = 0; r < replicas; r++) {
      const reason = this.publishers.get(publisherKey(runId, attempt, r))?.aborted;
      if (reason !== undefined) return `replica ${r} aborted: ${reason}`;
    }
    return undefined;
  }

  /** The attempt's totals when its data is complete for every replica, else null. */
  complete(runId: string, attempt: number, replicas: number): RunAttemptResult | null {
    const recs: PublisherRecord[] = [];
    for (let r = 0; r < replicas; r++) {
      const rec = this.publishers.get(publisherKey(runId, attempt, r));
      if (rec === undefined || !isComplete(rec)) return null;
      recs.push(rec);
    }
    return totals(recs);
  }

  /** The lowest attempt of `runId` whose data is complete (a restarted controller finds it here). */
  completedAttempt(runId: string, maxAttempt: number, replicas: number): { attempt: number; result: RunAttemptResult } | null {
    for (let a = 0; a <= maxAttempt; a++) {
      const result = this.complete(runId, a, replicas);
      if (result !== null) return { attempt: a, result };
    }
    return null;
  }

  serialize(): Uint8Array {
    const publishers = [...this.publishers.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const body = { v: 1, publishers, startSignalled: [...this.startSignalled].sort() };
    return new TextEncoder().encode(JSON.stringify(body));
  }

  static restore(bytes: Uint8Array): RunLedger {
    const body = JSON.parse(new TextDecoder().decode(bytes)) as { publishers: [string, PublisherRecord][]; startSignalled: string[] };
    const ledger = new RunLedger();
    for (const [k, v] of body.publishers) ledger.publishers.set(k, v);
    for (const k of body.startSignalled) ledger.startSignalled.add(k);
    return ledger;
  }
}

function applyKind(rec: PublisherRecord, m: WireMessage): void {
  switch (m.kind) {
    case 'ready':
      rec.ready = true;
      return;
    case 'aborted':
      rec.aborted = m.reason;
      return;
    case 'telemetry':
      if (m.mark === 'windowStart' || m.mark === 'windowEnd') {
        const target = m.mark === 'windowStart' ? rec.startMj : rec.endMj;
        for (const s of m.samples) if (s.energyMillijoules !== null) target[s.gpuUuid] = s.energyMillijoules;
      }
      return;
    case 'summary':
      rec.summarySeq = m.seq;
      rec.messagesBefore = m.messagesBefore;
      rec.outputTokens = m.outputTokens;
      rec.inputTokens = m.inputTokens;
      rec.requestsOk = m.requestsOk;
      rec.requestsFailed = m.requestsFailed;
      rec.windowStartMs = m.windowStartMs;
      rec.windowEndMs = m.windowEndMs;
      return;
    default:
      return;
  }
}

function isComplete(rec: PublisherRecord): boolean {
  if (rec.summarySeq === undefined || rec.messagesBefore === undefined || rec.aborted !== undefined) return false;
  const before = rec.seqs.filter((s) => s < (rec.summarySeq ?? 0)).length;
  return before === rec.messagesBefore && rec.summarySeq === rec.messagesBefore + 1;
}

function totals(recs: PublisherRecord[]): RunAttemptResult {
  let energyMj = 0;
  let outputTokens = 0;
  let inputTokens = 0;
  let requestsOk = 0;
  let windowMs = 0;
  for (const r of recs) {
    // A counter that went backwards (reset/wrap) or a missing boundary makes this rough total
    // unknown (NaN), never a silent undercount; the Aggregator's figures are the ones reported.
    for (const [gpu, end] of Object.entries(r.endMj)) {
      const start = r.startMj[gpu];
      energyMj += start !== undefined && end >= start ? end - start : Number.NaN;
    }
    outputTokens += r.outputTokens ?? 0;
    inputTokens += r.inputTokens ?? 0;
    requestsOk += r.requestsOk ?? 0;
    windowMs = Math.max(windowMs, (r.windowEndMs ?? 0) - (r.windowStartMs ?? 0));
  }
  return { energyJoules: energyMj / 1000, outputTokens, inputTokens, requestsOk, windowSeconds: windowMs / 1000, simulated: recs.some((r) => r.simulated) };
}
