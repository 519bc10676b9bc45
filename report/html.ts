// report.html: one self-contained file (inline CSS and SVG, no scripts, no network) that a user
// can open or attach anywhere. Every figure in it is in experiment.json too.
import type { AggregateResults, ConfigResult, CycleStats } from '../aggregator/index.ts';
import { bestConfigurationText } from './best.ts';
import type { PowerPoint } from './csv.ts';
import { barChart, lineChart, type Band, type XYSeries } from './svg.ts';

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
  return barChart(bars, { title: `Energy per output token, mean and 95% CI over cycles${sim}`, xLabel: 'configuration', yLabel: 'J / token' });
}

export function latencyCdfChart(input: Pick<ReportInput, 'cdfs' | 'configLabels'>, metric: string, name: string): string {
  const series: XYSeries[] = Object.entries(input.cdfs).map(([id, m]) => ({ label: input.configLabels[id] ?? id, points: m[metric] ?? [] }));
  return lineChart(series, { title: `${name} CDF per configuration`, xLabel: `${name} (ms)`, yLabel: 'fraction of requests' });
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
  return lineChart(series, { title: `GPU power over time; shaded: measurement windows${sim}`, xLabel: 'seconds since start', yLabel: 'W' }, bands);
}

/** Marks a statistic that fewer than 3 cycles or a clamped interval weaken. */
function statFlags(s: CycleStats): string {
  const words: string[] = [];
  if (s.flags.includes('fewCycles')) words.push(`${s.n} cycle(s)`);
  if (s.flags.includes('ciClampedAtZero')) words.push('interval clamped at 0');
  return words.length === 0 ? '' : ` <small>[${esc(words.join('; '))}]</small>`;
}

function configTable(configs: readonly ConfigResult[], labels: Readonly<Record<string, string>>, bestId: string | null): string {
  const head = '<tr><th>configuration</th><th>runs</th><th>J/token (95% CI)</th><th>baseline-subtracted J/token</th>' +
    '<th>tokens/J</th><th>tokens/s</th><th>mean power W</th><th>TTFT p50 / p99 ms</th><th>ITL p50 / p99 ms</th></tr>';
  const rows = configs.map((c) => {
    const j = c.metrics.joulesPerToken;
    const best = c.configId === bestId ? ' class="best"' : '';
    return `<tr${best}><td>${esc(labels[c.configId] ?? c.configId)}</td><td>${c.runsIncluded.length}/${c.runsPlanned}</td>` +
      `<td>${num(j.mean)} (${num(j.ci95Low)} – ${num(j.ci95High)})${statFlags(j)}</td>` +
      `<td>${num(c.metrics.baselineSubtractedJoulesPerToken.mean)}</td><td>${num(c.metrics.tokensPerJoule.mean)}</td>` +
      `<td>${num(c.metrics.tokensPerSecond.mean)}</td><td>${num(c.metrics.meanPowerWatts.mean)}</td>` +
      `<td>${num(c.latencyPooled.ttftMs.p50)} / ${num(c.latencyPooled.ttftMs.p99)}</td><td>${num(c.latencyPooled.itlMs.p50)} / ${num(c.latencyPooled.itlMs.p99)}</td></tr>`;
  });
  return `<table>${head}${rows.join('')}</table>`;
}

function runTable(results: AggregateResults): string {
  const head = '<tr><th>run</th><th>cycle</th><th>status</th><th>window s</th><th>energy J</th><th>J/token</th><th>tokens/s</th><th>notes</th></tr>';
  const rows = results.runs.map((r) =>
    `<tr><td>${esc(r.runId)}</td><td>${r.cycle}</td><td>${esc(r.status)}</td><td>${num(r.metrics.windowSeconds)}</td>` +
    `<td>${num(r.metrics.energyJoules)}</td><td>${num(r.metrics.joulesPerToken)}</td><td>${num(r.metrics.tokensPerSecond)}</td>` +
    `<td>${esc([...r.reasons, ...r.notes].join('; '))}</td></tr>`);
  return `<table>${head}${rows.join('')}</table>`;
}

const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4}tr.best{background:#e8f6e8}.sim{background:#fff3cd;border:1px solid #e0b000;padding:8px 12px;font-weight:bold}
svg{display:block;margin:1em 0;max-width:100%;height:auto}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}`;

export function reportHtml(input: ReportInput): string {
  const best = input.results.experiment.bestConfiguration;
  const env = Object.entries(input.environment).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('');
  const banner = input.simulated
    ? '<p class="sim">SIMULATED: these figures come from the simulated GPU and mock inference server, not from hardware.</p>'
    : '';
  const bestLine = best === null ? 'no configuration has a J/token value'
    : esc(bestConfigurationText(best, input.configLabels[best.configId] ?? best.configId, num));
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title><style>${CSS}</style></head><body>
<h1>${esc(input.title)}</h1>${banner}
<p>Manifest <code>${esc(input.manifestPath)}</code>, generated ${esc(input.generatedAt)}. Best configuration: <b>${bestLine}</b>.</p>
<h2>Configurations</h2>${configTable(input.results.configurations, input.configLabels, best?.configId ?? null)}
${jPerTokenChart(input)}
<h2>Latency</h2>${latencyCdfChart(input, 'ttftMs', 'TTFT')}${latencyCdfChart(input, 'itlMs', 'ITL')}${latencyCdfChart(input, 'e2eMs', 'E2E')}
${input.power.length === 0 ? '' : `<h2>Power</h2>${powerChart(input)}`}
<h2>Runs</h2>${runTable(input.results)}
<h2>Environment</h2><dl>${env}</dl>
</body></html>
`;
}
