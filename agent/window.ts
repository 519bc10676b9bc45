// The measurement window: drive the workload, publish a sketch delta per time slice, and take the
// energy-counter marks at its boundaries (the whole workload, or only its steady state).
import type { Mark } from '../api/protocol.ts';
import type { RequestResult } from './load/client.ts';
import { runLoad, type RequestFactory, type RequestSender, type Workload } from './load/generator.ts';
import type { Publisher } from './publisher.ts';
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
}

export interface WindowResult {
  windowStartMs: number;
  windowEndMs: number;
  totals: WindowTotals;
  /** Requests completed outside the steady-state window (not in the sketches). */
  excluded: number;
  steadyStateReached: boolean;
}

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
  excluded = 0;
  readonly marks: Promise<void>[] = [];
  private readonly o: WindowOptions;

  constructor(o: WindowOptions) {
    this.o = o;
  }

  get opened(): boolean {
    return this.recorder !== null;
  }

  open(force = false): void {
    if (this.recorder !== null || (this.drained && !force)) return;
    this.startMs = Date.now();
    this.recorder = new SliceRecorder(this.o.createSketch, this.startMs);
    this.pushMark('windowStart');
    this.timer = setInterval(() => this.publishSlice(Date.now()), this.o.sliceMs);
  }

  private publishSlice(endMs: number): void {
    if (this.recorder === null) return;
    // Publish failures surface at Publisher.drain(); the window itself keeps running.
    this.o.publisher.publish('sketch', this.recorder.cut(endMs)).catch(() => undefined);
  }

  private pushMark(m: Mark): void {
    this.marks.push(this.o.mark(m).catch((err: unknown) => {
      this.markError ??= err;
    }));
  }

  close(): void {
    if (this.recorder === null) {
      this.drained = true;
      return;
    }
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.endMs = Date.now();
    this.publishSlice(this.endMs);
    this.pushMark('windowEnd');
  }

  add(r: RequestResult): void {
    if (this.recorder !== null && !this.closed) this.recorder.add(r);
    else this.excluded++;
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
    });
  } finally {
    w.stop();
  }
  const steadyStateReached = w.opened;
  // Aborted: the caller publishes `aborted`; no further slices or marks.
  if (o.signal.aborted) return { windowStartMs: w.startMs, windowEndMs: Date.now(), totals: w.totals(), excluded: w.excluded, steadyStateReached };
  if (!w.opened) w.open(true); // steady state never reached: an empty window, flagged by the caller
  w.close();
  await Promise.all(w.marks);
  if (w.markError !== undefined) throw w.markError;
  return { windowStartMs: w.startMs, windowEndMs: w.endMs, totals: w.totals(), excluded: w.excluded, steadyStateReached };
}
