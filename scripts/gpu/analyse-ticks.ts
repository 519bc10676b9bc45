// Cross-checks tick-aligned windows against the independent 2 ms counter log
// (scripts/gpu/counter_poll.py, a separate pynvml process): for every window and baseline mark the
// agent reported as a counter step edge, the log's own nearest step edge (time difference, value
// equal?); per window, the energy between the log's edges vs the agent's; and how far the tick
// window's energy lies from the log's interpolated energy over the load window (the residual).
//   node --import tsx scripts/gpu/analyse-ticks.ts RAW_DIR OUT_JSON
// RAW_DIR: the unpacked tick-aligned.tgz (counter-poll.txt or .txt.gz, results-5s/, results-25s/).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { RunFileIndex } from '../../local/run-log.ts';

interface MarkRow {
  mark: string;
  tMs: number;
  energyMillijoules: number;
}
interface RunFile {
  result: { runId: string; gpus: Array<{ ticks: { ticks: number | null; edgeUncertaintyMs: number } | null }> };
  marks: MarkRow[];
  windowStartMs: number;
  windowEndMs: number;
}
interface Edge {
  tMs: number;
  gapMs: number;
  value: number;
}

const [raw, out] = process.argv.slice(2);
if (raw === undefined || out === undefined) throw new Error('usage: analyse-ticks.ts RAW_DIR OUT_JSON');
const pollFile = join(raw, 'counter-poll.txt');
const pollText = existsSync(pollFile)
  ? readFileSync(pollFile, 'utf8')
  : gunzipSync(readFileSync(`${pollFile}.gz`)).toString('utf8');
const polls = pollText
  .trim()
  .split('\n')
  .map((l) => l.split(' ').map(Number) as [number, number]);
const edges: Edge[] = [];
for (let i = 1; i < polls.length; i++) {
  const [t0, e0] = polls[i - 1] as [number, number];
  const [t1, e1] = polls[i] as [number, number];
  if (e1 !== e0) edges.push({ tMs: (t0 + t1) / 2, gapMs: t1 - t0, value: e1 });
}
const gaps = polls
  .slice(1)
  .map((p, i) => p[0] - (polls[i] as [number, number])[0])
  .sort((a, b) => a - b);
const steps = edges
  .slice(1)
  .map((e, i) => e.tMs - (edges[i] as Edge).tMs)
  .sort((a, b) => a - b);
const median = (xs: number[]): number => xs[Math.floor(xs.length / 2)] ?? NaN;

function nearestEdge(t: number): Edge {
  let lo = 0;
  let hi = edges.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((edges[mid] as Edge).tMs < t) lo = mid;
    else hi = mid;
  }
  const a = edges[lo] as Edge;
  const b = edges[hi] as Edge;
  return Math.abs(a.tMs - t) <= Math.abs(b.tMs - t) ? a : b;
}

/** The log's counter at time t, interpolated between polls (for the load window's bounds). */
function interpolated(t: number): number {
  const i = polls.findIndex((p) => p[0] >= t);
  const [ta, ea] = polls[i - 1] as [number, number];
  const [tb, eb] = polls[i] as [number, number];
  return ea + ((eb - ea) * (t - ta)) / (tb - ta);
}

interface WindowCheck {
  set: string;
  runId: string;
  windowS: number;
  agentJ: number;
  logJ: number;
  diffPct: number;
  startDtMs: number;
  endDtMs: number;
  logTicks: number;
  agentTicks: number | null;
  loadWindowJ: number;
  tickVsLoadWindowPct: number;
}
const windows: WindowCheck[] = [];
const edgeChecks: Array<{ mark: string; dtMs: number; valueEqual: boolean }> = [];
for (const set of ['5s', '25s']) {
  // runs.ndjson (ADR 0025) or, in results written before it, runs/<id>.json: the index reads both.
  const index = new RunFileIndex(join(raw, `results-${set}`));
  for (const id of [...index.runIds()].sort()) {
    const run = index.get(id) as unknown as RunFile;
    const byMark = new Map(run.marks.map((m) => [m.mark, m]));
    for (const m of run.marks) {
      const e = nearestEdge(m.tMs);
      edgeChecks.push({ mark: m.mark, dtMs: m.tMs - e.tMs, valueEqual: e.value === m.energyMillijoules });
    }
    const s = byMark.get('windowStart') as MarkRow;
    const e = byMark.get('windowEnd') as MarkRow;
    const agentMj = e.energyMillijoules - s.energyMillijoules;
    const ls = nearestEdge(s.tMs);
    const le = nearestEdge(e.tMs);
    const logMj = le.value - ls.value;
    const logTicks = edges.filter((x) => x.tMs > ls.tMs && x.tMs <= le.tMs).length;
    const loadMj = interpolated(run.windowEndMs) - interpolated(run.windowStartMs);
    windows.push({
      set,
      runId: run.result.runId,
      windowS: (e.tMs - s.tMs) / 1000,
      agentJ: agentMj / 1000,
      logJ: logMj / 1000,
      diffPct: (100 * (agentMj - logMj)) / logMj,
      startDtMs: s.tMs - ls.tMs,
      endDtMs: e.tMs - le.tMs,
      logTicks,
      agentTicks: run.result.gpus[0]?.ticks?.ticks ?? null,
      loadWindowJ: loadMj / 1000,
      tickVsLoadWindowPct: (100 * (agentMj - loadMj)) / loadMj,
    });
  }
}
const worst = (set: string): number =>
  Math.max(...windows.filter((w) => w.set === set).map((w) => Math.abs(w.diffPct)));
const worstLoad = (set: string): number =>
  Math.max(...windows.filter((w) => w.set === set).map((w) => Math.abs(w.tickVsLoadWindowPct)));
const matched = edgeChecks.filter((c) => c.valueEqual).length;
const maxDt = Math.max(...edgeChecks.map((c) => Math.abs(c.dtMs)));
const summary = {
  polls: polls.length,
  pollMedianMs: median(gaps),
  counterStepMedianMs: median(steps),
  counterStepP5Ms: steps[Math.floor(steps.length * 0.05)],
  counterStepP95Ms: steps[Math.floor(steps.length * 0.95)],
  edgesChecked: edgeChecks.length,
  edgesSameValue: matched,
  maxEdgeDtMs: maxDt,
  windows,
};
writeFileSync(out, `${JSON.stringify(summary, null, 1)}\n`);
const f = (x: number, d = 4): string => x.toFixed(d);
process.stdout.write(
  `RESULT bench=tick-aligned windows_5s=${windows.filter((w) => w.set === '5s').length} worst_5s_pct=${f(worst('5s'))} ` +
    `windows_25s=${windows.filter((w) => w.set === '25s').length} worst_25s_pct=${f(worst('25s'))} edges_same_value=${matched}/${edgeChecks.length} ` +
    `max_edge_dt_ms=${f(maxDt, 2)} poll_median_ms=${f(median(gaps), 2)} counter_step_median_ms=${f(median(steps), 1)} ` +
    `tick_vs_load_window_worst_5s_pct=${f(worstLoad('5s'), 3)} tick_vs_load_window_worst_25s_pct=${f(worstLoad('25s'), 3)}\n`,
);
