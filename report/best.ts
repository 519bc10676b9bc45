// How the best configuration is stated everywhere (report.html, `llem results show`, the end-of-run
// line): the metric it was chosen on, the gross and the baseline-subtracted J/token, and a word
// when too few cycles stand behind it (issue #18 item 7).
import type { BestConfiguration } from '../aggregator/index.ts';

/** Results written before the metric was named lack some fields: say what is known. */
export type BestLike = Pick<BestConfiguration, 'configId' | 'joulesPerTokenMean'> & Partial<BestConfiguration>;

export function bestConfigurationText(best: BestLike, label: string, format: (v: number) => string): string {
  const net = best.baselineSubtractedJoulesPerTokenMean;
  const netText =
    net === null || net === undefined
      ? 'baseline-subtracted J/token unavailable'
      : `${format(net)} J/token baseline-subtracted`;
  const cycles = best.cycles ?? best.joulesPerToken?.n;
  const few =
    best.joulesPerToken?.flags.includes('fewCycles') === true
      ? `; only ${cycles ?? 'few'} cycle(s): run at least 3 before trusting the ranking`
      : '';
  return (
    `${label} at ${format(best.joulesPerTokenMean)} J/token gross ` +
    `(chosen on lowest mean gross J/token; ${netText})${few}`
  );
}
