// Cross-checks a multi-GPU validation (docs/validation/multi-gpu.md, scripts/gpu/validate-multi-gpu.sh) against
// the independent per-GPU counter log (scripts/gpu/nvml_logger.py at 100 Hz, its own pynvml process): for every
// window of every GPU of every run, the energy between the log's counter steps nearest the agent's two window
// edges vs the agent's window energy (pass: within 0.5%); and per run, that its energy is the sum of its GPUs'
// and that no GPU was measured by two replicas. Prints one line per window and a final RESULT line.
//   node --import tsx scripts/gpu/analyse-multi-gpu.ts RAW_DIR [OUT_JSON]
// RAW_DIR: the unpacked multi-gpu-MODE.tgz (gpus.csv, nvml-log.jsonl, results-*/runs.ndjson).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Mark {
  mark: string;
  replica: number;
  gpuUuid: string;
  tMs: number;
  energyMillijoules: number | null;
}
interface RunRecord {
  result: {
    runId: string;
    status: string;
    metrics: { energyJoules: number | null };
    gpus: Array<{ replica: number; gpuUuid: string; energyJoules: number | null }>;
  };
  marks: Mark[];
}
interface Edge {
  tMs: number;
  value: number;
}

const TOLERANCE = 0.005;
const [raw, outFile] = process.argv.slice(2);
if (raw === undefined) throw new Error('usage: analyse-multi-gpu.ts RAW_DIR [OUT_JSON]');

// gpus.csv: "index, uuid, name, ..." per line (nvidia-smi --format=csv,noheader).
const uuidOf = new Map<number, string>(
  readFileSync(join(raw, 'gpus.csv'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(',').map((x) => x.trim()))
    .map(([i, u]) => [Number(i), u ?? ''] as [number, string]),
);

/** Per GPU UUID, the log's counter steps: the midpoint of the two polls around each change, and the new value. */
function logEdges(): Map<string, Edge[]> {
  const last = new Map<string, { t: number; e: number }>();
  const edges = new Map<string, Edge[]>();
  for (const line of readFileSync(join(raw as string, 'nvml-log.jsonl'), 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const row = JSON.parse(line) as { t_ms: number; gpu: number; energy_mj: number };
    const uuid = uuidOf.get(row.gpu) ?? `index-${row.gpu}`;
    const prev = last.get(uuid);
    if (prev !== undefined && row.energy_mj !== prev.e) {
      const list = edges.get(uuid) ?? [];
      list.push({ tMs: (prev.t + row.t_ms) / 2, value: row.energy_mj });
      edges.set(uuid, list);
    }
    last.set(uuid, { t: row.t_ms, e: row.energy_mj });
  }
  return edges;
}

function nearest(edges: readonly Edge[], t: number): Edge | undefined {
  let best: Edge | undefined;
  for (const e of edges) if (best === undefined || Math.abs(e.tMs - t) < Math.abs(best.tMs - t)) best = e;
  return best;
}

/** The live record per run id (the last line for it) of every results-* directory. */
function runs(): Array<{ dir: string; rec: RunRecord }> {
  const out: Array<{ dir: string; rec: RunRecord }> = [];
  for (const dir of readdirSync(raw as string).filter((d) => d.startsWith('results-'))) {
    const file = join(raw as string, dir, 'runs.ndjson');
    if (!existsSync(file)) continue;
    const live = new Map<string, RunRecord>();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      try {
        const rec = JSON.parse(line) as RunRecord;
        if (rec.result !== undefined) live.set(rec.result.runId, rec);
      } catch {
        // a torn last line
      }
    }
    for (const rec of live.values()) out.push({ dir, rec });
  }
  return out;
}

const edges = logEdges();
const rows: Array<Record<string, unknown>> = [];
const problems: string[] = [];
for (const { dir, rec } of runs()) {
  const r = rec.result;
  const sum = r.gpus.reduce((s, g) => s + (g.energyJoules ?? NaN), 0);
  if (!(Math.abs((r.metrics.energyJoules ?? NaN) - sum) <= 1e-9 * Math.abs(sum)))
    problems.push(`${dir} ${r.runId}: energy ${r.metrics.energyJoules} J is not the sum of its GPUs' (${sum} J)`);
  const owners = new Map<string, Set<number>>();
  for (const g of r.gpus) owners.set(g.gpuUuid, (owners.get(g.gpuUuid) ?? new Set()).add(g.replica));
  for (const [u, reps] of owners)
    if (reps.size > 1) problems.push(`${dir} ${r.runId}: ${u} measured by replicas ${[...reps]}`);
  for (const g of r.gpus) {
    const at = (m: string): Mark | undefined =>
      rec.marks.find((x) => x.mark === m && x.replica === g.replica && x.gpuUuid === g.gpuUuid);
    const [start, end] = [at('windowStart'), at('windowEnd')];
    const list = edges.get(g.gpuUuid) ?? [];
    const [ls, le] = [nearest(list, start?.tMs ?? NaN), nearest(list, end?.tMs ?? NaN)];
    const agentJ = g.energyJoules;
    const logJ = ls === undefined || le === undefined ? null : (le.value - ls.value) / 1000;
    const diff = agentJ === null || logJ === null || logJ === 0 ? null : (agentJ - logJ) / logJ;
    const row = {
      dir,
      runId: r.runId,
      status: r.status,
      replica: g.replica,
      gpuUuid: g.gpuUuid,
      agentJoules: agentJ,
      logJoules: logJ,
      diffPct: diff === null ? null : diff * 100,
      startEdgeOffsetMs: ls === undefined || start === undefined ? null : ls.tMs - start.tMs,
      endEdgeOffsetMs: le === undefined || end === undefined ? null : le.tMs - end.tMs,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
    if (diff === null || Math.abs(diff) > TOLERANCE)
      problems.push(`${dir} ${r.runId} ${g.gpuUuid}: agent ${agentJ} J vs log ${logJ} J`);
  }
}
const worst = Math.max(...rows.map((x) => Math.abs((x['diffPct'] as number | null) ?? Infinity)));
if (outFile !== undefined) writeFileSync(outFile, JSON.stringify({ rows, problems }, null, 2));
for (const p of problems) console.log(`PROBLEM ${p}`);
console.log(
  `RESULT windows=${rows.length} worst_diff_pct=${worst.toFixed(4)} problems=${problems.length} pass=${problems.length === 0 && rows.length > 0}`,
);
process.exitCode = problems.length === 0 && rows.length > 0 ? 0 : 1;
