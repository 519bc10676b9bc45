// Backend-native metrics for a run's extended results. Every metric is present: a number, or null
// with the reason it is missing (never silently absent, never zero for "unknown").
import type { BackendType } from '../../api/spec.ts';
import { metricSum, parsePrometheusText, type PrometheusSample } from './prometheus.ts';
import type { BackendLaunch } from '../../lib/backends/types.ts';

export interface ExtendedMetric {
  value: number | null;
  unit: string;
  /** Why value is null; null when there is a value. */
  reason: string | null;
}

export interface BackendExtendedResults {
  backend: BackendType;
  source: 'vllm-prometheus' | 'llem-stats' | 'none';
  /** The server's version as it reports it; null when it does not (or could not be read). */
  version?: string | null;
  metrics: Record<string, ExtendedMetric>;
}

/** The PyTorch server's /stats names itself and the libraries doing the work. */
export function pytorchVersion(stats: unknown): string | null {
  if (typeof stats !== 'object' || stats === null) return null;
  const s = stats as Record<string, unknown>;
  if (typeof s['version'] !== 'string') return null;
  const libs = [
    ['torch', s['torchVersion']],
    ['transformers', s['transformersVersion']],
  ]
    .filter(([, v]) => typeof v === 'string')
    .map(([k, v]) => `${String(k)} ${String(v)}`);
  return `${typeof s['server'] === 'string' ? s['server'] : 'llem-pytorch'} ${s['version']}${libs.length > 0 ? ` (${libs.join(', ')})` : ''}`;
}

const present = (value: number, unit: string): ExtendedMetric => ({ value, unit, reason: null });
const absent = (unit: string, reason: string): ExtendedMetric => ({ value: null, unit, reason });

export const VLLM_METRICS = {
  kvCacheUsage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
  preemptions: ['vllm:num_preemptions_total', 'vllm:num_preemptions'],
  specAccepted: ['vllm:spec_decode_num_accepted_tokens_total'],
  specDraft: ['vllm:spec_decode_num_draft_tokens_total'],
  specDrafts: ['vllm:spec_decode_num_drafts_total'],
  prefixHits: ['vllm:prefix_cache_hits_total', 'vllm:gpu_prefix_cache_hits_total'],
  prefixQueries: ['vllm:prefix_cache_queries_total', 'vllm:gpu_prefix_cache_queries_total'],
  waiting: ['vllm:num_requests_waiting'],
} as const;

/** Snapshots of /metrics over a measurement window: at its start, at its end, and sampled in between. */
export interface VllmWindowScrapes {
  start: PrometheusSample[] | null;
  end: PrometheusSample[] | null;
  during: PrometheusSample[][];
  /** Why a snapshot is missing (unreachable endpoint...), used as the reason for nulls. */
  error?: string;
}

function counterDelta(w: VllmWindowScrapes, names: readonly string[]): number | null {
  if (w.start === null || w.end === null) return null;
  const a = metricSum(w.start, names);
  const b = metricSum(w.end, names);
  return a === null || b === null ? null : b - a;
}

function gaugeSeries(w: VllmWindowScrapes, names: readonly string[]): number[] {
  const snaps = [w.start, ...w.during, w.end].filter((s): s is PrometheusSample[] => s !== null);
  return snaps.map((s) => metricSum(s, names)).filter((v): v is number => v !== null);
}

function ratio(num: number | null, den: number | null, unit: string, what: string): ExtendedMetric {
  if (num === null || den === null) return absent(unit, `vLLM did not export the ${what} counters`);
  if (den === 0) return absent(unit, `no ${what} events in the window`);
  return present(num / den, unit);
}

export function vllmExtendedResults(w: VllmWindowScrapes): BackendExtendedResults {
  if (w.start === null || w.end === null) {
    const reason = `vLLM /metrics not scraped at both window bounds${w.error === undefined ? '' : `: ${w.error}`}`;
    const metrics = Object.fromEntries(
      [
        'kvCacheUsageMeanFraction',
        'kvCacheUsageMaxFraction',
        'preemptions',
        'specDecodeAcceptanceRate',
        'specDecodeMeanAcceptedLength',
        'prefixCacheHitRate',
        'maxRequestsWaiting',
      ].map((k) => [k, absent(k === 'preemptions' ? 'count' : 'fraction', reason)]),
    );
    return { backend: 'vllm', source: 'vllm-prometheus', metrics };
  }
  const kv = gaugeSeries(w, VLLM_METRICS.kvCacheUsage);
  const waiting = gaugeSeries(w, VLLM_METRICS.waiting);
  const preempt = counterDelta(w, VLLM_METRICS.preemptions);
  const accepted = counterDelta(w, VLLM_METRICS.specAccepted);
  const drafts = counterDelta(w, VLLM_METRICS.specDrafts);
  const noKv = 'vLLM did not export vllm:kv_cache_usage_perc';
  const metrics: Record<string, ExtendedMetric> = {
    kvCacheUsageMeanFraction:
      kv.length > 0 ? present(kv.reduce((a, b) => a + b, 0) / kv.length, 'fraction') : absent('fraction', noKv),
    kvCacheUsageMaxFraction: kv.length > 0 ? present(Math.max(...kv), 'fraction') : absent('fraction', noKv),
    preemptions:
      preempt === null ? absent('count', 'vLLM did not export vllm:num_preemptions_total') : present(preempt, 'count'),
    specDecodeAcceptanceRate: ratio(
      accepted,
      counterDelta(w, VLLM_METRICS.specDraft),
      'fraction',
      'speculative-decoding draft token',
    ),
    specDecodeMeanAcceptedLength:
      accepted !== null && drafts !== null && drafts > 0
        ? present(1 + accepted / drafts, 'tokens')
        : ratio(accepted, drafts, 'tokens', 'speculative-decoding draft'),
    prefixCacheHitRate: ratio(
      counterDelta(w, VLLM_METRICS.prefixHits),
      counterDelta(w, VLLM_METRICS.prefixQueries),
      'fraction',
      'prefix-cache query',
    ),
    maxRequestsWaiting:
      waiting.length > 0
        ? present(Math.max(...waiting), 'count')
        : absent('count', 'vLLM did not export vllm:num_requests_waiting'),
  };
  return { backend: 'vllm', source: 'vllm-prometheus', metrics };
}

function numberAt(obj: unknown, path: readonly string[]): number | null {
  let cur: unknown = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return null;
    cur = (cur as Record<string, unknown>)[key];
  }
  return typeof cur === 'number' && Number.isFinite(cur) ? cur : null;
}

/** Running batch rows and step counts from /stats: the server keeps totals since it started. */
interface EngineTotals {
  steps: number;
  rows: number;
  decodeSeconds: number;
  prefills: number;
  prefillSeconds: number;
}

function engineTotals(stats: unknown): EngineTotals | null {
  const steps = numberAt(stats, ['engine', 'decodeSteps']);
  const mean = numberAt(stats, ['engine', 'meanBatchRows']);
  const decodeSeconds = numberAt(stats, ['engine', 'decodeSeconds']);
  if (steps === null || decodeSeconds === null) return null;
  const prefills = numberAt(stats, ['engine', 'prefillBatches']) ?? NaN;
  const prefillSeconds = numberAt(stats, ['engine', 'prefillSeconds']) ?? NaN;
  return { steps, rows: steps === 0 ? 0 : (mean ?? NaN) * steps, decodeSeconds, prefills, prefillSeconds };
}

const ENGINE_UNITS = {
  decodeSteps: 'count',
  meanBatchRows: 'rows',
  meanDecodeStepMs: 'ms',
  prefillBatches: 'count',
  meanPrefillMs: 'ms',
} as const;

function engineAbsent(reason: string): Record<keyof typeof ENGINE_UNITS, ExtendedMetric> {
  const out = {} as Record<keyof typeof ENGINE_UNITS, ExtendedMetric>;
  for (const [key, unit] of Object.entries(ENGINE_UNITS)) out[key as keyof typeof ENGINE_UNITS] = absent(unit, reason);
  return out;
}

/** The engine's figures over a window: differences of its running totals at the window's bounds. */
function engineWindow(start: EngineTotals, end: EngineTotals): Record<keyof typeof ENGINE_UNITS, ExtendedMetric> {
  const steps = end.steps - start.steps;
  const perStep = (d: number, scale: number, unit: string): ExtendedMetric =>
    steps > 0 && Number.isFinite(d) ? present((d / steps) * scale, unit) : absent(unit, 'no decode step in the window');
  const prefills = end.prefills - start.prefills;
  const prefillSeconds = end.prefillSeconds - start.prefillSeconds;
  const noPrefill = Number.isFinite(prefills) ? 'no prefill in the window' : '/stats has no engine.prefillBatches';
  return {
    decodeSteps: present(steps, 'count'),
    meanBatchRows: perStep(end.rows - start.rows, 1, 'rows'),
    meanDecodeStepMs: perStep(end.decodeSeconds - start.decodeSeconds, 1000, 'ms'),
    prefillBatches: Number.isFinite(prefills) ? present(prefills, 'count') : absent('count', noPrefill),
    meanPrefillMs:
      prefills > 0 && Number.isFinite(prefillSeconds)
        ? present((prefillSeconds / prefills) * 1000, 'ms')
        : absent('ms', noPrefill),
  };
}

/**
 * The PyTorch server's /stats at the window's start and end: peak memory split into loading and
 * inference (peaks since the server started), and the engine's batch rows, decode-step time and prefill
 * batches over the window only (the difference of its running totals: a server reused across runs has served
 * other runs before).
 */
export function pytorchExtendedResults(stats: unknown, error?: string, startStats?: unknown): BackendExtendedResults {
  const reasonFor = (path: readonly string[]): string => {
    if (stats === null || stats === undefined)
      return `PyTorch server /stats not read${error === undefined ? '' : `: ${error}`}`;
    // The server explains its own nulls (fake runner, CPU peak semantics) in memory.reason.
    const memReason = (stats as { memory?: { reason?: unknown } }).memory?.reason;
    return typeof memReason === 'string' ? memReason : `/stats has no ${path.join('.')}`;
  };
  const pick = (path: readonly string[], unit: string): ExtendedMetric => {
    const v = numberAt(stats, path);
    return v === null ? absent(unit, reasonFor(path)) : present(v, unit);
  };
  const end = engineTotals(stats);
  const start = engineTotals(startStats);
  const engineReason =
    end === null
      ? reasonFor(['engine', 'decodeSteps'])
      : `PyTorch server /stats not read at the window's start${error === undefined ? '' : `: ${error}`}`;
  return {
    backend: 'pytorch',
    source: 'llem-stats',
    metrics: {
      loadPeakMemoryBytes: pick(['memory', 'loadPeakBytes'], 'bytes'),
      inferencePeakMemoryBytes: pick(['memory', 'inferencePeakBytes'], 'bytes'),
      inferencePeakAboveLoadBytes: pick(['memory', 'inferencePeakAboveLoadBytes'], 'bytes'),
      // Recorded as missing, with the reason, so shared-prefix and multi-turn results say why there is none.
      prefixCacheHitRate: absent(
        'fraction',
        'the PyTorch server keeps no prefix cache: every prompt is prefilled whole',
      ),
      ...(end !== null && start !== null ? engineWindow(start, end) : engineAbsent(engineReason)),
    },
  };
}

export function tensorrtExtendedResults(): BackendExtendedResults {
  const reason = 'trtllm-serve exports no Prometheus metrics; iteration statistics are not scraped';
  return {
    backend: 'tensorrt',
    source: 'none',
    metrics: {
      kvCacheUsageMaxFraction: absent('fraction', reason),
      preemptions: absent('count', reason),
      prefixCacheHitRate: absent('fraction', reason),
    },
  };
}

export type FetchText = (url: string) => Promise<string>;

const defaultFetchText: FetchText = async (url) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return await res.text();
};

/** Scrapes a launched backend over one measurement window. Never throws: failures become reasons. */
export class BackendMetricsRecorder {
  private start: PrometheusSample[] | null = null;
  private startStats: unknown = null;
  private version: string | null = null;
  private readonly during: PrometheusSample[][] = [];
  private error: string | undefined;

  constructor(
    private readonly launch: Pick<BackendLaunch, 'backend' | 'baseUrl' | 'metrics'>,
    private readonly fetchText: FetchText = defaultFetchText,
  ) {}

  private async scrape(): Promise<string | null> {
    if (this.launch.metrics === null) return null;
    try {
      return await this.fetchText(`${this.launch.baseUrl}${this.launch.metrics.path}`);
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      return null;
    }
  }

  private async scrapeProm(): Promise<PrometheusSample[] | null> {
    const text = this.launch.metrics?.format === 'prometheus' ? await this.scrape() : null;
    return text === null ? null : parsePrometheusText(text);
  }

  async markWindowStart(): Promise<void> {
    if (this.launch.metrics?.format === 'llem-stats') {
      this.startStats = this.parseStats(await this.scrape());
      this.version = pytorchVersion(this.startStats);
    } else {
      this.start = await this.scrapeProm();
    }
    if (this.launch.backend === 'vllm') this.version = await this.vllmVersion();
  }

  /** vLLM answers GET /version with {"version": "..."}. */
  private async vllmVersion(): Promise<string | null> {
    try {
      const v = (JSON.parse(await this.fetchText(`${this.launch.baseUrl}/version`)) as { version?: unknown }).version;
      return typeof v === 'string' ? `vllm ${v}` : null;
    } catch {
      return null;
    }
  }

  private parseStats(text: string | null): unknown {
    try {
      return text === null ? null : JSON.parse(text);
    } catch (err) {
      this.error = `invalid JSON from /stats: ${err instanceof Error ? err.message : String(err)}`;
      return null;
    }
  }

  /** A gauge sample inside the window (KV-cache usage, queue length); call every few seconds. */
  async sample(): Promise<void> {
    const s = await this.scrapeProm();
    if (s !== null) this.during.push(s);
  }

  async markWindowEnd(): Promise<BackendExtendedResults> {
    switch (this.launch.backend) {
      case 'vllm': {
        const end = await this.scrapeProm();
        return {
          ...vllmExtendedResults({
            start: this.start,
            end,
            during: this.during,
            ...(this.error === undefined ? {} : { error: this.error }),
          }),
          version: this.version,
        };
      }
      case 'pytorch': {
        const stats = this.parseStats(await this.scrape());
        return {
          ...pytorchExtendedResults(stats, this.error, this.startStats),
          version: this.version ?? pytorchVersion(stats),
        };
      }
      case 'tensorrt':
        return { ...tensorrtExtendedResults(), version: null };
    }
  }
}
