// One `llem.run.attempt` span per run attempt in the cluster (ADR 0018): it starts when the
// attempt's pods are created and ends when the attempt's result is applied to the run table
// (succeeded, failed, retried, suspended), however many reconciles lie between. The open spans live
// in memory, keyed by experiment uid / run / attempt; the agents' spans are their children (the pods
// get the span's traceparent). A restarted controller has lost the open span: it then records the
// attempt when its result is applied, started at the run table's startTime (the agents' spans still
// name the lost span as their parent).
import type { RunSummary } from '../api/status.ts';
import {
  context,
  experimentContext,
  SpanStatusCode,
  trace,
  tracer,
  type Attributes,
  type Context,
  type Span,
} from '../lib/telemetry/index.ts';

export interface AttemptResult {
  outcome: 'succeeded' | 'failed' | 'retrying' | 'suspended' | 'deleted';
  message?: string;
}

export class AttemptSpans {
  /** `<uid>/<runId>/<attempt>` -> the open span. */
  private readonly open = new Map<string, Span>();

  /** Open attempt spans (runs in flight), for tests and bounds. */
  get size(): number {
    return this.open.size;
  }

  /** The context pods of this attempt are rendered in: its span, started now on first use. */
  started(uid: string, runId: string, attempt: number, attributes: Record<string, string | number> = {}): Context {
    const key = `${uid}/${runId}/${attempt}`;
    let span = this.open.get(key);
    if (span === undefined) {
      const attrs: Attributes = {
        'llem.experiment.uid': uid,
        'llem.run.id': runId,
        'llem.run.attempt': attempt,
        ...attributes,
      };
      span = tracer().startSpan('llem.run.attempt', { attributes: attrs }, experimentContext(uid));
      // A no-op span (telemetry off or not sampled) is not kept: nothing to end later.
      if (span.isRecording()) this.open.set(key, span);
    }
    return trace.setSpan(context.active(), span);
  }

  /** Ends the spans of attempts that were running in `before` and are not running the same attempt in `after`. */
  applied(uid: string, before: readonly RunSummary[], after: readonly RunSummary[], now: Date): void {
    const next = new Map(after.map((r) => [r.id, r]));
    for (const prev of before) {
      if (prev.phase !== 'Running') continue;
      const cur = next.get(prev.id);
      if (cur === undefined || (cur.phase === 'Running' && cur.attempt === prev.attempt)) continue;
      this.end(uid, prev, resultOf(prev, cur), now);
    }
  }

  /** The experiment is gone (or its pods could not be rendered): its open attempts end with it. */
  forget(uid: string, outcome: 'deleted' | 'failed', now: Date): void {
    for (const [key, span] of this.open) {
      if (!key.startsWith(`${uid}/`)) continue;
      this.open.delete(key);
      span.setAttribute('llem.run.outcome', outcome);
      span.end(now);
    }
  }

  private end(uid: string, prev: RunSummary, result: AttemptResult, now: Date): void {
    const key = `${uid}/${prev.id}/${prev.attempt}`;
    let span = this.open.get(key);
    this.open.delete(key);
    if (span === undefined) {
      // Started before this process (restart, failover): the run table knows when.
      const startTime = prev.startTime === undefined ? now : new Date(prev.startTime);
      const attributes: Attributes = {
        'llem.experiment.uid': uid,
        'llem.run.id': prev.id,
        'llem.run.attempt': prev.attempt,
        'llem.run.start_from': 'run-table',
      };
      span = tracer().startSpan('llem.run.attempt', { startTime, attributes }, experimentContext(uid));
    }
    span.setAttribute('llem.run.outcome', result.outcome);
    if (result.message !== undefined) span.setAttribute('llem.run.error', result.message);
    if (result.outcome === 'failed' || result.outcome === 'retrying') {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        ...(result.message !== undefined ? { message: result.message } : {}),
      });
    }
    span.end(now);
  }
}

function resultOf(prev: RunSummary, cur: RunSummary): AttemptResult {
  if (cur.phase === 'Succeeded') return { outcome: 'succeeded' };
  const message = cur.message;
  if (cur.phase === 'Failed') return { outcome: 'failed', ...(message !== undefined ? { message } : {}) };
  if (message?.includes('stopped by suspend') === true) return { outcome: 'suspended', message };
  return { outcome: cur.attempt > prev.attempt ? 'retrying' : 'failed', ...(message !== undefined ? { message } : {}) };
}
