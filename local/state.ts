// The results directory's own bookkeeping, so a killed `llem run` (SIGKILL included) resumes:
//   .llem/state.json       the resolved spec it started with, and the runs as of the last compaction
//   .llem/runs.journal     one line per run transition since then, appended (ADR 0025: rewriting the whole
//                          state on every transition is quadratic at 10^5 runs)
//   .llem/checkpoint.bin   the aggregator's checkpoint after the last finished run
// state.json and checkpoint.bin are replaced atomically (temp file + rename): a crash leaves the old or the
// new, never half. The journal is folded over state.json (last line per run wins), so replaying it over a
// snapshot that already holds it changes nothing: compaction is crash-safe in either order.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import { InvalidInputError } from '../lib/errors.ts';
import { Aggregator } from '../aggregator/index.ts';
import { appendLines, forEachLine, truncateTornTail } from './line-file.ts';

/** 2: runs also in .llem/runs.journal. Version 1 directories (no journal) are read and resumed. */
export const STATE_VERSION = 2;

const RunRecordSchema = z.object({
  /** skipped: a load-ladder step past saturation (aggregator/ladder.ts); lastError says why. */
  status: z.enum(['pending', 'running', 'complete', 'failed', 'skipped']),
  /** Attempts started so far; the next attempt number is this value. */
  attempts: z.number().int().min(0),
  lastError: z.string().nullable(),
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

const StateSchema = z.object({
  version: z.union([z.literal(1), z.literal(STATE_VERSION)]),
  manifestFile: z.string(),
  experimentUid: z.string(),
  simulated: z.boolean(),
  /** The resolved (defaulted) experiment the directory was started with. */
  experiment: z.unknown(),
  startedAt: z.string(),
  runs: z.record(z.string(), RunRecordSchema),
  environment: z.record(z.string(), z.string()),
});
export type LocalState = z.infer<typeof StateSchema>;

const JournalLineSchema = RunRecordSchema.extend({ runId: z.string() });

export class ResultsDirectory {
  readonly dir: string;
  readonly stateDir: string;
  constructor(dir: string) {
    this.dir = dir;
    this.stateDir = join(dir, '.llem');
  }

  get statePath(): string {
    return join(this.stateDir, 'state.json');
  }

  get journalPath(): string {
    return join(this.stateDir, 'runs.journal');
  }

  get checkpointPath(): string {
    return join(this.stateDir, 'checkpoint.bin');
  }

  readState(): LocalState | null {
    if (!existsSync(this.statePath)) return null;
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.statePath, 'utf8'));
    } catch (err) {
      throw damaged(this.statePath, `not readable JSON (${(err as Error).message})`, err);
    }
    const parsed = StateSchema.safeParse(raw);
    if (!parsed.success) throw damaged(this.statePath, `not a llem state file of version 1 or ${STATE_VERSION}`);
    this.foldJournal(parsed.data.runs);
    return parsed.data;
  }

  /** Applies the journal's transitions in order; a torn last line (crash mid-append) is skipped. */
  private foldJournal(runs: LocalState['runs']): void {
    if (!existsSync(this.journalPath)) return;
    forEachLine(this.journalPath, (line) => {
      if (line.text.trim() === '') return;
      let entry;
      try {
        entry = JournalLineSchema.parse(JSON.parse(line.text));
      } catch (err) {
        if (!line.terminated) return;
        throw damaged(this.journalPath, `line at byte ${line.offset} is not a run transition`, err);
      }
      runs[entry.runId] = { status: entry.status, attempts: entry.attempts, lastError: entry.lastError };
    });
  }

  /** Compaction: the whole state as a snapshot, then an empty journal. */
  writeState(state: LocalState): void {
    mkdirSync(this.stateDir, { recursive: true });
    writeFileAtomic(this.statePath, JSON.stringify({ ...state, version: STATE_VERSION }, null, 2) + '\n');
    rmSync(this.journalPath, { force: true });
    this.journalChecked = true;
  }

  private journalChecked = false;

  /** One run's transition, appended (O(1), fsynced): what a resume after SIGKILL starts from. */
  recordRun(runId: string, record: RunRecord): void {
    mkdirSync(this.stateDir, { recursive: true });
    if (!this.journalChecked && existsSync(this.journalPath)) truncateTornTail(this.journalPath);
    this.journalChecked = true;
    appendLines(this.journalPath, [JSON.stringify({ runId, ...record })]);
  }

  /** The saved aggregator state, restored; a damaged file is an input error naming it. */
  restoreCheckpoint(): Aggregator | null {
    if (!existsSync(this.checkpointPath)) return null;
    try {
      return Aggregator.restore(new Uint8Array(readFileSync(this.checkpointPath)));
    } catch (err) {
      throw damaged(this.checkpointPath, (err as Error).message, err);
    }
  }

  readCheckpoint(): Uint8Array | null {
    return existsSync(this.checkpointPath) ? new Uint8Array(readFileSync(this.checkpointPath)) : null;
  }

  writeCheckpoint(bytes: Uint8Array): void {
    mkdirSync(this.stateDir, { recursive: true });
    writeFileAtomic(this.checkpointPath, bytes);
  }

  /** --fresh: forget the previous attempt at this directory (its results files are rewritten). */
  clear(): void {
    rmSync(this.stateDir, { recursive: true, force: true });
    for (const f of ['runs', 'runs.ndjson', 'run-results.ndjson', 'summary.json'])
      rmSync(join(this.dir, f), { recursive: true, force: true });
  }
}

/** Dotted paths whose values differ between two JSON values (at most `limit`). */
export function changedPaths(before: unknown, after: unknown, limit = 8, prefix = ''): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(before) || !isObj(after)) return [prefix === '' ? '(whole document)' : prefix];
  const out: string[] = [];
  for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (out.length >= limit) break;
    out.push(...changedPaths(before[key], after[key], limit - out.length, prefix === '' ? key : `${prefix}.${key}`));
  }
  return out;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'absent' : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function valueAt(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const k of path.split('.'))
    cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[k] : undefined;
  return cur;
}

/** Refuses to resume into a directory that was started with a different experiment. */
export function assertSameExperiment(state: LocalState, experiment: unknown, manifestFile: string, dir: string): void {
  const paths = changedPaths(state.experiment, experiment);
  if (paths.length === 0) return;
  const detail = paths
    .map((p) => `${p} (${show(valueAt(state.experiment, p))} -> ${show(valueAt(experiment, p))})`)
    .join(', ');
  throw new InvalidInputError([
    {
      file: manifestFile,
      path: '',
      message:
        `the manifest changed since ${dir} was started: ${detail}. ` +
        'Use --fresh to start over in that directory, or --out to write to a new one.',
    },
  ]);
}

/** Damaged resume state: bad input (exit 2) naming the file, with the way out. */
export function damaged(file: string, what: string, cause?: unknown): InvalidInputError {
  return new InvalidInputError(
    [
      {
        file,
        path: '',
        message: `is damaged: ${what}; start over with --fresh (the completed runs are then measured again)`,
      },
    ],
    cause === undefined ? {} : { cause },
  );
}
