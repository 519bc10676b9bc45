// Adaptive cycles in the report (ADR 0031): the 95% CI half-width of the target metric after each cycle,
// one line per configuration, with the target as a flat line; and why each configuration stopped.
import type { AdaptiveOutcome } from '../aggregator/index.ts';
import { lineChart, type XYSeries } from './svg.ts';

/** Why a configuration stopped adding cycles, in words (report.html and `llem results show`). */
export const REASON_TEXT: Record<string, string> = {
  targetMet: 'target met',
  maxCycles: 'max cycles reached, target not met',
  budget: 'GPU budget spent',
};

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Half-width (% of the mean) vs cycles with a value, per configuration. */
export function adaptiveChart(
  outcome: AdaptiveOutcome,
  labels: Readonly<Record<string, string>>,
  simulated: boolean,
): string {
  const series: XYSeries[] = outcome.configurations.map((c) => ({
    label: labels[c.configurationId] ?? c.configurationId,
    points: c.history.flatMap((h) => (h.ciHalfWidthPct === null ? [] : [[h.n, h.ciHalfWidthPct] as const])),
  }));
  const cycles = Math.max(outcome.minCycles, ...outcome.configurations.map((c) => c.cycles));
  series.push({
    label: `target ±${outcome.targetCiHalfWidthPct}%`,
    points: [
      [1, outcome.targetCiHalfWidthPct],
      [cycles, outcome.targetCiHalfWidthPct],
    ],
  });
  return lineChart(series, {
    title: `95% CI half-width of ${outcome.metric} after each cycle${simulated ? ' (simulated)' : ''}`,
    xLabel: 'cycles with a value',
    yLabel: 'CI half-width (% of mean)',
  });
}

function pct(v: number | null): string {
  return v === null ? '—' : `±${Number(v.toPrecision(3))}%`;
}

/** The adaptive rule and the budget in one sentence (report.html and `llem results show`). */
export function adaptiveTargetText(outcome: AdaptiveOutcome): string {
  const budget =
    outcome.budgetGpuHours === null
      ? 'no GPU budget'
      : `GPU budget ${outcome.budgetGpuHours} h, ${Number(outcome.spentGpuHours.toPrecision(3))} h recorded`;
  return (
    `95% CI of ${outcome.metric} within ±${outcome.targetCiHalfWidthPct}% of the mean, ` +
    `${outcome.minCycles} to ${outcome.maxCycles} cycles; ${budget}`
  );
}

/** The report.html section: the chart and one row per configuration. */
export function adaptiveSection(
  outcome: AdaptiveOutcome | null | undefined,
  labels: Readonly<Record<string, string>>,
  simulated: boolean,
): string {
  if (outcome === null || outcome === undefined) return '';
  const rows = outcome.configurations
    .map(
      (c) =>
        `<tr><td>${esc(labels[c.configurationId] ?? c.configurationId)}</td><td>${c.cycles}</td>` +
        `<td>${c.cyclesSkipped}</td><td>${pct(c.ciHalfWidthPct)}</td>` +
        `<td>${c.reason === null ? 'still measuring' : esc(REASON_TEXT[c.reason] ?? c.reason)}</td></tr>`,
    )
    .join('');
  return (
    `<h2>Adaptive cycles</h2><p>Target: ${esc(adaptiveTargetText(outcome))}.</p>` +
    `<table><tr><th>configuration</th><th>cycles</th><th>not needed</th><th>achieved half-width</th>` +
    `<th>stopped because</th></tr>${rows}</table>${adaptiveChart(outcome, labels, simulated)}`
  );
}
