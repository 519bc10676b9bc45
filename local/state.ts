// The results directory's own bookkeeping, so a killed `llem run` (SIGKILL included) resumes:
//   .llem/state.json       which runs are complete, attempts used, the resolved spec it started with
//   .llem/checkpoint.bin   the aggregator's checkpoint after the last finished run
// Both are replaced atomically (temp file + rename): a crash leaves the old or the new, never half.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import { InvalidInputError } from '../lib/errors.ts';
import { Aggregator } from '../aggregator/index.ts';

export const STATE_VERSION = 1;

const RunRecordSchema = z.object({
  status: z.enum(['pending', 'running', 'complete', 'failed']),
  /** Attempts started so far; the next attempt number is this value. */
  attempts: z.number().int().min(0),
  lastError: z.string().nullable(),
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

const StateSchema = z.object({
  version: z.literal(STATE_VERSION),
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
    if (!parsed.success) throw damaged(this.statePath, `not a llem state file of version ${STATE_VERSION}`);
    return parsed.data;
  }

  writeState(state: LocalState): void {
    mkdirSync(this.stateDir, { recursive: true });
    writeFileAtomic(this.statePath, JSON.stringify(state, null, 2) + '\n');
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
    rmSync(join(this.dir, 'runs'), { recursive: true, force: true });
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
