// `llem results export --format llm-d|mlenergy-csv`, streamed (ADR 0025): the runs are read one at a time
// from run-results.ndjson and each run's power series is read from runs.ndjson by offset when its row is
// written, so memory does not grow with the run count. Directories written before ADR 0025 (every run in
// experiment.json, runs/<id>.json) are read the old way: the whole document at once.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../lib/errors.ts';
import type { RunResult } from '../aggregator/index.ts';
import type { ExportContext } from '../report/exports.ts';
import { readLines } from './line-file.ts';
import { readResultsDirectory } from './results-read.ts';
import { RUN_RESULTS_FILE } from './results.ts';
import { RunFileIndex } from './run-log.ts';

export interface StreamedExport {
  context: ExportContext;
  /** The runs in the order the results list them; read lazily. */
  runs: Iterable<RunResult>;
}

function* runsFromLines(path: string): Generator<RunResult> {
  for (const line of readLines(path)) {
    if (line.text.trim() === '') continue;
    try {
      yield JSON.parse(line.text) as RunResult;
    } catch (err) {
      throw new InvalidInputError(
        [
          {
            file: path,
            path: '',
            message: `line at byte ${line.offset} is not readable JSON (${(err as Error).message}); run llem run on that directory again to rewrite it`,
          },
        ],
        { cause: err },
      );
    }
  }
}

export function openExport(dir: string): StreamedExport {
  const doc = readResultsDirectory(dir) as ReturnType<typeof readResultsDirectory> & {
    experiment?: { metadata?: { name?: string }; spec?: ExportContext['spec'] };
    environment?: Record<string, string>;
    configurations: ExportContext['configurations'];
  };
  // Built on the first lookup: the ML.ENERGY CSV needs no power series, so it never scans runs.ndjson.
  let runIndex: RunFileIndex | null = null;
  const context: ExportContext = {
    experimentName: doc.experiment?.metadata?.name ?? 'experiment',
    experimentUid: doc.results.experimentUid,
    simulated: doc.simulated,
    spec: doc.experiment?.spec ?? {},
    environment: doc.environment ?? {},
    configurations: doc.configurations,
    runFiles: { get: (runId) => (runIndex ??= new RunFileIndex(dir)).window(runId) },
  };
  const linesPath = join(dir, RUN_RESULTS_FILE);
  const runs: Iterable<RunResult> =
    doc.results.runs !== undefined
      ? doc.results.runs
      : existsSync(linesPath)
        ? { [Symbol.iterator]: () => runsFromLines(linesPath) }
        : [];
  if (doc.results.runs === undefined && !existsSync(linesPath)) {
    throw new InvalidInputError([
      {
        file: linesPath,
        path: '',
        message: `is missing though ${doc.source} refers to it; run llem run on that directory again to rewrite it`,
      },
    ]);
  }
  return { context, runs };
}
