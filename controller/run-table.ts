// The per-run ledger of one experiment (phase, attempt, times, last failure), kept outside `status`
// (ADR 0014): in the checkpoint KV bucket, in chunks of CHUNK_RUNS runs under
// `<experiment key>.runs.<chunk>`, so a 20,000-run experiment writes only the chunks that changed.
// Written before the pods it describes are created or deleted (write-ahead): a restarted controller
// never falls back to an attempt it already started, whatever status or the informer show.
import { z } from 'zod';
import { RunSummarySchema, type RunSummary } from '../api/status.ts';
import type { PlannedRun } from '../api/matrix.ts';
import type { Bus } from '../lib/bus/types.ts';
import { CheckpointError } from '../lib/errors.ts';

export const CHUNK_RUNS = 500;
const TABLE_VERSION = 1;

const ChunkSchema = z.strictObject({ v: z.literal(TABLE_VERSION), runs: z.array(RunSummarySchema) });

const enc = new TextEncoder();
const dec = new TextDecoder();

export function runChunkKey(experimentKey: string, chunk: number): string {
  return `${experimentKey}.runs.${chunk}`;
}

function initial(run: PlannedRun): RunSummary {
  return { id: run.id, configurationId: run.configurationId, cycle: run.cycle, phase: 'Pending', attempt: 0 };
}

export class RunTable {
  private runs: RunSummary[];
  private readonly dirty = new Set<number>();
  private writing: Promise<void> = Promise.resolve();
  /** The write queued behind the one running (not started yet): later calls join it. */
  private queued: Promise<void> | undefined;

  private constructor(
    private readonly bus: Pick<Bus, 'putCheckpoint' | 'getCheckpoint'>,
    private readonly experimentKey: string,
    runs: RunSummary[],
  ) {
    this.runs = runs;
  }

  /**
   * The table from the bucket; runs it has no chunk for start from `seed` (an older controller's
   * status.runs) or Pending at attempt 0. A chunk that does not parse is an error, never a silent reset.
   */
  static async load(
    bus: Pick<Bus, 'putCheckpoint' | 'getCheckpoint'>,
    experimentKey: string,
    planned: readonly PlannedRun[],
    seed: readonly RunSummary[],
  ): Promise<RunTable> {
    const known = new Map(seed.map((r) => [r.id, r]));
    const chunks = Math.ceil(planned.length / CHUNK_RUNS);
    const loaded = await Promise.all(
      Array.from({ length: chunks }, (_, i) => bus.getCheckpoint(runChunkKey(experimentKey, i))),
    );
    for (const [i, record] of loaded.entries()) {
      if (record === null) continue;
      const parsed = ChunkSchema.safeParse(JSON.parse(dec.decode(record.state)));
      if (!parsed.success)
        throw new CheckpointError(
          `run table chunk ${i} of ${experimentKey} is malformed: ${z.prettifyError(parsed.error)}`,
        );
      for (const r of parsed.data.runs) known.set(r.id, r);
    }
    const runs = planned.map((p) => {
      const r = known.get(p.id);
      return r !== undefined && r.configurationId === p.configurationId ? r : initial(p);
    });
    return new RunTable(bus, experimentKey, runs);
  }

  /** Every planned run, in plan order. */
  list(): RunSummary[] {
    return this.runs;
  }

  /** Takes the next state; chunks holding a run whose object changed are written on `persist()`. */
  update(next: RunSummary[]): void {
    for (let i = 0; i < next.length; i++) {
      if (next[i] !== this.runs[i]) this.dirty.add(Math.floor(i / CHUNK_RUNS));
    }
    this.runs = next;
  }

  get pendingWrites(): number {
    return this.dirty.size;
  }

  /**
   * Writes the changed chunks; serialised, so two reconciles never interleave chunk writes. Calls made
   * while a write runs share the one queued after it (it takes every chunk dirty when it starts), so a
   * slow store never builds a backlog of writes, one per pass, that pod creates wait behind.
   */
  persist(): Promise<void> {
    if (this.queued !== undefined) return this.queued;
    const next = this.writing
      .catch(() => undefined)
      .then(async () => {
        this.queued = undefined;
        const chunks = [...this.dirty];
        this.dirty.clear();
        try {
          await Promise.all(
            chunks.map((c) =>
              this.bus.putCheckpoint(runChunkKey(this.experimentKey, c), { state: this.encode(c), lastStreamSeq: 0 }),
            ),
          );
        } catch (err) {
          for (const c of chunks) this.dirty.add(c);
          throw err;
        }
      });
    this.queued = next;
    this.writing = next;
    return next;
  }

  private encode(chunk: number): Uint8Array {
    const runs = this.runs.slice(chunk * CHUNK_RUNS, (chunk + 1) * CHUNK_RUNS);
    return enc.encode(JSON.stringify({ v: TABLE_VERSION, runs }));
  }
}
