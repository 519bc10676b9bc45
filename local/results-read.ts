// Reading a results directory back (`llem results show|export|compare`): validated, versioned.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InvalidInputError } from '../lib/errors.ts';
import type { AggregateResults } from '../aggregator/index.ts';
import type { PowerPoint } from '../report/csv.ts';
import type { ExportInput } from '../report/exports.ts';
import { RESULTS_SCHEMA_VERSION } from './results.ts';

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
  kind: z.literal('llem.dev/results'),
  simulated: z.boolean(),
  generatedAt: z.string(),
  configurations: z.array(z.looseObject({ id: z.string(), label: z.string().optional(), configHash: z.string() })),
  results: z.looseObject({
    runs: z.array(z.unknown()),
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
  results: AggregateResults;
}

export function readResultsDirectory(dir: string): ResultsDocument {
  const path = join(dir, 'experiment.json');
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
  return parsed.data as unknown as ResultsDocument;
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

/** What `llem results export --format llm-d|mlenergy-csv` needs: experiment.json's fields and the per-run files. */
export function readExportInput(dir: string): ExportInput {
  const doc = readResultsDirectory(dir) as ResultsDocument & {
    experiment?: { metadata?: { name?: string }; spec?: ExportInput['spec'] };
    environment?: Record<string, string>;
    configurations: ExportInput['configurations'];
  };
  const runFiles = new Map<string, { power: PowerPoint[]; windowStartMs: number | null; windowEndMs: number | null }>();
  const runsDir = join(dir, 'runs');
  for (const f of existsSync(runsDir) ? readdirSync(runsDir).filter((x) => x.endsWith('.json')) : []) {
    try {
      const file = JSON.parse(readFileSync(join(runsDir, f), 'utf8')) as {
        result?: { runId?: string };
        power?: PowerPoint[];
        windowStartMs?: number | null;
        windowEndMs?: number | null;
      };
      if (typeof file.result?.runId !== 'string') continue;
      runFiles.set(file.result.runId, {
        power: Array.isArray(file.power) ? file.power : [],
        windowStartMs: file.windowStartMs ?? null,
        windowEndMs: file.windowEndMs ?? null,
      });
    } catch (err) {
      throw new InvalidInputError([
        {
          file: join(runsDir, f),
          path: '',
          message: `not readable JSON (${(err as Error).message}); run llem run on that directory again to rewrite it`,
        },
      ]);
    }
  }
  return {
    experimentName: doc.experiment?.metadata?.name ?? 'experiment',
    experimentUid: doc.results.experimentUid,
    simulated: doc.simulated,
    spec: doc.experiment?.spec ?? {},
    environment: doc.environment ?? {},
    configurations: doc.configurations,
    runs: doc.results.runs,
    runFiles,
  };
}
