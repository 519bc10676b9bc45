// Results in other tools' formats (`llem results export --format llm-d|mlenergy-csv`, docs/exports.md):
// - the llm-d benchmark report v0.2 (llm-d-benchmark's benchmark_report/schema_v0_2.py and its JSON schema,
//   br_v0_2_json_schema.json, as of 2026-12: kind in the component's `standardized`): one report per
//   complete run, with the run's GPU power in results.observability (power_consumption, Watts: the
//   aggregate and the sampled series) and its window energy as `llem_energy` (the observability
//   section allows extra keys; v0.2 has no energy field of its own);
// - a flat per-run CSV whose columns are the ML.ENERGY leaderboard's LLM run fields (mlenergy-data
//   LLMRun) where llem measures the same thing, in the same units, plus llem's own columns after them.
import { createHash } from 'node:crypto';
import type { RunResult } from '../aggregator/index.ts';
import type { LatencySummary } from '../aggregator/run-results.ts';
import type { PowerPoint } from './csv.ts';

export interface ExportConfiguration {
  id: string;
  label?: string | undefined;
  configHash: string;
  backend?: { name?: string; type?: string; params?: unknown; extraArgs?: unknown } | undefined;
  point?: Record<string, unknown> | undefined;
  workload?: WorkloadLike | undefined;
}

interface TokenLength {
  distribution?: string;
  mean?: number;
  stddev?: number;
  min?: number;
  max?: number;
}
interface WorkloadLike {
  dataset?: { synthetic?: { inputTokens?: TokenLength; outputTokens?: TokenLength } };
  mode?: string;
  concurrency?: number;
  rate?: number;
}

export interface ExportInput {
  experimentName: string;
  experimentUid: string;
  simulated: boolean;
  /** The manifest's spec, as experiment.json records it. */
  spec: {
    model?: { name?: string; dtype?: string };
    placement?: { gpusPerRun?: number; replicas?: number };
    measurement?: { seed?: number };
  };
  environment: Record<string, string>;
  configurations: ExportConfiguration[];
  runs: RunResult[];
  /** Per run: the sampled power series and the window (from runs.ndjson; absent in cluster results). */
  runFiles: RunWindowLookup;
}

export interface RunWindow {
  power: PowerPoint[];
  windowStartMs: number | null;
  windowEndMs: number | null;
}

/** A Map, or an index that reads one run's record from disk when asked (exports stream, ADR 0025). */
export interface RunWindowLookup {
  get(runId: string): RunWindow | undefined;
}

/** What one run's export row or report needs besides the run: everything but the list of runs. */
export type ExportContext = Omit<ExportInput, 'runs'>;

const id32 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 32);
const iso = (ms: number | null | undefined): string | undefined =>
  ms === null || ms === undefined ? undefined : new Date(ms).toISOString();

/** A v0.2 Statistics object from a latency summary (ms), or undefined without samples. */
function latencyStats(s: LatencySummary, units: 'ms' | 'ms/token'): Record<string, number | string> | undefined {
  if (s.mean === null) return undefined;
  const out: Record<string, number | string> = { units, mean: s.mean };
  const qs = [
    ['p50', s.p50],
    ['p90', s.p90],
    ['p95', s.p95],
    ['p99', s.p99],
    ['p99p9', s.p999],
  ] as const;
  for (const [k, v] of qs) if (v !== null) out[k] = v;
  return out;
}

function stat(
  units: string,
  mean: number | null,
  extra: Record<string, number | null> = {},
): Record<string, number | string> | undefined {
  if (mean === null || !Number.isFinite(mean)) return undefined;
  const out: Record<string, number | string> = { units, mean };
  for (const [k, v] of Object.entries(extra)) if (v !== null && Number.isFinite(v)) out[k] = v;
  return out;
}

/** Drops undefined members (YAML and the schema's extra="forbid" want absent, not null). */
function compact<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const LLMD_DISTRIBUTION: Record<string, string> = {
  fixed: 'fixed',
  uniform: 'uniform',
  normal: 'gaussian',
  lognormal: 'other',
};

/** A v0.2 SequenceLength from the manifest's distribution, or the measured mean when there is none (prompts). */
function seqLen(spec: TokenLength | undefined, measuredMean: number | null): Record<string, unknown> | undefined {
  if (spec === undefined)
    return measuredMean !== null && measuredMean >= 1 ? { distribution: 'other', value: measuredMean } : undefined;
  const midpoint = spec.min !== undefined && spec.max !== undefined ? (spec.min + spec.max) / 2 : undefined;
  const value = spec.mean ?? midpoint ?? measuredMean;
  if (value === null || value < 1) return undefined;
  const distribution = LLMD_DISTRIBUTION[spec.distribution ?? 'fixed'] ?? 'other';
  return compact({ distribution, value, std_dev: spec.stddev, min: spec.min, max: spec.max });
}

function gpuModel(env: Record<string, string>): string {
  // environment.gpus: "NVIDIA H200 (GPU-..., limit 700 W)"; the model is what precedes the first " (".
  const first = (env['gpus'] ?? '').split(';')[0]?.trim() ?? '';
  return first === '' ? 'unknown' : (first.split(' (')[0] ?? first);
}

/** One llm-d benchmark report (v0.2) per complete run. */
export function llmdReports(i: ExportInput): Array<Record<string, unknown>> {
  return i.runs.filter((r) => r.status === 'complete').map((r) => llmdReport(i, r));
}

interface RunContext {
  c: ExportConfiguration | undefined;
  file: RunWindow | undefined;
  ok: number;
  replicas: number;
  gpus: number;
}

function contextOf(i: ExportContext, r: RunResult): RunContext {
  return {
    c: i.configurations.find((x) => x.id === r.configId),
    file: i.runFiles.get(r.runId),
    ok: r.counts.requestsOk,
    replicas: Math.max(1, new Set(r.gpus.map((g) => g.replica)).size),
    gpus: Math.max(1, r.gpus.length),
  };
}

/** The llm-d report of one complete run (exports stream runs one at a time). */
export function llmdReport(i: ExportContext, r: RunResult): Record<string, unknown> {
  const x = contextOf(i, r);
  const m = r.metrics;
  return {
    version: '0.2',
    run: compact({
      uid: id32(`${i.experimentUid}/${r.runId}/${String(r.attempt)}`),
      eid: id32(i.experimentUid),
      time: compact({
        start: iso(x.file?.windowStartMs),
        end: iso(x.file?.windowEndMs),
        duration: m.windowSeconds === null ? undefined : `PT${m.windowSeconds}S`,
      }),
      description:
        `llem run ${r.runId} of experiment ${i.experimentName}, measurement window only` +
        (r.simulated ? ' (SIMULATED GPU and server)' : ''),
      keywords: ['llem', i.experimentName, ...(r.simulated ? ['simulated'] : [])],
    }),
    scenario: { stack: [engineOf(i, r, x)], load: loadOf(i, r, x) },
    results: {
      request_performance: { aggregate: performanceOf(r, x) },
      observability: { components: r.gpus.map((g) => componentOf(r, g, x)), llem_energy: energyOf(r) },
    },
  };
}

function engineOf(i: ExportContext, r: RunResult, x: RunContext): Record<string, unknown> {
  return {
    metadata: { label: r.configId, cfg_id: r.configHash.slice(0, 32), description: x.c?.label ?? r.configId },
    standardized: {
      kind: 'inference_engine',
      tool: x.c?.backend?.type ?? 'unknown',
      tool_version: i.environment['backendVersion'] ?? 'unknown',
      role: 'replica',
      replicas: x.replicas,
      model: { name: i.spec.model?.name ?? 'unknown' },
      accelerator: {
        model: gpuModel(i.environment),
        count: x.gpus,
        parallelism: { tp: Math.max(1, x.gpus / x.replicas), dp: x.replicas },
      },
    },
    native: { config: { backend: x.c?.backend ?? null, point: x.c?.point ?? {}, dtype: i.spec.model?.dtype ?? null } },
  };
}

const perRequest = (n: number, x: RunContext): number | null => (x.ok > 0 ? n / x.ok : null);

function loadOf(i: ExportContext, r: RunResult, x: RunContext): Record<string, unknown> {
  const w = x.c?.workload;
  const synthetic = w?.dataset?.synthetic;
  return {
    metadata: {
      cfg_id: r.configHash.slice(0, 32),
      description: 'llem load generator: streaming OpenAI-compatible requests',
    },
    standardized: compact({
      tool: 'llem',
      tool_version: i.environment['agent'] ?? 'unknown',
      source: synthetic !== undefined ? 'random' : 'sampled',
      input_seq_len: seqLen(synthetic?.inputTokens, perRequest(r.counts.inputTokens, x)) ?? {
        distribution: 'other',
        value: 1,
      },
      output_seq_len: seqLen(synthetic?.outputTokens, perRequest(r.counts.outputTokens, x)),
      concurrency: w?.mode === 'concurrency' ? w.concurrency : undefined,
      rate_qps: w?.mode === 'rate' ? w.rate : undefined,
    }),
    native: { config: w ?? null },
  };
}

function performanceOf(r: RunResult, x: RunContext): Record<string, unknown> {
  const m = r.metrics;
  return {
    requests: compact({
      total: x.ok + r.counts.requestsFailed,
      failures: r.counts.requestsFailed,
      input_length: stat('count', x.ok > 0 ? r.counts.inputTokens / x.ok : null),
      output_length: stat('count', x.ok > 0 ? r.counts.outputTokens / x.ok : null),
    }),
    latency: compact({
      time_to_first_token: latencyStats(r.latency.ttftMs, 'ms'),
      inter_token_latency: latencyStats(r.latency.itlMs, 'ms/token'),
      time_per_output_token: latencyStats(r.latency.tpotMs, 'ms/token'),
      request_latency: latencyStats(r.latency.e2eMs, 'ms'),
    }),
    throughput: compact({
      output_token_rate: stat('tokens/s', m.tokensPerSecond),
      input_token_rate: stat(
        'tokens/s',
        m.windowSeconds !== null && m.windowSeconds > 0 ? r.counts.inputTokens / m.windowSeconds : null,
      ),
      request_rate: stat('queries/s', m.requestsPerSecond),
    }),
  };
}

function componentOf(r: RunResult, g: RunResult['gpus'][number], x: RunContext): Record<string, unknown> {
  return compact({
    component_label: r.configId,
    replica_id: `replica-${g.replica}/${g.gpuUuid}`,
    aggregate: { power_consumption: stat('Watts', g.meanPowerWatts, { max: g.peakPowerWatts }) },
    time_series: powerSeries(x.file?.power ?? [], g, x.file?.windowStartMs ?? null, x.file?.windowEndMs ?? null),
  });
}

/** v0.2 has no energy field; `observability` admits extra keys. */
function energyOf(r: RunResult): Record<string, unknown> {
  const m = r.metrics;
  return compact({
    simulated: r.simulated,
    window_seconds: m.windowSeconds,
    energy_joules: m.energyJoules,
    energy_joules_per_gpu: m.energyPerGpuJoules,
    mean_power_watts: m.meanPowerWatts,
    baseline_power_watts: m.baselinePowerWatts,
    baseline_subtracted_joules: m.baselineSubtractedJoules,
    joules_per_output_token: m.joulesPerToken,
    tokens_per_joule: m.tokensPerJoule,
    joules_per_request: m.joulesPerRequest,
    method:
      'NVML total-energy counter delta per GPU over the measurement window (warm-up excluded); ' +
      'idle baseline measured before',
  });
}

function powerSeries(
  power: readonly PowerPoint[],
  gpu: { replica: number; gpuUuid: string },
  startMs: number | null,
  endMs: number | null,
): Record<string, unknown> | undefined {
  const series = power
    .filter((p) => p.replica === gpu.replica && p.gpuUuid === gpu.gpuUuid && p.powerWatts !== null)
    .filter((p) => (startMs === null || p.tMs >= startMs) && (endMs === null || p.tMs <= endMs))
    .map((p) => ({ ts: new Date(p.tMs).toISOString(), value: p.powerWatts }));
  return series.length === 0 ? undefined : { power_consumption: { units: 'Watts', series } };
}

/** ML.ENERGY leaderboard LLM run columns llem fills (same meaning and units), in their order. */
export const MLENERGY_COLUMNS = [
  'task',
  'model_id',
  'nickname',
  'weight_precision',
  'gpu_model',
  'num_gpus',
  'max_num_seqs',
  'seed',
  'tensor_parallel',
  'data_parallel',
  'steady_state_energy_joules',
  'steady_state_duration_seconds',
  'energy_per_token_joules',
  'energy_per_request_joules',
  'output_throughput_tokens_per_sec',
  'request_throughput_req_per_sec',
  'avg_power_watts',
  'total_output_tokens',
  'completed_requests',
  'avg_output_len',
  'mean_itl_ms',
  'median_itl_ms',
  'p50_itl_ms',
  'p90_itl_ms',
  'p95_itl_ms',
  'p99_itl_ms',
  'is_stable',
  'unstable_reason',
] as const;
/** llem's own columns after them: what identifies the run and what the leaderboard has no field for. */
export const LLEM_EXTRA_COLUMNS = [
  'llem_run_id',
  'llem_config_id',
  'llem_config_hash',
  'llem_cycle',
  'llem_simulated',
  'llem_baseline_power_watts',
  'llem_baseline_subtracted_joules',
  'llem_ttft_p50_ms',
  'llem_ttft_p99_ms',
  'llem_input_tokens',
] as const;

type Column = (typeof MLENERGY_COLUMNS)[number] | (typeof LLEM_EXTRA_COLUMNS)[number];

function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per run (failed runs included, is_stable false with the reason), ML.ENERGY's columns first. */
export function mlEnergyCsv(i: ExportInput): string {
  return [mlEnergyCsvHeader(), ...i.runs.map((r) => mlEnergyCsvRow(i, r))].join('\n') + '\n';
}

export function mlEnergyCsvHeader(): string {
  return [...MLENERGY_COLUMNS, ...LLEM_EXTRA_COLUMNS].join(',');
}

/** One CSV line (no newline) for one run. */
export function mlEnergyCsvRow(i: ExportContext, r: RunResult): string {
  {
    const c = i.configurations.find((x) => x.id === r.configId);
    const m = r.metrics;
    const ok = r.counts.requestsOk;
    const gpus = Math.max(1, r.gpus.length);
    const replicas = Math.max(1, new Set(r.gpus.map((g) => g.replica)).size);
    const w = c?.workload;
    const row: Record<Column, string | number | boolean | null | undefined> = {
      task: i.experimentName,
      model_id: i.spec.model?.name,
      nickname: c?.label ?? r.configId,
      weight_precision: i.spec.model?.dtype,
      gpu_model: gpuModel(i.environment),
      num_gpus: gpus,
      // The leaderboard's max_num_seqs is the server's batch limit; llem's closest is the client concurrency.
      max_num_seqs: w?.mode === 'concurrency' ? w.concurrency : undefined,
      seed: i.spec.measurement?.seed,
      tensor_parallel: gpus / replicas,
      data_parallel: replicas,
      steady_state_energy_joules: m.energyJoules,
      steady_state_duration_seconds: m.windowSeconds,
      energy_per_token_joules: m.joulesPerToken,
      energy_per_request_joules: m.joulesPerRequest,
      output_throughput_tokens_per_sec: m.tokensPerSecond,
      request_throughput_req_per_sec: m.requestsPerSecond,
      avg_power_watts: m.meanPowerWatts,
      total_output_tokens: r.counts.outputTokens,
      completed_requests: ok,
      avg_output_len: ok > 0 ? r.counts.outputTokens / ok : null,
      mean_itl_ms: r.latency.itlMs.mean,
      median_itl_ms: r.latency.itlMs.p50,
      p50_itl_ms: r.latency.itlMs.p50,
      p90_itl_ms: r.latency.itlMs.p90,
      p95_itl_ms: r.latency.itlMs.p95,
      p99_itl_ms: r.latency.itlMs.p99,
      is_stable: r.status === 'complete' && r.reasons.length === 0,
      unstable_reason: [...(r.status === 'complete' ? [] : [r.status]), ...r.reasons].join('; '),
      llem_run_id: r.runId,
      llem_config_id: r.configId,
      llem_config_hash: r.configHash,
      llem_cycle: r.cycle,
      llem_simulated: r.simulated,
      llem_baseline_power_watts: m.baselinePowerWatts,
      llem_baseline_subtracted_joules: m.baselineSubtractedJoules,
      llem_ttft_p50_ms: r.latency.ttftMs.p50,
      llem_ttft_p99_ms: r.latency.ttftMs.p99,
      llem_input_tokens: r.counts.inputTokens,
    };
    return [...MLENERGY_COLUMNS, ...LLEM_EXTRA_COLUMNS].map((k) => csvCell(row[k])).join(',');
  }
}
