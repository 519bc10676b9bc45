// The measurement window: drive the workload, publish a sketch delta per time slice, and take the
// energy-counter marks at its boundaries (the whole workload, or only its steady state).
import type { Mark } from '../api/protocol.ts';
import type { RequestResult } from './load/client.ts';
import { runLoad, type RequestFactory, type RequestSender, type Workload } from './load/generator.ts';
import type { ClientHealthMonitor } from './client-health.ts';
import type { Publisher } from './publisher.ts';
import type { LatencySketch } from '../lib/sketch/types.ts';
import type { RequestSlo } from './slo.ts';
import { SliceRecorder, type SketchFactory, type WindowTotals } from './slices.ts';

export interface WindowOptions {
  publisher: Publisher;
  createSketch: SketchFactory;
  sender: RequestSender;
  workload: Workload;
  factory: RequestFactory;
  requests: number;
  minDurationMs: number;
  sliceMs: number;
  steadyState: boolean;
  signal: AbortSignal;
  /** Take and publish an energy-counter reading for a boundary. */
  mark: (m: Mark) => Promise<void>;
  onInFlight?: (n: number) => void;
  /** Samples the client's own health from the window's start to its end. */
  health?: ClientHealthMonitor;
  /** Latency SLO targets: each slice counts the requests that met all of them (agent/slo.ts). */
  slo?: RequestSlo;
}

export interface WindowResult {
  windowStartMs: number;
  windowEndMs: number;
  totals: WindowTotals;
  /** Requests completed outside the window (not in the sketches; their in-window tokens still count). */
  excluded: number;
  steadyStateReached: boolean;
  /** TTFT p50 (ms) of the requests completed in the window; null when none had a first token. */
  ttftP50Ms: number | null;
  /** The window's boundaries as wall-clock ms with sub-ms precision (what tokens were counted against). */
  windowStartPreciseMs: number;
  windowEndPreciseMs: number;
}

/**
 * The tokens of one request that arrived in [fromMs, toMs) (performance.now() clock). Output tokens
 * arrive with their chunks: chunk k at start + TTFT + the first k inter-chunk gaps; when the server's
 * usage says there were more tokens than chunks they are spread over the chunks in whole numbers.
 * Input tokens count where prefill finished, at the first token (at the end if none came).
 */
export function tokensWithin(
  r: RequestResult,
  fromMs: number,
  toMs: number,
): { inputTokens: number; outputTokens: number } {
  const inside = (t: number): boolean => t >= fromMs && t < toMs;
  const firstMs = r.ttftMs === null ? null : r.startMs + r.ttftMs;
  const inputTokens = inside(firstMs ?? r.endMs) ? r.inputTokens : 0;
  const chunks = firstMs === null ? 0 : r.itlMs.length + 1;
  if (chunks === 0) return { inputTokens, outputTokens: inside(r.endMs) ? r.outputTokens : 0 };
  let outputTokens = 0;
  let t = firstMs as number;
  for (let k = 0; k < chunks; k++) {
    if (k > 0) t += r.itlMs[k - 1] as number;
    if (!inside(t)) continue;
    outputTokens += Math.floor(((k + 1) * r.outputTokens) / chunks) - Math.floor((k * r.outputTokens) / chunks);
  }
  return { inputTokens, outputTokens };
}

/**
 * The window's accounting rule (DESIGN.md, ADR 0016): tokens count where their chunks arrived, so
 * tokens and the energy marks cover the same interval; a request's count and latencies belong to
 * the window if it completed inside it. Requests still streaming when the window closes are awaited:
 * their in-window tokens go into the last slice, published once the load is over.
 */
class MeasurementWindow {
  private recorder: SliceRecorder | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The load began draining: a steady-state window that has not opened by now never will. */
  private drained = false;
  /** First failed energy-counter mark; rethrown once the load is over (never left unhandled). */
  markError: unknown = undefined;
  startMs = 0;
  endMs = 0;
  /** The same boundaries on the performance.now() clock the request timings use. */
  openPerfMs = Infinity;
  closePerfMs = Infinity;
  excluded = 0;
  /** TTFT of the requests counted in the window, for the client-saturation threshold. */
  readonly ttft: LatencySketch;
  readonly marks: Promise<void>[] = [];
  private startMark: Promise<void> = Promise.resolve();
  private startMarked = false;
  private readonly o: WindowOptions;

  constructor(o: WindowOptions) {
    this.o = o;
    this.ttft = o.createSketch();
  }

  get opened(): boolean {
    return this.recorder !== null;
  }

  open(force = false): void {
    if (this.recorder !== null || (this.drained && !force)) return;
    this.startMs = Date.now();
    this.openPerfMs = performance.now();
    this.recorder = new SliceRecorder(this.o.createSketch, this.startMs, this.o.slo);
    this.o.health?.start();
    this.pushMark('windowStart');
    this.startMark = (this.marks.at(-1) ?? Promise.resolve()).then(() => {
      this.startMarked = true;
    });
    this.timer = setInterval(() => this.publishSlice(Date.now()), this.o.sliceMs);
  }

  private publishSlice(endMs: number): void {
    if (this.recorder === null) return;
    const slice = this.recorder.cut(endMs);
    // Publish failures surface at Publisher.drain(); the window itself keeps running.
    const send = (): void => void this.o.publisher.publish('sketch', slice).catch(() => undefined);
    // The windowStart mark goes out before any slice even when its energy read outlasts a slice period (a loaded
    // host): the slice is cut on time and published once the mark is. Awaited with the marks at the window's end.
    if (this.startMarked) send();
    else this.marks.push(this.startMark.then(send));
  }

  private pushMark(m: Mark): void {
    this.marks.push(
      this.o.mark(m).catch((err: unknown) => {
        this.markError ??= err;
      }),
    );
  }

  /** The window's end: the energy mark is taken now; the last slice waits for the streams in flight. */
  close(): void {
    if (this.recorder === null) {
      this.drained = true;
      return;
    }
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.endMs = Date.now();
    this.closePerfMs = performance.now();
    this.o.health?.stop();
    this.pushMark('windowEnd');
  }

  /** After the load: the last slice, ending at the window's end, with the late requests' in-window tokens. */
  finish(): void {
    if (this.recorder !== null) this.publishSlice(this.endMs);
  }

  add(r: RequestResult): void {
    if (this.recorder === null) {
      this.excluded++;
      return;
    }
    const t = tokensWithin(r, this.openPerfMs, this.closePerfMs);
    this.recorder.addTokens(t.inputTokens, t.outputTokens);
    if (r.endMs >= this.openPerfMs && r.endMs < this.closePerfMs) {
      this.recorder.addRequest(r);
      if (r.ok && r.ttftMs !== null) this.ttft.add(r.ttftMs);
    } else this.excluded++;
  }

  totals(): WindowTotals {
    return this.recorder?.totals ?? { requestsOk: 0, requestsFailed: 0, inputTokens: 0, outputTokens: 0 };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export async function runWindow(o: WindowOptions): Promise<WindowResult> {
  const w = new MeasurementWindow(o);
  if (!o.steadyState) w.open();
  try {
    await runLoad(o.sender, o.factory, o.workload, {
      requests: o.requests,
      minDurationMs: o.minDurationMs,
      signal: o.signal,
      onResult: (r) => w.add(r),
      ...(o.onInFlight === undefined ? {} : { onInFlight: o.onInFlight }),
      ...(o.steadyState ? { onSaturated: () => w.open(), onDraining: () => w.close() } : {}),
      ...(o.health === undefined ? {} : { onScheduleLag: o.health.scheduleLag }),
    });
  } finally {
    w.stop();
  }
  const steadyStateReached = w.opened;
  const ttftP50Ms = w.ttft.count === 0 ? null : w.ttft.quantile(0.5);
  const precise = (perfMs: number): number =>
    performance.timeOrigin + (Number.isFinite(perfMs) ? perfMs : performance.now());
  // Aborted: the caller publishes `aborted`; no further slices or marks.
  if (o.signal.aborted) {
    return {
      windowStartMs: w.startMs,
      windowEndMs: Date.now(),
      totals: w.totals(),
      excluded: w.excluded,
      steadyStateReached,
      ttftP50Ms,
      windowStartPreciseMs: precise(w.openPerfMs),
      windowEndPreciseMs: precise(w.closePerfMs),
    };
  }
  if (!w.opened) w.open(true); // steady state never reached: an empty window, flagged by the caller
  w.close();
  w.finish();
  await Promise.all(w.marks);
  if (w.markError !== undefined) throw w.markError;
  return {
    windowStartMs: w.startMs,
    windowEndMs: w.endMs,
    totals: w.totals(),
    excluded: w.excluded,
    steadyStateReached,
    ttftP50Ms,
    windowStartPreciseMs: precise(w.openPerfMs),
    windowEndPreciseMs: precise(w.closePerfMs),
  };
}
