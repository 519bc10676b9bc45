// The results directory: experiment.json (versioned), runs.csv, configs.csv, timeseries.csv,
// plots/*.svg and a self-contained report.html. Per-run files (runs/<id>.json) are written once,
// when the run completes, and never rewritten: a resumed experiment keeps them byte-for-byte.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AggregateResults, Aggregator, RunResult } from '../aggregator/index.ts';
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
import { damaged, type LocalState } from './state.ts';

export const RESULTS_SCHEMA_VERSION = 1;

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

export function writeRunFile(dir: string, file: RunFile): void {
  const runs = join(dir, 'runs');
  mkdirSync(runs, { recursive: true });
  const path = join(runs, `${file.result.runId}.json`);
  if (existsSync(path)) return;
  writeFileAtomic(path, JSON.stringify(file, null, 2) + '\n');
}

export function removeRunFile(dir: string, runId: string): void {
  rmSync(join(dir, 'runs', `${runId}.json`), { force: true });
}

function readRunFiles(dir: string): RunFile[] {
  const runs = join(dir, 'runs');
  if (!existsSync(runs)) return [];
  return readdirSync(runs)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      try {
        return JSON.parse(readFileSync(join(runs, f), 'utf8')) as RunFile;
      } catch (err) {
        throw damaged(join(runs, f), `not readable JSON (${(err as Error).message})`, err);
      }
    });
}

export interface WriteResultsInput {
  dir: string;
  loaded: LoadedExperiment;
  state: LocalState;
  results: AggregateResults;
  aggregator: Aggregator;
}

export function writeResults(input: WriteResultsInput): ResultsSummary {
  const { dir, loaded, state, results } = input;
  const labels = configLabelsOf(loaded.matrix);
  const runFiles = readRunFiles(dir);
  const power = runFiles.flatMap((f) => f.power).sort((a, b) => a.tMs - b.tMs);
  const windows: Band[] = runFiles.flatMap((f) =>
    f.windowStartMs !== null && f.windowEndMs !== null
      ? [{ start: f.windowStartMs, end: f.windowEndMs, label: f.result.runId }]
      : [],
  );
  const simulated = state.simulated;
  const best = results.experiment.bestConfiguration;
  const summary: ResultsSummary = {
    out: dir,
    simulated,
    runsPlanned: results.runs.length,
    runsComplete: results.runs.filter((r) => r.status === 'complete').length,
    runsFailed: Object.values(state.runs).filter((r) => r.status === 'failed').length,
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
    })),
    runStates: state.runs,
    results,
    best: summary.best,
    gpuSettings: gpuSettingsRows(results, labels),
    phaseSplit: { method: PHASE_SPLIT_METHOD, assumptions: PHASE_SPLIT_ASSUMPTIONS, splits: [] as PhaseSplit[] },
  };
  experimentJson.phaseSplit.splits = phaseSplits(experimentJson.configurations, results);
  mkdirSync(join(dir, 'plots'), { recursive: true });
  writeFileAtomic(join(dir, 'experiment.json'), JSON.stringify(experimentJson, null, 2) + '\n');
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
  });
  for (const [name, content] of files) writeFileAtomic(join(dir, name), content);
  return summary;
}
