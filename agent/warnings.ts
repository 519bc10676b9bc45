// Warnings carried in the summary: conditions that make the numbers weaker, never silently.
import { SHORT_WINDOW_SECONDS } from '../api/protocol.ts';
import type { AgentConfig } from './config.ts';
import type { TelemetryEnvironment } from './telemetry/types.ts';
import type { WindowResult } from './window.ts';

export function summaryWarnings(c: AgentConfig, w: WindowResult, env: TelemetryEnvironment): string[] {
  const out: string[] = [];
  const seconds = (w.windowEndMs - w.windowStartMs) / 1000;
  if (seconds < SHORT_WINDOW_SECONDS) {
    out.push(
      `window lasted ${seconds.toFixed(2)} s, under ${SHORT_WINDOW_SECONDS} s: NVML energy (updated ~every 100 ms) is coarse; raise workload.requests`,
    );
  }
  if (seconds < c.measurement.minWindowSeconds) {
    out.push(
      `window lasted ${seconds.toFixed(2)} s, under measurement.minWindowSeconds (${c.measurement.minWindowSeconds} s)`,
    );
  }
  if (c.measurement.steadyState && !w.steadyStateReached) {
    out.push(
      'steady state never reached (the batch never filled): window is empty; lower concurrency or raise requests',
    );
  }
  if (w.totals.requestsFailed > 0) {
    out.push(`${w.totals.requestsFailed} of ${w.totals.requestsFailed + w.totals.requestsOk} requests failed`);
  }
  if (env.source === 'simulated') out.push('GPU telemetry is simulated: energy figures are not measurements');
  return out;
}
