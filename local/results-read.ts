// Reading a results directory back (`llem results show|export|compare`): validated, versioned. show and
// compare read summary.json (size independent of the run count); directories written before it existed
// (ADR 0025) are read from experiment.json as before.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InvalidInputError } from '../lib/errors.ts';
import type { AdaptiveOutcome, AggregateResults, ExperimentAnalysis } from '../aggregator/index.ts';
import { phasePairConfigIds, type ConfigurationEntry } from '../report/gpu-analysis.ts';
import { readLines } from './line-file.ts';
import { RESULTS_SCHEMA_VERSION, RUN_RESULTS_FILE, SUMMARY_FILE } from './results.ts';

const statOf = z.looseObject({
  mean: z.number().nullable(),
  ci95Low: z.number().nullable().optional(),
  ci95High: z.number().nullable().optional(),
});
/** The fields show/compare read from each configuration: a damaged file fails here, by path. */
const ConfigResultSchema = z.looseObject({
  configId: z.string(),
  configHash: z.string(),
  metrics: z.looseObject({ joulesPerToken: statOf, tokensPerSecond: statOf }),
  latencyPooled: z.looseObject({ ttftMs: z.looseObject({ p99: z.number().nullable() }) }),
});

const ResultsDocumentSchema = z.looseObject({
  schemaVersion: z.number(),
  kind: z.enum(['llem.dev/results', 'llem.dev/results-summary']),
  simulated: z.boolean(),
  generatedAt: z.string(),
  configurations: z.array(z.looseObject({ id: z.string(), label: z.string().optional(), configHash: z.string() })),
  results: z.looseObject({
    runs: z.array(z.unknown()).optional(),
    configurations: z.array(ConfigResultSchema),
    experiment: z.unknown(),
  }),
  best: z.unknown(),
});

export interface ResultsDocument {
  schemaVersion: number;
  simulated: boolean;
  generatedAt: string;
  configurations: Array<{ id: string; label?: string | undefined; configHash: string }>;
  /** `runs` only when read from a directory without summary.json (the runs stream from run-results.ndjson). */
  results: Omit<AggregateResults, 'runs'> & { runs?: AggregateResults['runs'] };
  /** The Pareto/SLO/ladder analysis (ADR 0030); absent in directories written before it. */
  analysis?: ExperimentAnalysis | undefined;
  /** The adaptive-cycle outcome (ADR 0031); null or absent for fixed cycles. */
  adaptive?: AdaptiveOutcome | null | undefined;
  /** The file it was read from: summary.json, or experiment.json in directories written before it. */
  source: string;
}

export function readResultsDirectory(dir: string): ResultsDocument {
  const summary = join(dir, SUMMARY_FILE);
  const path = existsSync(summary) ? summary : join(dir, 'experiment.json');
  if (!existsSync(path)) {
    throw new InvalidInputError([
      {
        file: dir,
        path: '',
        message: 'not a llem results directory (no experiment.json); pass the --out directory of a finished `llem run`',
      },
    ]);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidInputError(
      [{ file: path, path: '', message: `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})` }],
      { cause: err },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidInputError([
      {
        file: path,
        path: '',
        message: `not valid JSON (${(err as Error).message}); run llem run on that directory again to rewrite it`,
      },
    ]);
  }
  const parsed = ResultsDocumentSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidInputError([
      {
        file: path,
        path: issue?.path.join('.') ?? '',
        message: `not a complete llem results file: ${issue?.message ?? 'invalid'}; run llem run on that directory again to rewrite it`,
      },
    ]);
  }
  if (parsed.data.schemaVersion > RESULTS_SCHEMA_VERSION) {
    throw new InvalidInputError([
      {
        file: path,
        path: 'schemaVersion',
        message: `version ${parsed.data.schemaVersion} is newer than this llem reads (${RESULTS_SCHEMA_VERSION}); upgrade llem`,
      },
    ]);
  }
  return { ...(parsed.data as unknown as Omit<ResultsDocument, 'source'>), source: path };
}

export interface ComparisonRow {
  label: string;
  configHash: string;
  a: number | null;
  b: number | null;
  /** (b - a) / a, when both exist. */
  relativeChange: number | null;
  /** True when the two 95% CIs do not overlap. */
  significant: boolean | null;
}

/** J/token per configuration, matched by config hash (same server + workload), A vs B. */
export function compareResults(a: ResultsDocument, b: ResultsDocument): ComparisonRow[] {
  const labelOf = (d: ResultsDocument, id: string): string => d.configurations.find((c) => c.id === id)?.label ?? id;
  const rows: ComparisonRow[] = [];
  for (const ca of a.results.configurations) {
    const cb = b.results.configurations.find((c) => c.configHash === ca.configHash);
    const ma = ca.metrics.joulesPerToken;
    const mb = cb?.metrics.joulesPerToken;
    const av = ma.mean;
    const bv = mb?.mean ?? null;
    const overlap =
      mb === undefined || ma.ci95Low === null || ma.ci95High === null || mb.ci95Low === null || mb.ci95High === null
        ? null
        : !(ma.ci95High < mb.ci95Low || mb.ci95High < ma.ci95Low);
    rows.push({
      label: labelOf(a, ca.configId),
      configHash: ca.configHash,
      a: av,
      b: bv,
      relativeChange: av !== null && bv !== null && av !== 0 ? (bv - av) / av : null,
      significant: overlap === null ? null : !overlap,
    });
  }
  return rows;
}

/**
 * The results with the runs the GPU-settings and prefill/decode tables read. summary.json leaves runs out (ADR
 * 0025), so they stream from run-results.ndjson, keeping only runs that applied GPU settings or belong to a
 * prefill/decode pair: a 10^5-run directory without either costs one pass of substring checks, no parsing.
 */
export function withAnalysisRuns(dir: string, doc: ResultsDocument): AggregateResults {
  if (doc.results.runs !== undefined) return doc.results as AggregateResults;
  const pairIds = phasePairConfigIds(doc.configurations as ConfigurationEntry[]);
  const runs: AggregateResults['runs'] = [];
  const path = join(dir, RUN_RESULTS_FILE);
  if (existsSync(path)) {
    for (const line of readLines(path)) {
      if (!line.terminated || (pairIds.size === 0 && !line.text.includes('"gpuSettings":[{'))) continue;
      const run = JSON.parse(line.text) as AggregateResults['runs'][number];
      if ((run.gpuSettings?.length ?? 0) > 0 || pairIds.has(run.configId)) runs.push(run);
    }
  }
  return { ...doc.results, runs };
}
