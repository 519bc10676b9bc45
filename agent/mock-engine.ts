// The mock server's batching engine: requests wait for a batch slot, get their first token after an
// injected TTFT, then every engine step (one injected ITL) emits one token to each running stream —
// the shape of a continuous-batching server, cheap enough for 500+ streams on one core.
import { seededRng, standardNormal, type Rng } from './load/prompts.ts';

/** Streams written per slice of an engine step before the event loop is let through. */
export const STEP_SLICE = 32;

export interface DelayDistribution {
  meanMs: number;
  /** Normal spread, truncated at zero; 0 (default) = constant. */
  stdMs?: number;
}

export function drawDelayMs(d: DelayDistribution, rng: Rng): number {
  const std = d.stdMs ?? 0;
  if (std <= 0) return d.meanMs;
  return Math.max(0, d.meanMs + std * standardNormal(rng));
}

/** One streamed response, seen by the engine. */
export interface MockSequence {
  tokensLeft: number;
  emitted: number;
  /** Write one token; return false to drop the sequence (client gone, fault injected). */
  token(index: number): boolean;
  finish(): void;
}

export class MockEngine {
  private readonly queue: MockSequence[] = [];
  private readonly running = new Set<MockSequence>();
  private prefilling = 0;
  private stepTimer: NodeJS.Timeout | undefined;
  /** A step is writing its slices; the next is scheduled when it ends. */
  private stepping = false;
  private sliceImmediate: NodeJS.Immediate | undefined;
  /** performance.now() when the last step began; null while no stream has run yet or after an idle spell. */
  private lastStepStartMs: number | null = null;
  private readonly rng: Rng;
  private readonly opts: { ttft: DelayDistribution; itl: DelayDistribution; maxBatch: number };
  private readonly prefillTimers = new Set<NodeJS.Timeout>();
  tokensEmitted = 0;
  /** Wall-clock time (ms, sub-ms precision) of every token written, ascending; null when not recorded. */
  private readonly emittedAtMs: EmissionLog | null;

  constructor(opts: {
    ttft: DelayDistribution;
    itl: DelayDistribution;
    maxBatch: number;
    seed: number;
    recordEmissions?: boolean;
  }) {
    this.opts = opts;
    this.rng = seededRng(opts.seed);
    this.emittedAtMs = opts.recordEmissions === true ? new EmissionLog() : null;
  }

  /**
   * Tokens this engine wrote in [fromMs, toMs) (wall clock): the server's own count, the reference a
   * client's by-arrival count is checked against. Null unless recordEmissions was set.
   */
  tokensEmittedBetween(fromMs: number, toMs: number): number | null {
    const log = this.emittedAtMs;
    if (log === null) return null;
    return log.countBefore(toMs) - log.countBefore(fromMs);
  }

  get inFlight(): number {
    return this.running.size + this.prefilling + this.queue.length;
  }

  submit(seq: MockSequence): void {
    this.queue.push(seq);
    this.admit();
  }

  drop(seq: MockSequence): void {
    this.running.delete(seq);
    const i = this.queue.indexOf(seq);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private admit(): void {
    while (this.queue.length > 0 && this.running.size + this.prefilling < this.opts.maxBatch) {
      const seq = this.queue.shift() as MockSequence;
      this.prefilling++;
      const timer = setTimeout(
        () => {
          this.prefillTimers.delete(timer);
          this.prefilling--;
          this.emit(seq);
          this.admit();
        },
        drawDelayMs(this.opts.ttft, this.rng),
      );
      this.prefillTimers.add(timer);
    }
  }

  /** First token right after prefill; later ones on engine steps. */
  private emit(seq: MockSequence): void {
    if (!this.tokenOf(seq)) return;
    this.running.add(seq);
    this.scheduleStep();
  }

  private tokenOf(seq: MockSequence): boolean {
    if (seq.tokensLeft <= 0) {
      seq.finish();
      return false;
    }
    if (!seq.token(seq.emitted)) {
      this.drop(seq);
      return false;
    }
    seq.emitted++;
    seq.tokensLeft--;
    this.tokensEmitted++;
    this.emittedAtMs?.push(wallClockMs());
    if (seq.tokensLeft > 0) return true;
    seq.finish();
    return false;
  }

  /**
   * The next step is due one ITL after the last one started (as an engine's steps follow each other
   * whatever its API server is doing), not one ITL after its writes ended: timing from the end made
   * the token period ITL plus the step's write time, and slicing (which lets other work in between
   * slices) stretched it further, so the mock's rate fell with the number of streams (12-13k against
   * 15.6k tokens/s at 512 streams once sliced).
   */
  private scheduleStep(): void {
    if (this.stepTimer !== undefined || this.stepping || this.running.size === 0) return;
    const itl = drawDelayMs(this.opts.itl, this.rng);
    const since = this.lastStepStartMs === null ? 0 : performance.now() - this.lastStepStartMs;
    this.stepTimer = setTimeout(() => this.step(), Math.max(0, itl - since));
  }

  /**
   * One engine step: a token to every running stream, written STEP_SLICE streams at a time with the
   * event loop let through between slices (as an asyncio API server interleaves its writes with new
   * requests). Written in one go, a step over 512 loopback sockets held this process for ~15 ms, and a
   * request arriving meanwhile was stamped received that much late: server queueing that its own TTFT
   * left out and a benchmark then charged to the client.
   */
  private step(): void {
    this.stepTimer = undefined;
    this.stepping = true;
    this.lastStepStartMs = performance.now();
    this.writeSlice([...this.running], 0);
  }

  private writeSlice(batch: MockSequence[], from: number): void {
    const to = Math.min(batch.length, from + STEP_SLICE);
    for (let i = from; i < to; i++) {
      const seq = batch[i] as MockSequence;
      // Dropped (client gone) since the step began: nothing to write.
      if (this.running.has(seq) && !this.tokenOf(seq)) this.running.delete(seq);
    }
    if (to < batch.length) {
      this.sliceImmediate = setImmediate(() => this.writeSlice(batch, to));
      return;
    }
    this.sliceImmediate = undefined;
    this.stepping = false;
    // No stream left: the cadence ends, and the next stream's first step comes a whole ITL after its first token.
    if (this.running.size === 0) this.lastStepStartMs = null;
    this.admit();
    this.scheduleStep();
  }

  stop(): void {
    clearImmediate(this.sliceImmediate);
    clearTimeout(this.stepTimer);
    for (const t of this.prefillTimers) clearTimeout(t);
    this.prefillTimers.clear();
    this.running.clear();
    this.queue.length = 0;
  }
}

/**
 * performance.timeOrigin, read once: its getter recomputes (and allocates) the value on every call,
 * and the engine stamps every token it writes.
 */
const TIME_ORIGIN_MS = performance.timeOrigin;

/** Wall clock with sub-millisecond precision (Date.now() alone is whole milliseconds). */
export function wallClockMs(): number {
  return TIME_ORIGIN_MS + performance.now();
}

/** Entries per block of the emission log. */
const LOG_BLOCK = 1 << 16;

/**
 * Ascending times in fixed blocks of doubles off the V8 heap. One growing array of every token's time
 * (over a million at 20k tokens/s) was copied whole, on the heap, each time it grew: work and GC pauses
 * of the mock's own bookkeeping, in the process whose pauses leave requests unread (stamped late).
 */
export class EmissionLog {
  private readonly blocks: Float64Array[] = [];
  private last: Float64Array | null = null;
  private n = 0;

  get length(): number {
    return this.blocks.length === 0 ? 0 : (this.blocks.length - 1) * LOG_BLOCK + this.n;
  }

  push(t: number): void {
    if (this.last === null || this.n === LOG_BLOCK) {
      this.last = new Float64Array(LOG_BLOCK);
      this.blocks.push(this.last);
      this.n = 0;
    }
    this.last[this.n++] = t;
  }

  /** How many entries are below `x`. */
  countBefore(x: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (((this.blocks[Math.floor(mid / LOG_BLOCK)] as Float64Array)[mid % LOG_BLOCK] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
