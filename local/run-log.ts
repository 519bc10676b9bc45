// runs.ndjson: the per-run record (result, power series, marks, window) of every finished run, one line
// each, appended once and never rewritten (ADR 0025). It replaces runs/<id>.json (one file per run: 10^5
// files in one directory at scale); directories written that way are still read, and resumed into.
// A run about to be measured again gets a `superseded` line, so the last line for a run id is the truth.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PowerPoint } from '../report/csv.ts';
import { appendLines, endsTorn, forEachLine, readLineAt, truncateTornTail } from './line-file.ts';
import type { RunFile } from './results.ts';
import { damaged } from './state.ts';

export const RUN_LOG_FILE = 'runs.ndjson';
/** The layout before ADR 0025: one JSON file per run. Read, and resumed into, never written. */
export const LEGACY_RUNS_DIR = 'runs';

interface Superseded {
  runId: string;
  superseded: true;
}

type Location = { file: string } | { offset: number; length: number };

function runIdOf(value: unknown): { runId: string; superseded: boolean } | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as { runId?: unknown; superseded?: unknown; result?: { runId?: unknown } };
  if (v.superseded === true && typeof v.runId === 'string') return { runId: v.runId, superseded: true };
  if (typeof v.result?.runId === 'string') return { runId: v.result.runId, superseded: false };
  return null;
}

/** Where each run's live record is: the last runs.ndjson line for it, else its legacy runs/<id>.json. */
export class RunFileIndex {
  private readonly locations = new Map<string, Location>();
  readonly logPath: string;
  /** The log's last line was cut short by a crash (skipped; a writer cuts it off before appending). */
  tornTail = false;
  logBytes = 0;

  constructor(readonly dir: string) {
    this.logPath = join(dir, RUN_LOG_FILE);
    this.scan();
  }

  private scan(): void {
    const dir = this.dir;
    const legacy = join(dir, LEGACY_RUNS_DIR);
    if (existsSync(legacy)) {
      for (const f of readdirSync(legacy)) {
        if (f.endsWith('.json')) this.locations.set(f.slice(0, -'.json'.length), { file: join(legacy, f) });
      }
    }
    if (!existsSync(this.logPath)) return;
    this.logBytes = statSync(this.logPath).size;
    forEachLine(this.logPath, (line) => {
      if (line.text.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line.text);
      } catch (err) {
        if (!line.terminated) {
          this.tornTail = true;
          return;
        }
        throw damaged(
          this.logPath,
          `line at byte ${line.offset} is not readable JSON (${(err as Error).message})`,
          err,
        );
      }
      const id = runIdOf(parsed);
      if (id === null) throw damaged(this.logPath, `line at byte ${line.offset} is not a run record`);
      if (id.superseded) this.locations.delete(id.runId);
      else this.locations.set(id.runId, { offset: line.offset, length: line.length });
    });
    this.tornTail = this.tornTail || endsTorn(this.logPath, this.logBytes);
  }

  has(runId: string): boolean {
    return this.locations.has(runId);
  }

  get size(): number {
    return this.locations.size;
  }

  runIds(): IterableIterator<string> {
    return this.locations.keys();
  }

  /** The run's record, read from disk now (nothing is cached: memory stays one record). */
  get(runId: string): RunFile | undefined {
    const loc = this.locations.get(runId);
    if (loc === undefined) return undefined;
    const where = 'file' in loc ? loc.file : this.logPath;
    try {
      const text = 'file' in loc ? readFileSync(loc.file, 'utf8') : readLineAt(this.logPath, loc.offset, loc.length);
      return JSON.parse(text) as RunFile;
    } catch (err) {
      throw damaged(where, `not readable JSON (${(err as Error).message})`, err);
    }
  }

  /** The power series and window of one run, as exports need them. */
  window(runId: string): { power: PowerPoint[]; windowStartMs: number | null; windowEndMs: number | null } | undefined {
    const f = this.get(runId);
    if (f === undefined) return undefined;
    return {
      power: Array.isArray(f.power) ? f.power : [],
      windowStartMs: f.windowStartMs ?? null,
      windowEndMs: f.windowEndMs ?? null,
    };
  }

  forget(runId: string): void {
    this.locations.delete(runId);
  }

  record(runId: string, offset: number, length: number): void {
    this.locations.set(runId, { offset, length });
  }
}

/** The writer: appends a finished run's record once; supersedes it when the run is measured again. */
export class RunLog {
  private readonly index: RunFileIndex;
  private bytes: number;

  constructor(dir: string) {
    this.index = new RunFileIndex(dir);
    this.bytes = this.index.tornTail ? truncateTornTail(this.index.logPath) : this.index.logBytes;
  }

  has(runId: string): boolean {
    return this.index.has(runId);
  }

  /** Written once: a run that already has a live record keeps it byte for byte. */
  append(file: RunFile): void {
    const runId = file.result.runId;
    if (this.index.has(runId)) return;
    const line = JSON.stringify(file);
    const offset = this.write(line);
    this.index.record(runId, offset, Buffer.byteLength(line));
  }

  /** A crash between a run's record and its state saying complete leaves a record of an attempt about to
   * be superseded: mark it so the log only ever describes what the results hold. */
  supersede(runId: string): void {
    if (!this.index.has(runId)) return;
    rmSync(join(this.index.dir, LEGACY_RUNS_DIR, `${runId}.json`), { force: true });
    const line: Superseded = { runId, superseded: true };
    this.write(JSON.stringify(line));
    this.index.forget(runId);
  }

  /** Appends one line; returns its byte offset. */
  private write(line: string): number {
    appendLines(this.index.logPath, [line]);
    const offset = this.bytes;
    this.bytes = offset + Buffer.byteLength(line) + 1;
    return offset;
  }
}
