// Latency sketches per time slice of the measurement window. Each slice is a delta: the aggregator
// merges them all. A request's latencies and its ok/failed count belong to the slice in which it
// completed; its tokens are added separately (window.ts counts them by arrival).
import type { SketchMessage } from '../api/protocol.ts';
import type { LatencySketch } from '../lib/sketch/types.ts';
import type { RequestResult } from './load/client.ts';
import { requestMeetsSlo, type RequestSlo } from './slo.ts';

export type SketchFactory = () => LatencySketch;
export type SketchBody = Omit<
  SketchMessage,
  'v' | 'kind' | 'seq' | 'sentAtMs' | 'simulated' | 'namespace' | 'experimentUid' | 'runId' | 'attempt' | 'replica'
>;

export interface WindowTotals {
  requestsOk: number;
  requestsFailed: number;
  inputTokens: number;
  outputTokens: number;
}

interface Slice {
  ttft: LatencySketch;
  itl: LatencySketch;
  e2e: LatencySketch;
  tpot: LatencySketch;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  inputTokens: number;
  outputTokens: number;
  /** Requests that met every SLO target (agent/slo.ts); counted only when SLOs are set. */
  sloMet: number;
}

/**
 * The sketch's serialized bytes: the default binary batches carry them as they are, and encodeMessage
 * turns them into base64 for a JSON message (ADR 0036, amended), so the agent no longer base64-encodes
 * a sketch the Publisher would decode again.
 */
function encode(s: LatencySketch): Uint8Array | undefined {
  return s.count === 0 ? undefined : s.serialize();
}

export class SliceRecorder {
  private index = 0;
  private startMs: number;
  private slice: Slice;
  readonly totals: WindowTotals = { requestsOk: 0, requestsFailed: 0, inputTokens: 0, outputTokens: 0 };
  private readonly createSketch: SketchFactory;
  private readonly slo: RequestSlo | undefined;

  constructor(createSketch: SketchFactory, startWallMs: number, slo?: RequestSlo) {
    this.createSketch = createSketch;
    this.slo = slo;
    this.startMs = startWallMs;
    this.slice = this.fresh();
  }

  private fresh(): Slice {
    const c = this.createSketch;
    return {
      ttft: c(),
      itl: c(),
      e2e: c(),
      tpot: c(),
      ok: 0,
      failed: 0,
      errors: {},
      inputTokens: 0,
      outputTokens: 0,
      sloMet: 0,
    };
  }

  /** Tokens that arrived inside the window (a failed request's tokens still cost energy: they count). */
  addTokens(inputTokens: number, outputTokens: number): void {
    this.slice.inputTokens += inputTokens;
    this.slice.outputTokens += outputTokens;
  }

  /** A request that completed inside the window: its count and latencies (not its tokens). */
  addRequest(r: RequestResult): void {
    const s = this.slice;
    if (this.slo !== undefined && requestMeetsSlo(r, this.slo)) s.sloMet++;
    if (!r.ok) {
      s.failed++;
      const cls = r.errorClass ?? 'unknown';
      s.errors[cls] = (s.errors[cls] ?? 0) + 1;
      return;
    }
    s.ok++;
    if (r.ttftMs !== null) s.ttft.add(r.ttftMs);
    for (const gap of r.itlMs) s.itl.add(gap);
    s.e2e.add(r.e2eMs);
    if (r.tpotMs !== null) s.tpot.add(r.tpotMs);
  }

  /** Close the current slice at `endWallMs` and start the next one there. */
  cut(endWallMs: number): SketchBody {
    const s = this.slice;
    const sketches: SketchBody['sketches'] = {};
    const entries = [
      ['ttftMs', s.ttft],
      ['itlMs', s.itl],
      ['e2eMs', s.e2e],
      ['tpotMs', s.tpot],
    ] as const;
    for (const [name, sketch] of entries) {
      const bytes = encode(sketch);
      if (bytes !== undefined) sketches[name] = bytes;
    }
    const body: SketchBody = {
      slice: this.index,
      sliceStartMs: this.startMs,
      sliceEndMs: endWallMs,
      requestsOk: s.ok,
      requestsFailed: s.failed,
      errorClasses: s.errors,
      inputTokens: s.inputTokens,
      outputTokens: s.outputTokens,
      sketches,
      ...(this.slo === undefined ? {} : { requestsSloMet: s.sloMet }),
    };
    this.totals.requestsOk += s.ok;
    this.totals.requestsFailed += s.failed;
    this.totals.inputTokens += s.inputTokens;
    this.totals.outputTokens += s.outputTokens;
    this.index++;
    this.startMs = endWallMs;
    this.slice = this.fresh();
    return body;
  }
}
