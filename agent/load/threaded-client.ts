// The streaming client spread over worker threads. One event loop handles every chunk of every
// stream it owns, so with hundreds of streams the chunks that arrive in one engine step queue
// behind each other and the last one's timestamp is late by the others' parsing time. Each thread
// here owns a share of the streams (the least busy thread gets the next request), so that queue
// stays short; the main thread only sees one message per first token and one per result.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { InvalidInputError, LlemError } from '../../lib/errors.ts';
import {
  onAbortOf,
  StreamingClient,
  type ClientOptions,
  type RequestHooks,
  type RequestResult,
  type StreamRequest,
} from './client.ts';
import type { RequestSender, Workload } from './generator.ts';

export type ClientThreadRequest =
  | { type: 'send'; id: number; req: StreamRequest; firstToken: boolean }
  | { type: 'abort'; id: number }
  | { type: 'loop'; id: number; reset: boolean }
  | { type: 'warm'; id: number; connections: number; path: string }
  | { type: 'close' };

export type ClientThreadReply =
  | { type: 'first'; id: number }
  | { type: 'result'; id: number; result: RequestResult }
  | { type: 'loop'; id: number; p99Ms: number }
  | { type: 'warmed'; id: number; connections: number };

/**
 * From source (tsx) the worker is client-worker.ts beside this file; a bundle ships it as a second
 * entry point, `agent-client-worker.mjs`, next to the bundle file (scripts/bundle.mjs).
 */
const WORKER_URL = import.meta.url.endsWith('.ts')
  ? new URL('./client-worker.ts', import.meta.url)
  : new URL('./agent-client-worker.mjs', import.meta.url);

/** Streams one thread handles before another is worth its start-up and memory. */
export const STREAMS_PER_THREAD = 128;

export interface LoadSender extends RequestSender {
  /** The client threads in use (0: streams run on the calling thread). */
  readonly threads: number;
  /**
   * Event-loop delay p99 (ms) of each loop that reads the streams; reset after. The first call
   * starts the measurement (it costs a 1 ms timer, so a measuring agent never pays for it).
   */
  loopDelayP99Ms(reset?: boolean): Promise<number[]>;
  close(): void;
}

interface Pending {
  req: StreamRequest;
  sentMs: number;
  resolve: (r: RequestResult) => void;
  reject: (e: Error) => void;
  hooks: RequestHooks | undefined;
  thread: Thread;
  /** Stops listening for the stop signal. */
  unlisten: () => void;
}

interface Thread {
  worker: Worker;
  inFlight: number;
  failure: Error | undefined;
}

export class ThreadedClient implements LoadSender {
  private readonly pool: Thread[];
  private readonly pending = new Map<number, Pending>();
  /** Replies awaited from a thread (loop delay, warmed connections); answered NaN if the thread dies. */
  private readonly loopWaits = new Map<number, { thread: Thread; resolve: (value: number) => void }>();
  private nextId = 1;
  private closed = false;

  constructor(opts: ClientOptions, threads: number) {
    if (!Number.isInteger(threads) || threads < 1)
      throw new LlemError('LLEM_E_RUN', `client threads must be a whole number >= 1, got ${threads}`);
    this.pool = Array.from({ length: threads }, () => this.spawn(opts));
  }

  get threads(): number {
    return this.pool.length;
  }

  private spawn(options: ClientOptions): Thread {
    const worker = new Worker(WORKER_URL, { workerData: { options, mainTimeOrigin: performance.timeOrigin } });
    const thread: Thread = { worker, inFlight: 0, failure: undefined };
    worker.on('message', (m: ClientThreadReply) => this.onReply(m));
    const fail = (err: Error): void => {
      if (this.closed) return;
      thread.failure = new LlemError('LLEM_E_RUN', `load client thread stopped: ${err.message}`, { cause: err });
      for (const [id, w] of this.loopWaits) {
        if (w.thread !== thread) continue;
        this.loopWaits.delete(id);
        w.resolve(NaN);
      }
      for (const [id, p] of this.pending) {
        if (p.thread !== thread) continue;
        this.pending.delete(id);
        p.unlisten();
        p.reject(thread.failure);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    return thread;
  }

  private onReply(m: ClientThreadReply): void {
    if (m.type === 'loop' || m.type === 'warmed') {
      this.loopWaits.get(m.id)?.resolve(m.type === 'loop' ? m.p99Ms : m.connections);
      this.loopWaits.delete(m.id);
      return;
    }
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    if (m.type === 'first') {
      p.hooks?.onFirstToken?.();
      return;
    }
    this.pending.delete(m.id);
    p.thread.inFlight--;
    p.unlisten();
    p.resolve(m.result);
  }

  send(req: StreamRequest, signal?: AbortSignal, hooks?: RequestHooks): Promise<RequestResult> {
    if (this.closed) return Promise.reject(new LlemError('LLEM_E_RUN', 'load client is closed'));
    const live = this.pool.filter((t) => t.failure === undefined);
    if (live.length === 0)
      return Promise.reject(this.pool[0]?.failure ?? new LlemError('LLEM_E_RUN', 'no load client thread'));
    const thread = live.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => thread.worker.postMessage({ type: 'abort', id } satisfies ClientThreadRequest);
      const unlisten = signal === undefined ? (): void => undefined : onAbortOf(signal, onAbort);
      this.pending.set(id, { req, sentMs: performance.now(), resolve, reject, hooks, thread, unlisten });
      thread.inFlight++;
      thread.worker.postMessage({
        type: 'send',
        id,
        req,
        firstToken: hooks?.onFirstToken !== undefined,
      } satisfies ClientThreadRequest);
      if (signal?.aborted === true) onAbort();
    });
  }

  /**
   * Each thread warms its share of the connections: requests go to the least busy thread (ties to
   * the first), so with n streams thread i holds ceil((n - i) / threads) of them.
   */
  async warm(connections: number, path: string): Promise<number> {
    const n = this.pool.length;
    const warmed = await Promise.all(
      this.pool.map((t, i) => {
        const share = Math.ceil((connections - i) / n);
        if (share <= 0 || t.failure !== undefined || this.closed) return Promise.resolve(0);
        return new Promise<number>((resolve) => {
          const id = this.nextId++;
          this.loopWaits.set(id, { thread: t, resolve });
          t.worker.postMessage({ type: 'warm', id, connections: share, path } satisfies ClientThreadRequest);
        });
      }),
    );
    return warmed.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  }

  loopDelayP99Ms(reset = false): Promise<number[]> {
    return Promise.all(
      this.pool.map((t) =>
        t.failure !== undefined || this.closed
          ? Promise.resolve(NaN)
          : new Promise<number>((resolve) => {
              const id = this.nextId++;
              this.loopWaits.set(id, { thread: t, resolve });
              t.worker.postMessage({ type: 'loop', id, reset } satisfies ClientThreadRequest);
            }),
      ),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.pool) {
      t.worker.postMessage({ type: 'close' } satisfies ClientThreadRequest);
      void t.worker.terminate();
    }
    for (const w of this.loopWaits.values()) w.resolve(NaN);
    this.loopWaits.clear();
    // Whoever still awaits a request gets it back as cancelled, never a promise that hangs.
    const now = performance.now();
    for (const p of this.pending.values()) {
      p.unlisten();
      p.resolve({
        ok: false,
        errorClass: 'cancelled',
        error: 'load client closed',
        startMs: p.sentMs,
        endMs: now,
        ttftMs: null,
        itlMs: [],
        e2eMs: now - p.sentMs,
        tpotMs: null,
        inputTokens: p.req.promptTokens,
        outputTokens: 0,
      });
    }
    this.pending.clear();
  }
}

/** The in-process client behind the same interface (few streams: no thread is worth starting). */
export class InlineClient extends StreamingClient implements LoadSender {
  readonly threads = 0;
  private loop: ReturnType<typeof monitorEventLoopDelay> | null = null;

  loopDelayP99Ms(reset = false): Promise<number[]> {
    if (this.loop === null) {
      this.loop = monitorEventLoopDelay({ resolution: 1 });
      this.loop.enable();
    }
    const p99 = this.loop.percentile(99) / 1e6;
    if (reset) this.loop.reset();
    return Promise.resolve([p99]);
  }

  override close(): void {
    this.loop?.disable();
    super.close();
  }
}

/** The most streams the workload keeps open at once (rate mode: what ~30 s of arrivals could hold). */
export function peakStreams(w: Pick<Workload, 'mode' | 'concurrency' | 'ratePerSecond'>, requests: number): number {
  if (w.mode === 'concurrency') return w.concurrency;
  if (w.mode === 'offline') return requests;
  return Math.min(requests, Math.ceil(w.ratePerSecond * 30));
}

/**
 * Threads for a number of streams: one per STREAMS_PER_THREAD, at most the cores less two (the
 * agent's main loop and the sampler thread), at most 8; `override` (LLEM_CLIENT_THREADS) wins.
 * 0 or 1 means the calling thread reads the streams itself.
 */
export function clientThreadsFor(streams: number, cores = availableParallelism(), override?: string): number {
  if (override !== undefined && override !== '') {
    const n = Number(override);
    if (!Number.isInteger(n) || n < 0 || n > 64) {
      throw new InvalidInputError([
        {
          file: 'environment',
          path: 'LLEM_CLIENT_THREADS',
          message: `must be a whole number from 0 to 64 (0 or 1: no extra thread), got "${override}"`,
        },
      ]);
    }
    return n;
  }
  return Math.min(Math.ceil(streams / STREAMS_PER_THREAD), Math.max(1, Math.min(8, cores - 2)));
}

export function createLoadSender(opts: ClientOptions, threads: number): LoadSender {
  return threads <= 1 ? new InlineClient(opts) : new ThreadedClient(opts, threads);
}
