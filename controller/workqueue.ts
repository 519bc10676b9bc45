// A controller-runtime style work queue: keys (namespace/name), never events.
// - Per-key dedup: adding a queued key again is a no-op.
// - Never one key twice at once: a key added while being processed is marked dirty and queued again
//   when its worker finishes.
// - Rate-limited retries: max(per-item exponential backoff, global token bucket).
// - Timed requeues (`addAfter`) keep only the earliest pending timer per key.

export interface RateLimiterOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Global bucket: sustained retries per second, and burst size. */
  bucketQps: number;
  bucketBurst: number;
}

export const DEFAULT_RATE_LIMITS: RateLimiterOptions = {
  baseDelayMs: 5,
  maxDelayMs: 1000 * 1000,
  bucketQps: 10,
  bucketBurst: 100,
};

/** max(per-item exponential, global token bucket), like client-go's DefaultControllerRateLimiter. */
export class RetryRateLimiter {
  private readonly failures = new Map<string, number>();
  private tokens: number;
  private lastRefillMs: number;
  private nextFreeMs = 0;

  constructor(
    private readonly opts: RateLimiterOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = opts.bucketBurst;
    this.lastRefillMs = now();
  }

  /** Delay before the next retry of `key`; counts one more failure. */
  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const itemDelay = Math.min(this.opts.baseDelayMs * 2 ** n, this.opts.maxDelayMs);
    return Math.max(itemDelay, this.bucketDelay());
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  private bucketDelay(): number {
    const now = this.now();
    this.tokens = Math.min(
      this.opts.bucketBurst,
      this.tokens + ((now - this.lastRefillMs) / 1000) * this.opts.bucketQps,
    );
    this.lastRefillMs = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    const interval = 1000 / this.opts.bucketQps;
    this.nextFreeMs = Math.max(this.nextFreeMs, now) + interval;
    return this.nextFreeMs - now;
  }
}

export interface WorkQueueStats {
  depth: number;
  processing: number;
  delayed: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  readonly limiter: RetryRateLimiter;
  /** When each key was first queued (for queue latency); cleared when a worker takes it. */
  private readonly addedAt = new Map<string, number>();

  constructor(limits: RateLimiterOptions = DEFAULT_RATE_LIMITS) {
    this.limiter = new RetryRateLimiter(limits);
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    if (!this.addedAt.has(key)) this.addedAt.set(key, Date.now());
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  addRateLimited(key: string): number {
    const delay = this.limiter.when(key);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  /** Next key to process (marks it processing), or undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Milliseconds since the key was queued (and clears it); for the queue-latency metric. */
  takeQueuedMs(key: string): number {
    const at = this.addedAt.get(key);
    this.addedAt.delete(key);
    return at === undefined ? 0 : Date.now() - at;
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  stats(): WorkQueueStats {
    return { depth: this.queue.length, processing: this.processing.size, delayed: this.timers.size };
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
