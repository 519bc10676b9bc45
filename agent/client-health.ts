// The load generator's own health over the measurement window (issue #25 item 2): a client that is
// itself saturated adds its queueing to every TTFT it reports, so the run says so instead of
// passing that delay off as the server's.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ClientHealth } from '../api/protocol.ts';
import type { RequestSender, Workload } from './load/generator.ts';
import { peakStreams, type LoadSender } from './load/threaded-client.ts';

/** A client that adds more than this at p99 is saturated ... */
export const CLIENT_SATURATION_MS = 5;
/** ... unless that is still under this share of TTFT p50 (a 5 ms wobble on a 2 s TTFT is noise). */
export const CLIENT_SATURATION_TTFT_SHARE = 0.05;
/** The main loop is sampled every 10 ms: 100 wake-ups a second cost the measuring agent nothing it could see. */
const LOOP_RESOLUTION_MS = 10;
/** Bounds the memory of the rate-mode lag record on a run of millions of requests. */
const MAX_LAG_SAMPLES = 200_000;

function p99(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(0.99 * s.length))] ?? null;
}

export function saturationThresholdMs(ttftP50Ms: number | null): number {
  return Math.max(CLIENT_SATURATION_MS, ttftP50Ms === null ? 0 : ttftP50Ms * CLIENT_SATURATION_TTFT_SHARE);
}

/** The worst thing the client added, in ms (null: nothing measured). */
export function clientAddedMs(
  h: Pick<ClientHealth, 'eventLoopDelayP99Ms' | 'streamReadLagP99Ms' | 'schedulingLagP99Ms'>,
): number | null {
  const xs = [h.eventLoopDelayP99Ms, h.streamReadLagP99Ms, h.schedulingLagP99Ms].filter(
    (x): x is number => x !== null && Number.isFinite(x),
  );
  return xs.length === 0 ? null : Math.max(...xs);
}

export function clientSaturatedWarning(h: ClientHealth): string | null {
  if (!h.saturated) return null;
  const parts = [
    `event-loop delay p99 ${h.eventLoopDelayP99Ms?.toFixed(1) ?? '?'} ms`,
    `stream-read lag p99 ${h.streamReadLagP99Ms?.toFixed(1) ?? '?'} ms`,
    ...(h.schedulingLagP99Ms === null ? [] : [`scheduling lag p99 ${h.schedulingLagP99Ms.toFixed(1)} ms`]),
  ];
  return `clientSaturated: the load generator itself added up to ${clientAddedMs(h)?.toFixed(1)} ms (${parts.join(', ')}; threshold ${h.thresholdMs.toFixed(1)} ms), so its latencies include client queueing; give the agent more CPU (LLEM_CLIENT_THREADS) or lower the load`;
}

export class ClientHealthMonitor {
  private readonly loop: ReturnType<typeof monitorEventLoopDelay> = monitorEventLoopDelay({
    resolution: LOOP_RESOLUTION_MS,
  });
  private loopMs: number | null = null;
  private threadLoops: Promise<number[]> | null = null;
  private stopped = false;
  private readonly lags: number[] = [];
  private readonly sender: RequestSender & Partial<Pick<LoadSender, 'threads' | 'loopDelayP99Ms'>>;
  private started = false;

  constructor(sender: RequestSender) {
    this.sender = sender;
  }

  /** At the window's start: every histogram starts from zero. */
  start(): void {
    this.started = true;
    this.loop.reset();
    this.loop.enable();
    if ((this.sender.threads ?? 0) > 0) void this.sender.loopDelayP99Ms?.(true);
  }

  readonly scheduleLag = (lagMs: number): void => {
    if (this.started && this.lags.length < MAX_LAG_SAMPLES) this.lags.push(Math.max(0, lagMs));
  };

  /** At the window's end: sampling stops now; the figures are read by result(). */
  stop(): void {
    if (!this.started || this.stopped) return;
    this.stopped = true;
    this.loop.disable();
    this.loopMs = this.loop.count > 0 ? this.loop.percentile(99) / 1e6 : null;
    if ((this.sender.threads ?? 0) > 0 && this.sender.loopDelayP99Ms !== undefined)
      this.threadLoops = this.sender.loopDelayP99Ms();
  }

  async result(
    ttftP50Ms: number | null,
    warm: { connectionsWarmed: number; streamSlots: number },
    rateMode: boolean,
  ): Promise<ClientHealth> {
    this.stop();
    let readMs = this.loopMs;
    if (this.threadLoops !== null) {
      const threads = (await this.threadLoops).filter((x) => Number.isFinite(x));
      readMs = threads.length === 0 ? null : Math.max(...threads);
    }
    const health: Omit<ClientHealth, 'saturated'> = {
      eventLoopDelayP99Ms: this.loopMs,
      streamReadLagP99Ms: readMs,
      schedulingLagP99Ms: rateMode ? p99(this.lags) : null,
      thresholdMs: saturationThresholdMs(ttftP50Ms),
      ...warm,
      tokenAccounting: 'arrival',
    };
    const added = clientAddedMs(health);
    return { ...health, saturated: added !== null && added > health.thresholdMs };
  }
}

/** More would only hold sockets open that a rate-mode estimate may never use. */
export const MAX_WARM_CONNECTIONS = 4096;

/**
 * Before the window: one keep-alive connection per stream slot, opened and used (a GET of the
 * readiness path), so the window pays no TCP set-up. Senders without warm() (test fakes) warm nothing.
 */
export async function warmConnections(
  sender: RequestSender,
  w: Pick<Workload, 'mode' | 'concurrency' | 'ratePerSecond'>,
  requests: number,
  path: string,
): Promise<{ connectionsWarmed: number; streamSlots: number }> {
  const streamSlots = Math.min(MAX_WARM_CONNECTIONS, peakStreams(w, requests));
  const connectionsWarmed = sender.warm === undefined ? 0 : await sender.warm(streamSlots, path);
  return { connectionsWarmed, streamSlots };
}
