// Per-run results: energy per GPU and in total, efficiency and throughput, latency percentiles.
// Every metric is a number or null, and every null has a sentence in `missing` saying why.
import {
  SHORT_WINDOW_SECONDS,
  type AppliedGpuSettingsWire,
  type BackendMetrics,
  type ClientHealth,
} from '../api/protocol.ts';
import type { LatencySketch } from '../lib/sketch/index.ts';
import { completeness, type RunStatus } from './completeness.ts';
import { segmentEnergy, type PowerBound, type SegmentEnergy } from './energy.ts';
import { conditionSummary, tickSummary, type ConditionSummary, type TickSummary } from './gpu-conditions.ts';
import { powerBound } from './plausibility.ts';
import type { RunState } from './run-state.ts';
import { LATENCY_METRICS, type GpuState, type LatencyMetric, type PlannedRun, type PublisherState } from './state.ts';

export const RUN_METRICS = [
  'windowSeconds',
  'energyJoules',
  'energyPerGpuJoules',
  'meanPowerWatts',
  'peakGpuPowerWatts',
  'baselinePowerWatts',
  'baselineSubtractedJoules',
  'joulesPerToken',
  'tokensPerJoule',
  'joulesPerRequest',
  'baselineSubtractedJoulesPerToken',
  'tokensPerSecond',
  'requestsPerSecond',
] as const;
export type RunMetric = (typeof RUN_METRICS)[number];

export const QUANTILES = [
  ['p50', 0.5],
  ['p90', 0.9],
  ['p95', 0.95],
  ['p99', 0.99],
  ['p999', 0.999],
] as const;
export type QuantileName = (typeof QUANTILES)[number][0];

export interface LatencySummary extends Record<QuantileName, number | null> {
  count: number;
  mean: number | null;
  /** Why the figures are null; null when they are not. */
  reason: string | null;
}

export interface GpuEnergyResult {
  replica: number;
  gpuUuid: string;
  energyJoules: number | null;
  windowSeconds: number | null;
  meanPowerWatts: number | null;
  peakPowerWatts: number | null;
  sampledMeanPowerWatts: number | null;
  baselinePowerWatts: number | null;
  baselineSubtractedJoules: number | null;
  /** How the window's edges sit on the counter's steps; null: no window marks (or an older agent's). */
  ticks: TickSummary | null;
  /** Throttling, SM clock and temperature over the window's samples; null: no window. */
  conditions: ConditionSummary | null;
  missing: Record<string, string>;
  notes: string[];
}

export interface RunResult {
  runId: string;
  configId: string;
  configHash: string;
  cycle: number;
  attempt: number | null;
  status: RunStatus;
  reasons: string[];
  /** Some input was refused or implausible: the run is left out of every statistic (issue #17 item 2). */
  inputRejected: boolean;
  simulated: boolean;
  counts: {
    requestsOk: number;
    requestsFailed: number;
    inputTokens: number;
    outputTokens: number;
    errorClasses: Record<string, number>;
    /** Requests that met every SLO target, counted by the agents (ADR 0030); absent when no SLO was set. */
    requestsSloMet?: number;
  };
  metrics: Record<RunMetric, number | null>;
  /** Reason for each null metric. `joulesPerToken` is per output (generated) token. */
  missing: Partial<Record<RunMetric, string>>;
  latency: Record<LatencyMetric, LatencySummary>;
  gpus: GpuEnergyResult[];
  /** Backend-native metrics per replica (vLLM /metrics, PyTorch /stats), as the agent reported them. */
  backendMetrics: Array<{ replica: number } & BackendMetrics>;
  /** The load generator's own health per replica (event-loop delay, read and scheduling lag, warm-up). */
  client: Array<{ replica: number } & ClientHealth>;
  /** GPU settings (power limit, locked clocks) per replica's GPU, requested vs effective; empty: none applied. */
  gpuSettings: Array<{ replica: number } & AppliedGpuSettingsWire>;
  notes: string[];
}

export function latencySummary(sketch: LatencySketch | null, what: string): LatencySummary {
  if (sketch === null || sketch.count === 0) {
    return {
      count: 0,
      mean: null,
      p50: null,
      p90: null,
      p95: null,
      p99: null,
      p999: null,
      reason: `no ${what} samples`,
    };
  }
  const out: LatencySummary = {
    count: sketch.count,
    mean: sketch.mean,
    p50: null,
    p90: null,
    p95: null,
    p99: null,
    p999: null,
    reason: null,
  };
  for (const [name, q] of QUANTILES) out[name] = sketch.quantile(q);
  return out;
}

function samplePower(r: GpuEnergyResult, g: GpuState): void {
  const w = g.window;
  if (w !== null && w.powerCount > 0) {
    r.peakPowerWatts = w.peakPowerW;
    r.sampledMeanPowerWatts = w.powerSumW / w.powerCount;
  } else {
    r.missing['peakPowerWatts'] = r.missing['sampledMeanPowerWatts'] = 'no power samples in the window';
  }
}

/** Baseline power = baseline counter delta / baseline duration; subtracted over the window length. */
function baselineFigures(r: GpuEnergyResult, base: SegmentEnergy, seconds: number | null): void {
  const baseDur = base.durationMs.value;
  if (base.energyMj.value === null) r.missing['baselinePowerWatts'] = base.energyMj.reason;
  else if (baseDur === null || baseDur <= 0) r.missing['baselinePowerWatts'] = 'baseline has zero length';
  else r.baselinePowerWatts = base.energyMj.value / baseDur;
  if (r.energyJoules !== null && r.baselinePowerWatts !== null && seconds !== null) {
    r.baselineSubtractedJoules = r.energyJoules - r.baselinePowerWatts * seconds;
  } else {
    r.missing['baselineSubtractedJoules'] =
      r.missing['energyJoules'] ?? r.missing['baselinePowerWatts'] ?? 'no window length';
  }
}

function gpuResult(g: GpuState, bound: PowerBound): GpuEnergyResult {
  const win = segmentEnergy(g.window, 'window', bound);
  const base = segmentEnergy(g.baseline, 'baseline', bound);
  const r: GpuEnergyResult = {
    replica: g.replica,
    gpuUuid: g.gpuUuid,
    energyJoules: null,
    windowSeconds: null,
    meanPowerWatts: null,
    peakPowerWatts: null,
    sampledMeanPowerWatts: null,
    baselinePowerWatts: null,
    baselineSubtractedJoules: null,
    ticks: null,
    conditions: null,
    missing: {},
    notes: [...base.notes, ...win.notes],
  };
  const seconds = win.durationMs.value === null ? null : win.durationMs.value / 1000;
  r.windowSeconds = seconds;
  if (win.energyMj.value === null) r.missing['energyJoules'] = win.energyMj.reason;
  else r.energyJoules = win.energyMj.value / 1000;
  if (r.energyJoules !== null && seconds !== null && seconds > 0) r.meanPowerWatts = r.energyJoules / seconds;
  else r.missing['meanPowerWatts'] = r.missing['energyJoules'] ?? 'window has zero length';
  samplePower(r, g);
  baselineFigures(r, base, seconds);
  if (g.window !== null) {
    r.ticks = tickSummary(g.window, r.meanPowerWatts);
    r.conditions = conditionSummary(g.window);
    if (r.ticks !== null && !r.ticks.aligned)
      r.notes.push('the energy counter did not step within the wait at a window edge: that edge is not tick-aligned');
  }
  if (seconds !== null && seconds < SHORT_WINDOW_SECONDS)
    r.notes.push(
      `window of ${seconds} s is under ${SHORT_WINDOW_SECONDS} s: NVML's ~100 ms counter updates make its energy coarse`,
    );
  return r;
}

/** GPUs announced in hello messages but never seen in telemetry still count: as missing energy. */
function expectedGpus(run: RunState): GpuState[] {
  const gpus = [...run.data.gpus];
  for (const p of run.data.publishers) {
    for (const uuid of p.gpuUuids ?? []) {
      if (!gpus.some((g) => g.replica === p.replica && g.gpuUuid === uuid))
        gpus.push({ replica: p.replica, gpuUuid: uuid, baseline: null, window: null });
    }
  }
  return gpus.sort((a, b) => a.replica - b.replica || (a.gpuUuid < b.gpuUuid ? -1 : a.gpuUuid > b.gpuUuid ? 1 : 0));
}

type Totals = {
  energyJoules: number | null;
  baselinePowerWatts: number | null;
  baselineSubtractedJoules: number | null;
  peak: number | null;
};

function sumGpus(gpus: GpuEnergyResult[], missing: Partial<Record<RunMetric, string>>): Totals {
  const t: Totals = { energyJoules: 0, baselinePowerWatts: 0, baselineSubtractedJoules: 0, peak: null };
  if (gpus.length === 0) {
    missing.energyJoules = missing.baselinePowerWatts = missing.baselineSubtractedJoules = 'no GPU telemetry received';
    return { energyJoules: null, baselinePowerWatts: null, baselineSubtractedJoules: null, peak: null };
  }
  for (const g of gpus) {
    const who = `GPU ${g.gpuUuid} (replica ${g.replica})`;
    for (const k of ['energyJoules', 'baselinePowerWatts', 'baselineSubtractedJoules'] as const) {
      const v = g[k];
      if (v === null) missing[k] ??= `${who}: ${g.missing[k] ?? 'missing'}`;
      else if (t[k] !== null) t[k] += v;
    }
    if (g.peakPowerWatts !== null) t.peak = Math.max(t.peak ?? g.peakPowerWatts, g.peakPowerWatts);
  }
  for (const k of ['energyJoules', 'baselinePowerWatts', 'baselineSubtractedJoules'] as const)
    if (missing[k] !== undefined) t[k] = null;
  if (t.peak === null) missing.peakGpuPowerWatts = 'no power samples in the window';
  return t;
}

/** The run's window: first replica start to last replica end, from summaries (else the GPU marks). */
function windowSeconds(run: RunState, replicas: number, gpus: GpuEnergyResult[]): number | null {
  const sums = run.data.publishers.map((p) => p.summary).filter((s) => s !== null);
  if (sums.length === replicas && replicas > 0) {
    return (Math.max(...sums.map((s) => s.windowEndMs)) - Math.min(...sums.map((s) => s.windowStartMs))) / 1000;
  }
  const secs = gpus.map((g) => g.windowSeconds).filter((s) => s !== null);
  return secs.length > 0 && secs.length === gpus.length ? Math.max(...secs) : null;
}

function ratio(
  m: Record<RunMetric, number | null>,
  missing: Partial<Record<RunMetric, string>>,
  key: RunMetric,
  parts: [number | null, number | null, string],
): void {
  const [num, den, denName] = parts;
  if (num !== null && den !== null && den > 0) m[key] = num / den;
  else missing[key] = num === null ? 'an input is missing (see the other metrics)' : `no ${denName}`;
}

function runMetrics(run: RunState, plan: PlannedRun, gpus: GpuEnergyResult[]): Pick<RunResult, 'metrics' | 'missing'> {
  const missing: Partial<Record<RunMetric, string>> = {};
  const m = Object.fromEntries(RUN_METRICS.map((k) => [k, null])) as Record<RunMetric, number | null>;
  const t = sumGpus(gpus, missing);
  const secs = windowSeconds(run, plan.replicas, gpus);
  const pubs = run.data.publishers;
  const tokens = pubs.reduce((a, p) => a + p.outputTokens, 0);
  const requests = pubs.reduce((a, p) => a + p.requestsOk, 0);
  Object.assign(m, { windowSeconds: secs, energyJoules: t.energyJoules, baselinePowerWatts: t.baselinePowerWatts });
  Object.assign(m, { baselineSubtractedJoules: t.baselineSubtractedJoules, peakGpuPowerWatts: t.peak });
  if (secs === null) missing.windowSeconds = 'the measurement window bounds have not arrived';
  ratio(m, missing, 'energyPerGpuJoules', [t.energyJoules, gpus.length, 'GPUs']);
  ratio(m, missing, 'meanPowerWatts', [t.energyJoules, secs, 'window length']);
  ratio(m, missing, 'joulesPerToken', [t.energyJoules, tokens, 'output tokens']);
  ratio(m, missing, 'tokensPerJoule', [t.energyJoules === null ? null : tokens, t.energyJoules, 'energy']);
  ratio(m, missing, 'joulesPerRequest', [t.energyJoules, requests, 'successful requests']);
  ratio(m, missing, 'baselineSubtractedJoulesPerToken', [t.baselineSubtractedJoules, tokens, 'output tokens']);
  ratio(m, missing, 'tokensPerSecond', [secs === null ? null : tokens, secs, 'window length']);
  ratio(m, missing, 'requestsPerSecond', [secs === null ? null : requests, secs, 'window length']);
  return { metrics: m, missing };
}

/** Error classes as a record for JSON: null prototype, so a class named `constructor` is just a key. */
function errorClassRecord(classes: ReadonlyMap<string, number> | undefined): Record<string, number> {
  const out = Object.create(null) as Record<string, number>;
  for (const k of [...(classes?.keys() ?? [])].sort()) out[k] = classes?.get(k) as number;
  return out;
}

export function runResult(plan: PlannedRun, run: RunState | undefined): RunResult {
  const c = completeness(run, plan.replicas);
  const bound = (g: GpuState): ReturnType<typeof powerBound> => powerBound(run as RunState, g.replica, g.gpuUuid);
  const gpus = run === undefined ? [] : expectedGpus(run).map((g) => gpuResult(g, bound(g)));
  const pubs = run?.data.publishers ?? [];
  const sum = (k: 'requestsOk' | 'requestsFailed' | 'inputTokens' | 'outputTokens'): number =>
    pubs.reduce((a, p) => a + p[k], 0);
  const latency = Object.fromEntries(
    LATENCY_METRICS.map((k) => [k, latencySummary(run?.sketches[k] ?? null, k)]),
  ) as Record<LatencyMetric, LatencySummary>;
  const empty = {
    metrics: Object.fromEntries(RUN_METRICS.map((k) => [k, null])) as Record<RunMetric, number | null>,
    missing: Object.fromEntries(RUN_METRICS.map((k) => [k, 'no messages received yet'])),
  };
  return {
    runId: plan.runId,
    configId: plan.configId,
    configHash: plan.configHash,
    cycle: plan.cycle,
    attempt: run?.data.attempt ?? null,
    status: c.status,
    reasons: c.reasons,
    inputRejected: c.inputRejected,
    simulated: run?.data.simulated ?? false,
    counts: {
      requestsOk: sum('requestsOk'),
      requestsFailed: sum('requestsFailed'),
      inputTokens: sum('inputTokens'),
      outputTokens: sum('outputTokens'),
      errorClasses: errorClassRecord(run?.errorClasses),
      ...sloMetCount(pubs),
    },
    ...(run === undefined ? empty : runMetrics(run, plan, gpus)),
    latency,
    gpus,
    backendMetrics: pubs.flatMap((p) =>
      p.summary?.backendMetrics === undefined ? [] : [{ replica: p.replica, ...p.summary.backendMetrics }],
    ),
    client: pubs.flatMap((p) => (p.summary?.client === undefined ? [] : [{ replica: p.replica, ...p.summary.client }])),
    gpuSettings: pubs.flatMap((p) => (p.summary?.gpuSettings ?? []).map((g) => ({ replica: p.replica, ...g }))),
    notes: [
      ...pubs.flatMap((p) => (p.summary?.warnings ?? []).map((w) => `replica ${p.replica}: ${w}`)),
      ...gpus.flatMap((g) => g.notes.map((n) => `GPU ${g.gpuUuid}: ${n}`)),
    ],
  };
}

/** The replicas' SLO-met counts summed; absent unless every replica counted (a partial sum would undercount). */
function sloMetCount(pubs: readonly PublisherState[]): { requestsSloMet?: number } {
  if (pubs.length === 0 || pubs.some((p) => p.requestsSloMet === undefined)) return {};
  return { requestsSloMet: pubs.reduce((a, p) => a + (p.requestsSloMet ?? 0), 0) };
}
