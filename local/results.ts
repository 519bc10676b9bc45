// The results directory: experiment.json (versioned, everything), summary.json (everything but the runs:
// what `llem results show|compare` read), run-results.ndjson (the final result of every run, one a line:
// what exports stream), runs.csv, configs.csv, timeseries.csv, plots/*.svg and a self-contained
// report.html. Per-run records (runs.ndjson, ADR 0025) are appended once, when the run finishes, and
// never rewritten: a resumed experiment keeps them byte-for-byte.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AggregateResults, Aggregator, RunResult } from '../aggregator/index.ts';
import { analyseExperiment, type ExperimentAnalysis } from '../aggregator/index.ts';
import type { PowerPoint } from '../report/csv.ts';
import { configLabelsOf, resultsFiles } from '../report/files.ts';
import type { Band } from '../report/svg.ts';
import type { LoadedExperiment } from '../lib/manifest/index.ts';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import { formatIssue } from '../lib/errors.ts';
import {
  gpuSettingsRows,
  PHASE_SPLIT_ASSUMPTIONS,
  PHASE_SPLIT_METHOD,
  phaseSplits,
  type PhaseSplit,
} from '../report/gpu-analysis.ts';
import type { RunObservation } from './observer.ts';
import type { LocalState } from './state.ts';
import type { LocalAdaptive } from './adaptive.ts';
import { RunFileIndex } from './run-log.ts';
import { writeJsonStreamed, writeLinesAtomic } from './streamed-json.ts';

export const RESULTS_SCHEMA_VERSION = 1;
/** summary.json: experiment.json without `results.runs` and `runStates` (constant size in the run count). */
export const SUMMARY_FILE = 'summary.json';
export const RUN_RESULTS_FILE = 'run-results.ndjson';

export interface RunFile {
  result: RunResult;
  power: PowerPoint[];
  marks: RunObservation['marks'];
  windowStartMs: number | null;
  windowEndMs: number | null;
}

export interface ResultsSummary {
  out: string;
  simulated: boolean;
  runsPlanned: number;
  runsComplete: number;
  runsFailed: number;
  /** Runs adaptive cycles found not needed (their configuration stopped first). */
  runsSkipped: number;
  /** Chosen on `metric` (mean gross J/token); the baseline-subtracted mean is shown beside it. */
  best: {
    configId: string;
    label: string;
    metric: 'joulesPerToken';
    joulesPerToken: number;
    baselineSubtractedJoulesPerToken: number | null;
    cycles: number;
    fewCycles: boolean;
  } | null;
}

/** Every live run record, read one at a time (old runs/<id>.json layout included). */
function* runFilesOf(dir: string): Generator<RunFile> {
  const index = new RunFileIndex(dir);
  for (const id of [...index.runIds()].sort()) {
    const f = index.get(id);
    if (f !== undefined) yield f;
  }
}

export interface WriteResultsInput {
  dir: string;
  loaded: LoadedExperiment;
  state: LocalState;
  results: AggregateResults;
  aggregator: Aggregator;
  /** Adaptive cycles' decisions (null: a fixed cycle count). */
  adaptive?: LocalAdaptive | null;
}

/** SLO goodput and load-ladder curves (ADR 0030), as a field to spread: absent unless the spec asks for them. */
function localAnalysis(input: WriteResultsInput): { analysis?: ExperimentAnalysis } {
  const { loaded, state } = input;
  const analysis = analyseExperiment({
    configurations: loaded.matrix.configurations,
    runs: loaded.matrix.runs,
    slo: loaded.experiment.spec.slo,
    aggregator: input.aggregator,
    results: input.results,
    ended: (id) => ['complete', 'failed', 'skipped'].includes(state.runs[id]?.status ?? ''),
  });
  return analysis.slo === null && analysis.ladders.length === 0 ? {} : { analysis };
}

export function writeResults(input: WriteResultsInput): ResultsSummary {
  const { dir, loaded, state, results } = input;
  const labels = configLabelsOf(loaded.matrix);
  const power: PowerPoint[] = [];
  const windows: Band[] = [];
  for (const f of runFilesOf(dir)) {
    power.push(...f.power);
    if (f.windowStartMs !== null && f.windowEndMs !== null)
      windows.push({ start: f.windowStartMs, end: f.windowEndMs, label: f.result.runId });
  }
  power.sort((a, b) => a.tMs - b.tMs);
  const simulated = state.simulated;
  const best = results.experiment.bestConfiguration;
  const adaptive = input.adaptive?.decide() ?? null;
  const summary: ResultsSummary = {
    out: dir,
    simulated,
    runsPlanned: results.runs.length,
    runsComplete: results.runs.filter((r) => r.status === 'complete').length,
    runsFailed: Object.values(state.runs).filter((r) => r.status === 'failed').length,
    runsSkipped: adaptive === null ? 0 : [...adaptive.runs.values()].filter((d) => d === 'skip').length,
    best:
      best === null
        ? null
        : {
            configId: best.configId,
            label: labels[best.configId] ?? best.configId,
            metric: best.metric,
            joulesPerToken: best.joulesPerTokenMean,
            baselineSubtractedJoulesPerToken: best.baselineSubtractedJoulesPerTokenMean,
            cycles: best.cycles,
            fewCycles: best.joulesPerToken.flags.includes('fewCycles'),
          },
  };
  const generatedAt = new Date().toISOString();
  const analysisField = localAnalysis(input);
  const experimentJson = {
    schemaVersion: RESULTS_SCHEMA_VERSION,
    kind: 'llem.dev/results',
    simulated,
    generatedAt,
    manifestFile: state.manifestFile,
    experiment: state.experiment,
    environment: state.environment,
    configurations: loaded.matrix.configurations.map((c) => ({
      id: c.id,
      label: labels[c.id],
      configHash: c.configHash,
      backend: c.backend,
      point: c.point,
      workload: c.workload,
      gpu: c.gpu,
      ...(c.ladder === undefined
        ? {}
        : { ladder: { group: c.ladder.group, step: c.ladder.step, load: c.ladder.value } }),
    })),
    runStates: state.runs,
    results,
    best: summary.best,
    adaptive: adaptive?.outcome ?? null,
    gpuSettings: gpuSettingsRows(results, labels),
    phaseSplit: { method: PHASE_SPLIT_METHOD, assumptions: PHASE_SPLIT_ASSUMPTIONS, splits: [] as PhaseSplit[] },
    // SLO goodput and load-ladder curves (ADR 0030): only when the spec asks for them.
    ...analysisField,
  };
  experimentJson.phaseSplit.splits = phaseSplits(experimentJson.configurations, results);
  mkdirSync(join(dir, 'plots'), { recursive: true });
  writeRunDocuments(dir, experimentJson, results.runs);
  const files = resultsFiles({
    title: `llem results: ${loaded.experiment.metadata.name}${simulated ? ' (simulated)' : ''}`,
    simulated,
    manifestPath: state.manifestFile,
    generatedAt,
    results,
    aggregator: input.aggregator,
    labels,
    power,
    windows,
    environment: state.environment,
    method: { ...loaded.experiment.spec.measurement, warnings: loaded.warnings.map((w) => formatIssue(w)) },
    configurations: experimentJson.configurations,
    ...analysisField,
    adaptive: adaptive?.outcome ?? null,
  });
  for (const [name, content] of files) writeFileAtomic(join(dir, name), content);
  return summary;
}

/**
 * experiment.json keeps its v1 layout (every run in `results.runs`) but is written run by run, never as one
 * string (10^5 runs are ~200 MB); run-results.ndjson holds the same runs one a line, and summary.json the
 * rest, written last: a reader that finds it finds the files it describes.
 */
export function writeRunDocuments(dir: string, doc: Record<string, unknown>, runs: readonly unknown[]): void {
  writeLinesAtomic(join(dir, RUN_RESULTS_FILE), runs);
  const results = doc['results'] as Record<string, unknown>;
  writeJsonStreamed(join(dir, 'experiment.json'), doc, ['results', 'runs'], runs);
  const { runStates: _runStates, ...rest } = doc;
  const { runs: _runs, ...summaryResults } = results;
  const summary = { ...rest, kind: 'llem.dev/results-summary', results: summaryResults, runCount: runs.length };
  writeFileAtomic(join(dir, SUMMARY_FILE), JSON.stringify(summary, null, 2) + '\n');
}
