// report.html sections for GPU settings sweeps and the prefill/decode split (report/gpu-analysis.ts).
import type { AggregateResults } from '../aggregator/index.ts';
import {
  gpuSettingsRows,
  PHASE_SPLIT_ASSUMPTIONS,
  PHASE_SPLIT_METHOD,
  phaseSplits,
  withCi,
  type ConfigurationEntry,
} from './gpu-analysis.ts';
import { barChart } from './svg.ts';

const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** J/token, tokens/s, p99 ITL and mean power against each configuration's power cap / locked clock; '' when none. */
export function gpuSettingsSection(
  results: AggregateResults,
  labels: Readonly<Record<string, string>>,
  sim: boolean,
): string {
  const rows = gpuSettingsRows(results, labels);
  if (rows.length === 0) return '';
  const head =
    '<tr><th>GPU settings</th><th>enforced limit W</th><th>mean power W</th><th>J/token</th><th>tokens/s</th><th>p99 ITL ms</th></tr>';
  const body = rows
    .map(
      (r) =>
        `<tr><td>${esc(r.settings)}</td><td>${r.enforcedPowerLimitWatts ?? '—'}</td><td>${esc(withCi(r.meanPowerWatts))}</td>` +
        `<td>${esc(withCi(r.joulesPerToken))}</td><td>${esc(withCi(r.tokensPerSecond))}</td><td>${esc(withCi(r.itlP99Ms))}</td></tr>`,
    )
    .join('');
  const chart = (pick: 'joulesPerToken' | 'tokensPerSecond', title: string, y: string): string =>
    barChart(
      rows.map((r) => ({ label: r.settings, value: r[pick].mean, low: r[pick].ci95Low, high: r[pick].ci95High })),
      { title: `${title}, mean and 95% CI over cycles${sim ? ' (simulated)' : ''}`, xLabel: 'GPU settings', yLabel: y },
    );
  return (
    `<h2>Against the power cap / clock</h2><p>Means with 95% CIs over cycles; the enforced limit is read back from ` +
    `the driver after applying (nvmlDeviceGetEnforcedPowerLimit).</p><table>${head}${body}</table>` +
    chart('joulesPerToken', 'Energy per output token by GPU setting', 'J/token') +
    chart('tokensPerSecond', 'Throughput by GPU setting', 'output tokens/s')
  );
}

/** J per input token and J per output token from phase-separated runs; '' when no configuration has a prefill twin. */
export function phaseSplitSection(configurations: readonly ConfigurationEntry[], results: AggregateResults): string {
  const splits = phaseSplits(configurations, results);
  if (splits.length === 0) return '';
  const head =
    '<tr><th>configuration (full pass)</th><th>input tokens/request</th><th>J per input token</th><th>J per output token</th><th>prefill share</th></tr>';
  const body = splits
    .map(
      (s) =>
        `<tr><td>${esc(s.label)}</td><td>${s.inputTokensPerRequest ?? '—'}</td><td>${esc(withCi(s.joulesPerInputToken))}</td>` +
        `<td>${esc(withCi(s.joulesPerOutputToken))}</td><td>${esc(withCi(s.prefillShare))}</td></tr>`,
    )
    .join('');
  const assumptions = PHASE_SPLIT_ASSUMPTIONS.map((a) => `<li>${esc(a)}</li>`).join('');
  return `<h2>Prefill vs decode energy</h2><p>Method: ${esc(PHASE_SPLIT_METHOD)}.</p><table>${head}${body}</table><p>Assumptions:</p><ul>${assumptions}</ul>`;
}
