// runs.csv and configs.csv: one row per run / configuration, flat columns for spreadsheets.
import type { AggregateResults, ConfigResult, RunResult } from '../aggregator/index.ts';

function cell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function table(
  header: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>,
): string {
  return [header.join(','), ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}

const RUN_HEADER = [
  'run_id',
  'config_id',
  'config_hash',
  'cycle',
  'attempt',
  'status',
  'simulated',
  'window_s',
  'energy_j',
  'joules_per_token',
  'tokens_per_joule',
  'joules_per_request',
  'baseline_power_w',
  'baseline_subtracted_j',
  'mean_power_w',
  'peak_gpu_power_w',
  'tokens_per_s',
  'requests_per_s',
  'requests_ok',
  'requests_failed',
  'input_tokens',
  'output_tokens',
  'ttft_p50_ms',
  'ttft_p99_ms',
  'itl_p50_ms',
  'itl_p99_ms',
  'e2e_p50_ms',
  'e2e_p99_ms',
  'tpot_p50_ms',
  'tpot_p90_ms',
  'tpot_p99_ms',
  'client_loop_delay_p99_ms',
  'client_read_lag_p99_ms',
  'client_schedule_lag_p99_ms',
  'client_saturated',
  'connections_warmed',
  'gpus',
  'gpu_energy_j',
  'gpu_mean_power_w',
  'reasons',
] as const;

/**
 * Per GPU, in the results' order (replica, then UUID): `r<replica>/<uuid>=<value>` joined by ";", so a run
 * on several GPUs (replicas, tensor parallelism) keeps each GPU's share beside the sum in energy_j.
 */
function perGpu(r: RunResult, k: 'energyJoules' | 'meanPowerWatts'): string {
  return r.gpus.map((g) => `r${g.replica}/${g.gpuUuid}=${g[k] === null ? '' : String(g[k])}`).join(';');
}

/** The worst replica's figure (null when no replica reported it). */
function worst(r: RunResult, k: 'eventLoopDelayP99Ms' | 'streamReadLagP99Ms' | 'schedulingLagP99Ms'): number | null {
  const xs = r.client.map((c) => c[k]).filter((x): x is number => x !== null);
  return xs.length === 0 ? null : Math.max(...xs);
}

function runRow(r: RunResult): Array<string | number | boolean | null> {
  const m = r.metrics;
  return [
    r.runId,
    r.configId,
    r.configHash,
    r.cycle,
    r.attempt,
    r.status,
    r.simulated,
    m.windowSeconds,
    m.energyJoules,
    m.joulesPerToken,
    m.tokensPerJoule,
    m.joulesPerRequest,
    m.baselinePowerWatts,
    m.baselineSubtractedJoules,
    m.meanPowerWatts,
    m.peakGpuPowerWatts,
    m.tokensPerSecond,
    m.requestsPerSecond,
    r.counts.requestsOk,
    r.counts.requestsFailed,
    r.counts.inputTokens,
    r.counts.outputTokens,
    r.latency.ttftMs.p50,
    r.latency.ttftMs.p99,
    r.latency.itlMs.p50,
    r.latency.itlMs.p99,
    r.latency.e2eMs.p50,
    r.latency.e2eMs.p99,
    r.latency.tpotMs.p50,
    r.latency.tpotMs.p90,
    r.latency.tpotMs.p99,
    worst(r, 'eventLoopDelayP99Ms'),
    worst(r, 'streamReadLagP99Ms'),
    worst(r, 'schedulingLagP99Ms'),
    r.client.length === 0 ? null : r.client.some((c) => c.saturated),
    r.client.length === 0 ? null : r.client.reduce((n, c) => n + c.connectionsWarmed, 0),
    r.gpus.length,
    perGpu(r, 'energyJoules'),
    perGpu(r, 'meanPowerWatts'),
    r.reasons.join('; '),
  ];
}

export function runsCsv(results: AggregateResults): string {
  return table(RUN_HEADER, results.runs.map(runRow));
}

const CONFIG_METRICS = [
  'joulesPerToken',
  'tokensPerJoule',
  'joulesPerRequest',
  'tokensPerSecond',
  'meanPowerWatts',
  'baselinePowerWatts',
] as const;

function configRow(c: ConfigResult, label: string): Array<string | number | boolean | null> {
  const row: Array<string | number | boolean | null> = [
    c.configId,
    label,
    c.configHash,
    c.simulated,
    c.runsPlanned,
    c.runsIncluded.length,
  ];
  for (const k of CONFIG_METRICS) {
    const s = c.metrics[k];
    row.push(s.mean, s.std, s.ci95Low, s.ci95High);
  }
  const l = c.latencyPooled;
  row.push(l.ttftMs.p50, l.ttftMs.p99, l.itlMs.p50, l.itlMs.p99, l.e2eMs.p99, l.tpotMs.p50, l.tpotMs.p90, l.tpotMs.p99);
  return row;
}

export function configsCsv(results: AggregateResults, labels: Readonly<Record<string, string>>): string {
  const header = ['config_id', 'label', 'config_hash', 'simulated', 'runs_planned', 'runs_included'];
  for (const k of CONFIG_METRICS) header.push(`${k}_mean`, `${k}_std`, `${k}_ci95_low`, `${k}_ci95_high`);
  header.push(
    'ttft_p50_ms',
    'ttft_p99_ms',
    'itl_p50_ms',
    'itl_p99_ms',
    'e2e_p99_ms',
    'tpot_p50_ms',
    'tpot_p90_ms',
    'tpot_p99_ms',
  );
  return table(
    header,
    results.configurations.map((c) => configRow(c, labels[c.configId] ?? c.configId)),
  );
}

export interface PowerPoint {
  tMs: number;
  runId: string;
  replica: number;
  gpuUuid: string;
  powerWatts: number | null;
  energyMillijoules: number | null;
  /**
   * Over the samples this point stands for (it is one of many, downsampled): lowest SM clock, hottest, every throttle
   * reason.
   */
  smClockMinMhz?: number | null;
  temperatureMaxC?: number | null;
  throttleReasons?: number | null;
}

/** NVML clock-event reason bits, as names joined by "|" (empty: none). */
function reasonNames(mask: number | null | undefined): string {
  if (mask === null || mask === undefined) return '';
  const names: Array<[number, string]> = [
    [0x1, 'idle'],
    [0x2, 'app_clocks'],
    [0x4, 'sw_power_cap'],
    [0x8, 'hw_slowdown'],
    [0x10, 'sync_boost'],
    [0x20, 'sw_thermal'],
    [0x40, 'hw_thermal'],
    [0x80, 'hw_power_brake'],
    [0x100, 'display_clock'],
  ];
  return names
    .filter(([bit]) => (mask & bit) !== 0)
    .map(([, n]) => n)
    .join('|');
}

export function timeseriesCsv(points: readonly PowerPoint[]): string {
  return table(
    [
      't_ms',
      'run_id',
      'replica',
      'gpu_uuid',
      'power_w',
      'energy_mj',
      'sm_clock_min_mhz',
      'temperature_max_c',
      'throttle_reasons',
    ],
    points.map((p) => [
      p.tMs,
      p.runId,
      p.replica,
      p.gpuUuid,
      p.powerWatts,
      p.energyMillijoules,
      p.smClockMinMhz,
      p.temperatureMaxC,
      reasonNames(p.throttleReasons),
    ]),
  );
}
