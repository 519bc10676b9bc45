// Kubernetes Events about an experiment, recorded in the background and rate-limited per experiment
// like client-go's EventSourceObjectSpamFilter (status and the artifact keep every run).
import type { Logger } from '../lib/log.ts';
import type { ExperimentObject, KubeWriter } from './kube.ts';

/**
 * A token bucket per experiment: a burst of EVENT_BURST, then one event per EVENT_REFILL_MS. Without
 * it 200 runs finishing in one pass meant 200 Event creates (each an API write) per pass.
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

  get size(): number {
    return this.buckets.size;
  }
}

export class ExperimentEvents {
  private readonly budget = new EventBudget();

  constructor(
    private readonly writer: KubeWriter,
    private readonly log: Logger,
    private readonly nowMs: () => number,
  ) {}

  /** Records the Event unless the experiment's budget is spent; never throws (a lost Event is logged). */
  async record(obj: ExperimentObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    if (!this.budget.take(obj.metadata?.uid ?? '', this.nowMs())) return;
    try {
      await this.writer.recordEvent(obj, type, reason, message);
    } catch (err) {
      this.log.warn({ err, reason }, 'could not record event');
    }
  }

  forget(uid: string): void {
    this.budget.forget(uid);
  }

  retained(): Record<string, number> {
    return { eventBudgets: this.budget.size };
  }
}
