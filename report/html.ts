// report.html: one self-contained file (inline CSS and SVG, no scripts, no network) that a user
// can open or attach anywhere. Every figure in it is in experiment.json too.
import type { AggregateResults, ConfigResult, CycleStats } from '../aggregator/index.ts';
import { gpuSettingsSection, phaseSplitSection } from './gpu-html.ts';
import { adaptiveSection } from './adaptive.ts';
import type { AdaptiveOutcome } from '../aggregator/index.ts';
import type { ConfigurationEntry } from './gpu-analysis.ts';
import { bestConfigurationText } from './best.ts';
import type { PowerPoint } from './csv.ts';
import { barChart, lineChart, type Band, type XYSeries } from './svg.ts';
import type { ExperimentAnalysis } from '../aggregator/index.ts';
import { frontierSection, ladderSection, sloSection } from './analysis-html.ts';

export interface ReportInput {
  title: string;
  simulated: boolean;
  manifestPath: string;
  generatedAt: string;
  results: AggregateResults;
  /** configId -> human label (backend + sweep point). */
  configLabels: Readonly<Record<string, string>>;
  /** configId -> metric -> CDF points [valueMs, cumulative fraction]. */
  cdfs: Readonly<Record<string, Readonly<Record<string, ReadonlyArray<readonly [number, number]>>>>>;
  power: readonly PowerPoint[];
  windows: readonly Band[];
  environment: Readonly<Record<string, string>>;
  /** How it was measured (the manifest's measurement settings and its warnings); absent: read from the results only. */
  method?: ReportMethod | undefined;
  /** The configurations' workloads and points: the prefill/decode split pairs configurations by them. */
  configurations?: readonly ConfigurationEntry[] | undefined;
  /** SLO goodput and load-ladder curves (ADR 0030); absent or empty: no such sections. */
  analysis?: ExperimentAnalysis | undefined;
  /** Adaptive cycles' outcome; absent or null: a fixed cycle count. */
  adaptive?: AdaptiveOutcome | null | undefined;
}

export interface ReportMethod {
  minWindowSeconds?: number | undefined;
  sampleIntervalMs?: number | undefined;
  baselineSeconds?: number | undefined;
  warmupRequests?: number | undefined;
  cooldownSeconds?: number | undefined;
  /** A count, or the adaptive rule (api/spec-adaptive.ts). */
  cycles?: number | { min: number; max: number; target: { metric: string; ciHalfWidthPct: number } } | undefined;
  order?: string | undefined;
  /** Manifest warnings, one line each. */
  warnings: readonly string[];
}

function cyclesText(c: ReportMethod['cycles']): string {
  if (typeof c !== 'object') return c === undefined ? 'cycles not recorded' : `${c} cycles`;
  const t = c.target;
  return `adaptive cycles (${c.min} to ${c.max}, until the 95% CI of ${t.metric} is within ±${t.ciHalfWidthPct}% of the mean)`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return Number(v.toPrecision(digits)).toString();
}

export function jPerTokenChart(input: Pick<ReportInput, 'results' | 'configLabels' | 'simulated'>): string {
  const bars = input.results.configurations.map((c) => {
    const s = c.metrics.joulesPerToken;
    return { label: input.configLabels[c.configId] ?? c.configId, value: s.mean, low: s.ci95Low, high: s.ci95High };
  });
  const sim = input.simulated ? ' (simulated)' : '';
  return barChart(bars, {
    title: `Energy per output token, mean and 95% CI over cycles${sim}`,
    xLabel: 'configuration',
    yLabel: 'energy per output token (J)',
  });
}

export function latencyCdfChart(
  input: Pick<ReportInput, 'cdfs' | 'configLabels'>,
  metric: string,
  name: string,
): string {
  const series: XYSeries[] = Object.entries(input.cdfs).map(([id, m]) => ({
    label: input.configLabels[id] ?? id,
    points: m[metric] ?? [],
  }));
  const of = metric === 'itlMs' ? 'inter-token gaps' : 'requests';
  return lineChart(series, {
    title: `${name} CDF per configuration`,
    xLabel: `${name} (ms)`,
    yLabel: `fraction of ${of} (0–1)`,
  });
}

export function powerChart(input: Pick<ReportInput, 'power' | 'windows' | 'simulated'>): string {
  const t0 = Math.min(...input.power.map((p) => p.tMs), ...input.windows.map((w) => w.start));
  const byGpu = new Map<string, Array<readonly [number, number]>>();
  for (const p of input.power) {
    if (p.powerWatts === null) continue;
    const key = `replica ${p.replica} ${p.gpuUuid.slice(0, 12)}`;
    const list = byGpu.get(key) ?? [];
    list.push([(p.tMs - t0) / 1000, p.powerWatts]);
    byGpu.set(key, list);
  }
  const series = [...byGpu.entries()].map(([label, points]) => ({ label, points: points.sort((a, b) => a[0] - b[0]) }));
  const bands = input.windows.map((w) => ({ start: (w.start - t0) / 1000, end: (w.end - t0) / 1000, label: w.label }));
  const sim = input.simulated ? ' (simulated)' : '';
  return lineChart(
    series,
    {
      title: `GPU power over time; shaded: measurement windows${sim}`,
      xLabel: 'time since the first sample (s)',
      yLabel: 'GPU power (W)',
    },
    bands,
  );
}

/** Marks a statistic that fewer than 3 cycles or a clamped interval weaken. */
function statFlags(s: CycleStats): string {
  const words: string[] = [];
  if (s.flags.includes('fewCycles')) words.push(`${s.n} cycle(s)`);
  if (s.flags.includes('ciClampedAtZero')) words.push('interval clamped at 0');
  return words.length === 0 ? '' : ` <small>[${esc(words.join('; '))}]</small>`;
}

function configTable(
  configs: readonly ConfigResult[],
  labels: Readonly<Record<string, string>>,
  bestId: string | null,
): string {
  const head =
    '<tr><th>configuration</th><th>runs</th><th>J/token (95% CI)</th><th>baseline-subtracted J/token</th>' +
    '<th>tokens/J</th><th>tokens/s</th><th>mean power W</th><th>TTFT p50 / p99 ms</th><th>ITL p50 / p99 ms</th></tr>';
  const rows = configs.map((c) => {
    const j = c.metrics.joulesPerToken;
    const best = c.configId === bestId ? ' class="best"' : '';
    return (
      `<tr${best}><td>${esc(labels[c.configId] ?? c.configId)}</td><td>${c.runsIncluded.length}/${c.runsPlanned}</td>` +
      `<td>${num(j.mean)} (${num(j.ci95Low)} – ${num(j.ci95High)})${statFlags(j)}</td>` +
      `<td>${num(c.metrics.baselineSubtractedJoulesPerToken.mean)}</td><td>${num(c.metrics.tokensPerJoule.mean)}</td>` +
      `<td>${num(c.metrics.tokensPerSecond.mean)}</td><td>${num(c.metrics.meanPowerWatts.mean)}</td>` +
      `<td>${num(c.latencyPooled.ttftMs.p50)} / ${num(c.latencyPooled.ttftMs.p99)}</td><td>${num(c.latencyPooled.itlMs.p50)} / ${num(c.latencyPooled.itlMs.p99)}</td></tr>`
    );
  });
  return `<table>${head}${rows.join('')}</table>`;
}

function range(values: ReadonlyArray<number | null>, unit: string, digits = 3): string {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return '—';
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  return lo === hi ? `${num(lo, digits)} ${unit}` : `${num(lo, digits)}–${num(hi, digits)} ${unit}`;
}

/** How the numbers were measured, beside them: window, sampling tick, baseline, warm-up, warnings. */
function methodSection(input: ReportInput): string {
  const m = input.method;
  const runs = input.results.runs;
  const opt = (v: number | string | undefined, unit = ''): string => (v === undefined ? 'not recorded' : `${v}${unit}`);
  // Each distinct run note or flag once, with the runs it applies to ("replica 0: " prefixes folded).
  const byNote = new Map<string, string[]>();
  for (const r of runs) {
    for (const note of [...r.reasons, ...r.notes]) {
      const key = note.replace(/^replica \d+: /, '');
      byNote.set(key, [...(byNote.get(key) ?? []), r.runId]);
    }
  }
  const flagged = [...byNote.entries()].map(
    ([note, ids]) => `${note} (${ids.length === runs.length ? 'every run' : [...new Set(ids)].join(', ')})`,
  );
  const energySource = input.simulated
    ? 'simulated GPU energy counter (not a measurement)'
    : 'NVML total-energy counter, delta per GPU over the window';
  const rows: Array<[string, string]> = [
    ['energy', `${energySource}; J/token = window energy / output tokens in the window`],
    [
      'measurement window',
      `from the start signal (after warm-up; all replicas together) while the workload runs; measured ${range(
        runs.map((r) => r.metrics.windowSeconds),
        's',
      )}` + ` (minimum asked ${opt(m?.minWindowSeconds, ' s')})`,
    ],
    [
      'power sampling tick',
      `${opt(m?.sampleIntervalMs, ' ms')} (power samples for the plots and the peak; energy comes from the counter, not from the samples)`,
    ],
    [
      'idle baseline',
      `${opt(m?.baselineSeconds, ' s')} before warm-up; measured ${range(
        runs.map((r) => r.metrics.baselinePowerWatts),
        'W',
      )}` + ' (reported separately, not subtracted from J/token)',
    ],
    ['warm-up', `${opt(m?.warmupRequests)} requests, excluded from the window`],
    ['cool-down', opt(m?.cooldownSeconds, ' s')],
    ['cycles and order', `${cyclesText(m?.cycles)}, ${opt(m?.order)} order; the 95% CI is Student-t over cycles`],
  ];
  const warnings = [...(m?.warnings ?? []), ...flagged];
  const dl = rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('');
  const warn =
    warnings.length === 0
      ? '<p>No warnings.</p>'
      : `<p><b>Warnings (${warnings.length}):</b></p><ul class="warnings">${warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>`;
  return `<section class="method"><h2>Method</h2><dl>${dl}</dl>${warn}</section>`;
}

function runTable(results: AggregateResults): string {
  const head =
    '<tr><th>run</th><th>cycle</th><th>status</th><th>window s</th><th>energy J</th><th>J/token</th><th>tokens/s</th><th>notes</th></tr>';
  const rows = results.runs.map(
    (r) =>
      `<tr><td>${esc(r.runId)}</td><td>${r.cycle}</td><td>${esc(r.status)}</td><td>${num(r.metrics.windowSeconds)}</td>` +
      `<td>${num(r.metrics.energyJoules)}</td><td>${num(r.metrics.joulesPerToken)}</td><td>${num(r.metrics.tokensPerSecond)}</td>` +
      `<td>${esc([...r.reasons, ...r.notes].join('; '))}</td></tr>`,
  );
  return `<table>${head}${rows.join('')}</table>`;
}

/** Each GPU's share of each run, shown when some run measured more than one GPU (replicas, tensor parallelism). */
function perGpuTable(results: AggregateResults): string {
  if (!results.runs.some((r) => r.gpus.length > 1)) return '';
  const head =
    '<tr><th>run</th><th>replica</th><th>GPU</th><th>energy J</th><th>window s</th><th>mean power W</th><th>baseline W</th></tr>';
  const rows = results.runs.flatMap((r) =>
    r.gpus.map(
      (g) =>
        `<tr><td>${esc(r.runId)}</td><td>${g.replica}</td><td>${esc(g.gpuUuid)}</td><td>${num(g.energyJoules)}</td>` +
        `<td>${num(g.windowSeconds)}</td><td>${num(g.meanPowerWatts)}</td><td>${num(g.baselinePowerWatts)}</td></tr>`,
    ),
  );
  return `<h2>Energy per GPU</h2><p>A run's energy is the sum of these rows.</p><table>${head}${rows.join('')}</table>`;
}

const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4}tr.best{background:#e8f6e8}.sim{background:#fff3cd;border:1px solid #e0b000;padding:8px 12px;font-weight:bold}.warn{background:#fdecea;border:1px solid #d93025;padding:8px 12px 8px 28px}
svg{display:block;margin:1em 0;max-width:100%;height:auto}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}dd{margin:0}
.numbers-and-method{display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start}.numbers-and-method>div{flex:1 1 560px}
.method{flex:1 1 420px;font-size:13px;background:#f8f9fb;border:1px solid #dde;padding:0 12px 8px}.warnings{color:#8a5a00}`;

/**
 * Run warnings that say the GPU measured was not the GPU the configuration names: shown on top, never only in a table
 * cell.
 */
const GPU_WARNING =
  /throttled \(|SM clock below|another process used a measured GPU|attribution wholeDevice|exclusivity could not be verified/;

export function gpuWarnings(results: AggregateResults): string[] {
  const out: string[] = [];
  for (const r of results.runs) {
    const notes = r.notes.filter((n) => GPU_WARNING.test(n));
    out.push(...notes.map((n) => `${r.runId}: ${n}`));
    // An agent that does not word its own warnings still reports the window's conditions.
    for (const g of r.gpus) {
      const c = g.conditions;
      if (notes.length === 0 && c !== null && c !== undefined && c.throttledSamples > 0) {
        out.push(
          `${r.runId}: GPU ${g.gpuUuid} throttled in ${c.throttledSamples} of ${c.samples} window samples (${c.throttleReasons.join(', ')})`,
        );
      }
    }
  }
  return out;
}

function warningBlock(results: AggregateResults): string {
  const w = gpuWarnings(results);
  if (w.length === 0) return '';
  const shown = w
    .slice(0, 50)
    .map((x) => `<li>${esc(x)}</li>`)
    .join('');
  return `<h2>GPU warnings</h2><ul class="warn">${shown}${w.length > 50 ? `<li>... and ${w.length - 50} more (runs.csv, experiment.json)</li>` : ''}</ul>`;
}

export function reportHtml(input: ReportInput): string {
  const best = input.results.experiment.bestConfiguration;
  const env = Object.entries(input.environment)
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`)
    .join('');
  const banner = input.simulated
    ? '<p class="sim">SIMULATED: these figures come from the simulated GPU and mock inference server, not from hardware.</p>'
    : '';
  const bestLine =
    best === null
      ? 'no configuration has a J/token value'
      : esc(bestConfigurationText(best, input.configLabels[best.configId] ?? best.configId, num));
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title><style>${CSS}</style></head><body>
<h1>${esc(input.title)}</h1>${banner}${warningBlock(input.results)}
<p>Manifest <code>${esc(input.manifestPath)}</code>, generated ${esc(input.generatedAt)}. Best configuration: <b>${bestLine}</b>.</p>
<div class="numbers-and-method"><div><h2>Configurations</h2>${configTable(input.results.configurations, input.configLabels, best?.configId ?? null)}</div>
${methodSection(input)}</div>
${jPerTokenChart(input)}
${input.analysis === undefined ? '' : sloSection(input.analysis, input.configLabels)}
${frontierSection(input.results.configurations, input.configLabels, input.simulated)}
${input.analysis === undefined ? '' : ladderSection(input.analysis.ladders, input.simulated)}
${adaptiveSection(input.adaptive, input.configLabels, input.simulated)}
${gpuSettingsSection(input.results, input.configLabels, input.simulated)}
${phaseSplitSection(input.configurations ?? [], input.results)}
<h2>Latency</h2>${latencyCdfChart(input, 'ttftMs', 'TTFT')}${latencyCdfChart(input, 'itlMs', 'ITL')}${latencyCdfChart(input, 'e2eMs', 'E2E')}
${input.power.length === 0 ? '' : `<h2>Power</h2>${powerChart(input)}`}
<h2>Runs</h2>${runTable(input.results)}
${perGpuTable(input.results)}
<h2>Environment</h2><dl>${env}</dl>
</body></html>
`;
}
