// report.html sections for issue #22 (ADR 0030): load-ladder curves with the knee, SLO goodput and the
// lowest-energy configuration meeting the SLOs, and the time-energy Pareto frontier with 95% CIs.
import type { ConfigResult, CycleStats, ExperimentAnalysis, LadderCurve } from '../aggregator/index.ts';
import { configurationFrontier, TIME_AXES, type FrontierPoint, type TimeAxis } from './frontier.ts';
import { intervalChart, type IntervalPoint } from './svg.ts';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return Number(v.toPrecision(digits)).toString();
}

function ci(s: CycleStats | null): string {
  if (s === null || s.mean === null) return '—';
  return s.ci95Low === null ? num(s.mean) : `${num(s.mean)} [${num(s.ci95Low)}, ${num(s.ci95High)}]`;
}

type LadderMetric = 'joulesPerToken' | 'tokensPerSecond' | 'ttftP50Ms' | 'ttftP99Ms' | 'itlP50Ms' | 'itlP99Ms';

function ladderPoints(curve: LadderCurve, metric: LadderMetric): IntervalPoint[] {
  return curve.points.flatMap((p) => {
    const s = p[metric];
    if (!p.ran || s === null || s.mean === null) return [];
    return [{ x: p.load, y: s.mean, yLow: s.ci95Low, yHigh: s.ci95High, label: `step ${p.step}: ${ci(s)}` }];
  });
}

const LOAD_LABEL = { rate: 'offered load (requests/s)', concurrency: 'concurrency (in-flight requests)' } as const;

/** One ladder's charts: J/token, tokens/s, TTFT and ITL (p50, p99) against load, the knee marked. */
export function ladderCharts(curve: LadderCurve, simulated: boolean): Record<string, string> {
  const sim = simulated ? ' (simulated)' : '';
  const marks = curve.knee === null ? [] : [{ x: curve.knee.load, label: `knee ${num(curve.knee.load)}` }];
  const xLabel = LOAD_LABEL[curve.mode];
  const chart = (title: string, yLabel: string, series: [string, LadderMetric][]): string =>
    intervalChart(
      series.map(([label, m]) => ({ label, points: ladderPoints(curve, m), line: true })),
      { title: `${title}, ${curve.group}${sim}`, xLabel, yLabel },
      marks,
    );
  return {
    energy: chart('Energy per token vs load (mean, 95% CI)', 'energy per output token (J)', [
      ['J/token', 'joulesPerToken'],
    ]),
    throughput: chart('Throughput vs load (mean, 95% CI)', 'throughput (output tokens/s)', [
      ['tokens/s', 'tokensPerSecond'],
    ]),
    ttft: chart('TTFT vs load (mean of per-run percentiles, 95% CI)', 'TTFT (ms)', [
      ['p50', 'ttftP50Ms'],
      ['p99', 'ttftP99Ms'],
    ]),
    itl: chart('ITL vs load (mean of per-run percentiles, 95% CI)', 'ITL (ms)', [
      ['p50', 'itlP50Ms'],
      ['p99', 'itlP99Ms'],
    ]),
  };
}

function ladderTable(curve: LadderCurve): string {
  const rows = curve.points
    .map(
      (p) =>
        `<tr><td>${p.step}</td><td>${num(p.load)}</td><td>${p.ran ? 'ran' : 'skipped'}</td><td>${ci(p.joulesPerToken)}</td>` +
        `<td>${ci(p.tokensPerSecond)}</td><td>${ci(p.ttftP50Ms)}</td><td>${ci(p.ttftP99Ms)}</td><td>${ci(p.itlP50Ms)}</td>` +
        `<td>${ci(p.itlP99Ms)}</td><td>${p.meetsSlo === null ? '—' : p.meetsSlo ? 'yes' : 'no'}</td></tr>`,
    )
    .join('');
  return (
    '<table><tr><th>step</th><th>load</th><th></th><th>J/token</th><th>tokens/s</th><th>TTFT p50 ms</th>' +
    `<th>TTFT p99 ms</th><th>ITL p50 ms</th><th>ITL p99 ms</th><th>meets SLO</th></tr>${rows}</table>`
  );
}

export function ladderSection(ladders: readonly LadderCurve[], simulated: boolean): string {
  if (ladders.length === 0) return '';
  const parts = ladders.map((c) => {
    const charts = ladderCharts(c, simulated);
    const knee =
      c.knee === null
        ? `No knee: ${esc(c.kneeReason)}.`
        : `Knee at step ${c.knee.step} (load ${num(c.knee.load)}): ${esc(c.knee.definition)}.`;
    const sat = c.saturatedAt === null ? esc(c.reason) : `saturated at step ${c.saturatedAt}: ${esc(c.reason)}`;
    return (
      `<h3>${esc(c.group)} (${esc(c.backend)}, ${c.mode} ladder)</h3><p>Ladder ${sat}. ${knee}</p>${ladderTable(c)}` +
      `${charts['energy']}${charts['throughput']}${charts['ttft']}${charts['itl']}`
    );
  });
  return `<h2>Load ladder</h2>${parts.join('')}`;
}

export function sloSection(analysis: ExperimentAnalysis, labels: Readonly<Record<string, string>>): string {
  const slo = analysis.slo;
  if (slo === null) return '';
  const targets = (['ttftMs', 'itlMs', 'e2eMs'] as const)
    .flatMap((k) => (slo.slo[k] === undefined ? [] : [`${k} p${slo.slo[k].p} ≤ ${slo.slo[k].ms} ms`]))
    .join(', ');
  const rows = slo.configurations
    .map(
      (c) =>
        `<tr><td>${esc(labels[c.configId] ?? c.configId)}</td><td>${esc(c.summary)}</td><td>${ci(c.goodputRequestsPerSecond)}</td>` +
        `<td>${ci(c.attainmentPct)}</td><td>${ci(c.joulesPerSloMetRequest)}</td></tr>`,
    )
    .join('');
  return (
    `<h2>SLOs and goodput</h2><p>Targets: ${esc(targets)}. A request meets them when it succeeded, its TTFT and E2E are ` +
    'within target and at least p% of its own inter-token gaps are; goodput is SLO-met requests per second of window.</p>' +
    `<p><b>${esc(slo.choice.statement)}</b></p><table><tr><th>configuration</th><th>SLO verdict</th>` +
    `<th>goodput (req/s)</th><th>attainment (%)</th><th>J per SLO-met request</th></tr>${rows}</table>`
  );
}

const STATUS_TEXT = {
  frontier: 'frontier',
  notDistinguishable: 'not distinguishable',
  dominated: 'dominated',
} as const;

export function frontierChart(
  points: readonly FrontierPoint[],
  axis: TimeAxis,
  labels: Readonly<Record<string, string>>,
  simulated: boolean,
): string {
  const byStatus = (s: FrontierPoint['status']): IntervalPoint[] =>
    points
      .filter((p) => p.status === s)
      .sort((a, b) => a.time.mean - b.time.mean || a.energy.mean - b.energy.mean)
      .map((p) => ({
        x: p.time.mean,
        xLow: p.time.low,
        xHigh: p.time.high,
        y: p.energy.mean,
        yLow: p.energy.low,
        yHigh: p.energy.high,
        label: `${labels[p.id] ?? p.id}: ${STATUS_TEXT[p.status]}`,
        hollow: s !== 'frontier',
      }));
  return intervalChart(
    [
      { label: 'Pareto frontier (by means)', points: byStatus('frontier'), line: true },
      { label: 'not distinguishable from the frontier (CIs overlap)', points: byStatus('notDistinguishable') },
      { label: 'dominated (with confidence)', points: byStatus('dominated') },
    ],
    {
      title: `Time–energy Pareto frontier, 95% CIs on both axes${simulated ? ' (simulated)' : ''}`,
      xLabel: axis.label,
      yLabel: 'energy per output token (J)',
    },
  );
}

export function frontierSection(
  configs: readonly ConfigResult[],
  labels: Readonly<Record<string, string>>,
  simulated: boolean,
): string {
  const axis = TIME_AXES['tokensPerSecond'] as TimeAxis;
  const { points, left } = configurationFrontier(configs, axis);
  if (points.length < 2) return '';
  const rows = points
    .map(
      (p) =>
        `<tr><td>${esc(labels[p.id] ?? p.id)}</td><td>${STATUS_TEXT[p.status]}</td><td>${num(p.energy.mean)} [${num(p.energy.low)}, ${num(p.energy.high)}]</td>` +
        `<td>${num(p.time.mean)} [${num(p.time.low)}, ${num(p.time.high)}]</td><td>${esc(p.dominatedBy.join(', '))}</td></tr>`,
    )
    .join('');
  const leftOut = left.length === 0 ? '' : `<p>Left out: ${esc(left.map((l) => `${l.id} (${l.why})`).join('; '))}.</p>`;
  return (
    '<h2>Pareto frontier</h2><p>On the frontier: no other configuration has both lower mean J/token and higher mean ' +
    'throughput. <i>Not distinguishable</i>: off the frontier by means, but its 95% CIs overlap those of every ' +
    'configuration that dominates it. <i>Dominated</i>: another configuration is better on both axes with the CIs apart.</p>' +
    `${frontierChart(points, axis, labels, simulated)}<table><tr><th>configuration</th><th>status</th><th>J/token [95% CI]</th>` +
    `<th>tokens/s [95% CI]</th><th>dominated by</th></tr>${rows}</table>${leftOut}`
  );
}
