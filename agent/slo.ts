// Per-request SLO attainment (issue #22 item 2, ADR 0030): the agent sees every request, so it counts
// the requests that met every latency target and sends the count with each slice; the aggregator never
// needs raw samples to compute goodput.
import type { RequestResult } from './load/client.ts';

export interface RequestSloTarget {
  /** Percentile, 0 < p <= 100. */
  p: number;
  ms: number;
}

export interface RequestSlo {
  ttftMs?: RequestSloTarget;
  itlMs?: RequestSloTarget;
  e2eMs?: RequestSloTarget;
}

/**
 * Whether one request met every target: it succeeded; its TTFT and E2E are within their targets; at
 * least p% of its own inter-token gaps are within the ITL target (p = 100: every gap). A request with
 * no gaps (one output token) meets the ITL target; one with no first token fails the TTFT target.
 */
export function requestMeetsSlo(r: RequestResult, slo: RequestSlo): boolean {
  if (!r.ok) return false;
  if (slo.ttftMs !== undefined && (r.ttftMs === null || r.ttftMs > slo.ttftMs.ms)) return false;
  if (slo.e2eMs !== undefined && r.e2eMs > slo.e2eMs.ms) return false;
  const itl = slo.itlMs;
  if (itl === undefined || r.itlMs.length === 0) return true;
  let within = 0;
  for (const gap of r.itlMs) if (gap <= itl.ms) within++;
  // Compared in whole gaps so p = 100 means every gap, whatever the floating-point error of p / 100.
  return within >= Math.ceil((itl.p * r.itlMs.length) / 100 - 1e-9);
}
