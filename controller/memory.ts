// Giving memory back after a large experiment is released. Its feed (Aggregator state, run table,
// results, status and artifact buffers) is garbage once released, but V8 keeps the heap pages it grew to
// (~400 MB for 2,000 runs, ~1 GB for 20,000) until a memory-reducing collection, which an idle-looking
// controller (informer resyncs, timers) may not get for a long time. So the controller asks for one
// itself, once the release settled and outside any reconcile: a pause of ~0.1-0.6 s, at most once per
// RECLAIM_SPACING_MS, only after experiments of RECLAIM_MIN_RUNS runs or more (ADR 0028). The release's
// aftermath (thousands of pod deletions, their watch events, the artifact) allocates for a while after
// it and V8 grows its heap again: FOLLOW_UPS more reclaims follow, RECLAIM_SPACING_MS apart (ADR 0034).
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../lib/log.ts';

export const RECLAIM_MIN_RUNS = 1000;
/** At most one reclaim this often: after the feed's release, and again once the experiment's pods are gone. */
const RECLAIM_SPACING_MS = 10_000;
const FOLLOW_UPS = 3;

type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** V8's gc(), exposed at run time (the same as --expose-gc); null where the runtime refuses. */
function exposedGc(): Gc | null {
  const existing = (globalThis as { gc?: Gc }).gc;
  if (existing !== undefined) return existing;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as Gc;
  } catch {
    return null;
  }
}

type Trim = () => number;

/**
 * glibc's malloc_trim(0), bound with koffi (already the agent's NVML binding): returns free pages of
 * every malloc arena to the system, not only the top of the main one (what MALLOC_TRIM_THRESHOLD_
 * does). Native memory freed after a release (HTTP/2 and TLS buffers of thousands of requests, watch
 * decoding) otherwise stays resident as holes between live blocks (ADR 0035: RSS after a release).
 * Null off glibc (musl, macOS) or where koffi cannot load: then nothing is trimmed.
 */
function nativeTrim(): Trim | null {
  if (process.platform !== 'linux') return null;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    return () => trim(0);
  } catch {
    return null;
  }
}

export class MemoryReclaimer {
  private lastMs = -Infinity;
  /** Reclaims still due after the last large release. */
  private followUps = 0;
  private timer: NodeJS.Timeout | undefined;
  private gc: Gc | null | undefined;
  private trim: Trim | null | undefined;
  reclaims = 0;

  constructor(private readonly log: Logger) {}

  /** An experiment of `runs` runs was released: reclaim soon (coalesced, spaced). */
  released(runs: number): void {
    if (runs < RECLAIM_MIN_RUNS) return;
    this.followUps = FOLLOW_UPS;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const waitMs = Math.max(1000, this.lastMs + RECLAIM_SPACING_MS - Date.now());
    this.timer = setTimeout(() => this.reclaim(), waitMs);
    this.timer.unref();
  }

  private reclaim(): void {
    this.timer = undefined;
    this.lastMs = Date.now();
    if (this.followUps > 0) {
      this.followUps -= 1;
      this.schedule();
    }
    this.gc ??= exposedGc();
    if (this.gc === null) return;
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    this.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const afterGc = process.memoryUsage().rss;
    this.trim ??= nativeTrim();
    this.trim?.();
    this.reclaims += 1;
    this.log.info(
      {
        rssBeforeMB: Math.round(before / 1e6),
        rssAfterGcMB: Math.round(afterGc / 1e6),
        rssAfterMB: Math.round(process.memoryUsage().rss / 1e6),
        trimmed: this.trim !== null,
      },
      `released experiment's memory given back in ${Math.round(performance.now() - t0)} ms`,
    );
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
