// bench/agent's tail diagnosis (issue #25): for every request whose client TTFT error passes a threshold,
// what overlapped it. Cause candidates, each from evidence taken in the run, never assumed:
//  - a GC pause of the client process or of the mock server's process overlapping the request's
//    send..first-token-read interval (PerformanceObserver('gc') in both, on the shared wall clock);
//  - the way the error went: out (mock receive stamp - client send: the request waited to be read by
//    the mock) or back (client read - mock first-token stamp: the token waited to be read by the client);
//  - either process waiting for a core: run-queue wait of all its threads over the point
//    (/proc/<pid>/task/*/schedstat, field 2), so a point whose processes were descheduled shows it.
import { readdirSync, readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import type { RequestResult } from '../agent/load/client.ts';

/** perf_hooks' GC kinds (constants.NODE_PERFORMANCE_GC_*). */
const GC_KINDS: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weakcb' };

/** One GC pause on the wall clock (ms since the epoch, µs precision: timeOrigin + startTime). */
export interface GcPause {
  startWallMs: number;
  durationMs: number;
  kind: string;
}

/** Records this process's GC pauses until stopped. */
export function watchGc(onPause: (p: GcPause) => void): () => void {
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) {
      const kind = GC_KINDS[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
      onPause({ startWallMs: performance.timeOrigin + e.startTime, durationMs: e.duration, kind });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => obs.disconnect();
}

/**
 * Run-queue wait (ms) so far of `pid` ('self': this process): summed over every thread, or of its main
 * thread alone (the event loop that reads requests and writes tokens); NaN off Linux.
 */
export function runQueueMs(pid: number | 'self', mainOnly = false): number {
  try {
    let ns = 0;
    const main = pid === 'self' ? String(process.pid) : String(pid);
    for (const t of mainOnly ? [main] : readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[1] ?? 0);
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/** How much of [from, to) (wall ms) the pauses cover. */
function overlapMs(pauses: readonly GcPause[], from: number, to: number): number {
  let ms = 0;
  for (const p of pauses) ms += Math.max(0, Math.min(to, p.startWallMs + p.durationMs) - Math.max(from, p.startWallMs));
  return ms;
}

export interface TailRow {
  /** Seconds since the point's first request. */
  atS: number;
  errMs: number;
  upMs: number;
  downMs: number;
  clientGcMs: number;
  serverGcMs: number;
}

export interface TailReport {
  /** Requests whose error passed the threshold, and how many of them each candidate touched. */
  over: number;
  overWithClientGc: number;
  overWithServerGc: number;
  overMostlyUp: number;
  overMostlyDown: number;
  /** The worst requests, worst first. */
  worst: TailRow[];
}

/** Every steady request's error, split and set against the GC pauses of both processes. */
export function tailReport(
  steady: ReadonlyArray<Pick<RequestResult, 'startMs' | 'ttftMs' | 'serverTtftMs' | 'serverStamps'>>,
  clientGc: readonly GcPause[],
  serverGc: readonly GcPause[],
  thresholdMs: number,
  worstN = 8,
): TailReport {
  const t0 = Math.min(...steady.map((r) => r.startMs));
  const rows: TailRow[] = [];
  for (const r of steady) {
    if (r.ttftMs === null || r.serverTtftMs === undefined || r.serverStamps === undefined) continue;
    const sent = performance.timeOrigin + r.startMs;
    const read = sent + r.ttftMs;
    rows.push({
      atS: (r.startMs - t0) / 1000,
      errMs: r.ttftMs - r.serverTtftMs,
      upMs: r.serverStamps.receivedMs - sent,
      downMs: read - r.serverStamps.firstTokenMs,
      clientGcMs: overlapMs(clientGc, sent, read),
      serverGcMs: overlapMs(serverGc, sent, read),
    });
  }
  const over = rows.filter((x) => x.errMs > thresholdMs);
  return {
    over: over.length,
    overWithClientGc: over.filter((x) => x.clientGcMs > 0).length,
    overWithServerGc: over.filter((x) => x.serverGcMs > 0).length,
    overMostlyUp: over.filter((x) => x.upMs > x.downMs).length,
    overMostlyDown: over.filter((x) => x.downMs >= x.upMs).length,
    worst: rows
      .sort((a, b) => b.errMs - a.errMs)
      .slice(0, worstN)
      .map((x) => ({
        atS: round(x.atS),
        errMs: round(x.errMs),
        upMs: round(x.upMs),
        downMs: round(x.downMs),
        clientGcMs: round(x.clientGcMs),
        serverGcMs: round(x.serverGcMs),
      })),
  };
}

const round = (v: number): number => Math.round(v * 100) / 100;
