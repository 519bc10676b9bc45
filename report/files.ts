// The results files both runtimes write: CSVs, SVG plots and the self-contained report. Local mode
// writes them into its results directory (with the power time series its observer collected); the
// controller puts them next to results.json in the object store when an experiment finishes.
import type { RunMatrix } from '../api/matrix.ts';
import type { AggregateResults, Aggregator, ExperimentAnalysis } from '../aggregator/index.ts';
import { frontierChart, ladderCharts } from './analysis-html.ts';
import { configurationFrontier, TIME_AXES, type TimeAxis } from './frontier.ts';
import { configsCsv, runsCsv, timeseriesCsv, type PowerPoint } from './csv.ts';
import { jPerTokenChart, latencyCdfChart, powerChart, reportHtml, type ReportMethod } from './html.ts';
import type { Band } from './svg.ts';
import type { ConfigurationEntry } from './gpu-analysis.ts';
import type { AdaptiveOutcome } from '../aggregator/index.ts';
import { adaptiveChart } from './adaptive.ts';

/** "pytorch workload.concurrency=8": what distinguishes a configuration, for tables and charts. */
export function configLabelsOf(matrix: Pick<RunMatrix, 'configurations'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of matrix.configurations) {
    const point = Object.entries(c.point)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    out[c.id] = point === '' ? c.backend.name : `${c.backend.name} ${point}`;
  }
  return out;
}

export interface ResultsFilesInput {
  title: string;
  simulated: boolean;
  manifestPath: string;
  generatedAt: string;
  results: AggregateResults;
  aggregator: Pick<Aggregator, 'latencyCdf'>;
  labels: Record<string, string>;
  /** null: no power time series (cluster mode keeps no raw samples): no timeseries.csv, no power plot. */
  power: PowerPoint[] | null;
  windows: Band[];
  environment: Record<string, string>;
  method?: ReportMethod | undefined;
  configurations?: readonly ConfigurationEntry[] | undefined;
  /** Adaptive cycles' outcome: plots/ci-half-width.svg and a report section. */
  adaptive?: AdaptiveOutcome | null | undefined;
  analysis?: ExperimentAnalysis | undefined;
}

/** plots/ladder-<group>-<metric>.svg for every load ladder. */
function ladderPlots(i: ResultsFilesInput): [string, string][] {
  return (i.analysis?.ladders ?? []).flatMap((c) =>
    Object.entries(ladderCharts(c, i.simulated)).map(
      ([m, svg]) => [`plots/ladder-${c.group}-${m}.svg`, svg] as [string, string],
    ),
  );
}

/** plots/pareto-frontier.svg when two or more configurations have J/token and tokens/s. */
function frontierPlot(i: ResultsFilesInput): [string, string][] {
  const axis = TIME_AXES['tokensPerSecond'] as TimeAxis;
  const { points } = configurationFrontier(i.results.configurations, axis);
  return points.length < 2 ? [] : [['plots/pareto-frontier.svg', frontierChart(points, axis, i.labels, i.simulated)]];
}

/** Relative path -> content of every derived results file. */
export function resultsFiles(i: ResultsFilesInput): Map<string, string> {
  const cdfs: Record<string, Record<string, Array<readonly [number, number]>>> = {};
  for (const c of i.results.configurations) {
    const cdf = (m: 'ttftMs' | 'itlMs' | 'e2eMs'): Array<[number, number]> =>
      i.aggregator.latencyCdf(c.runsIncluded, m);
    cdfs[c.configId] = { ttftMs: cdf('ttftMs'), itlMs: cdf('itlMs'), e2eMs: cdf('e2eMs') };
  }
  const { results, labels, simulated, windows } = i;
  const power = i.power ?? [];
  return new Map([
    ['runs.csv', runsCsv(results)],
    ['configs.csv', configsCsv(results, labels)],
    ...(i.power === null ? [] : [['timeseries.csv', timeseriesCsv(power)] as const]),
    ['plots/joules-per-token.svg', jPerTokenChart({ results, configLabels: labels, simulated })],
    ['plots/ttft-cdf.svg', latencyCdfChart({ cdfs, configLabels: labels }, 'ttftMs', 'TTFT')],
    ['plots/itl-cdf.svg', latencyCdfChart({ cdfs, configLabels: labels }, 'itlMs', 'ITL')],
    ...(i.adaptive === null || i.adaptive === undefined
      ? []
      : [['plots/ci-half-width.svg', adaptiveChart(i.adaptive, labels, simulated)] as const]),
    ...(i.power === null ? [] : [['plots/power.svg', powerChart({ power, windows, simulated })] as const]),
    ...ladderPlots(i),
    ...frontierPlot(i),
    [
      'report.html',
      reportHtml({
        title: i.title,
        simulated,
        manifestPath: i.manifestPath,
        generatedAt: i.generatedAt,
        results,
        configLabels: labels,
        cdfs,
        power,
        windows,
        environment: i.environment,
        method: i.method,
        configurations: i.configurations,
        analysis: i.analysis,
        adaptive: i.adaptive,
      }),
    ],
  ]);
}
