// Cross-checks an H200 run against the independent pynvml log (scripts/gpu/nvml_logger.py):
// for every measurement window the agent reported, the energy from the independent log's counter
// over the same interval, the integral of its sampled power, and the counter's update period.
//   node --import tsx scripts/gpu/analyse-h200.ts RAW_DIR OUT_PREFIX
// RAW_DIR holds experiment.json, nvml.jsonl and either runs/<id>.json (window marks) or the
// agent's log run.log (phase times; the windowStart mark follows "measuring" within milliseconds).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { barChart, lineChart } from '../../controller/report/svg.ts';

interface LogRow { t_ms: number; gpu: number; energy_mj: number; power_mw: number }
interface GpuResult { energyJoules: number | null; windowSeconds: number | null }
interface Run { runId: string; status: string; gpus: GpuResult[]; metrics: { joulesPerToken: number | null; tokensPerSecond: number | null } }

const [raw, outPrefix] = process.argv.slice(2);
if (raw === undefined || outPrefix === undefined) throw new Error('usage: analyse-h200.ts RAW_DIR OUT_PREFIX');
const log: LogRow[] = readFileSync(join(raw, 'nvml.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogRow).filter((r) => r.gpu === 0);
const experiment = JSON.parse(readFileSync(join(raw, 'experiment.json'), 'utf8')) as { results: { runs: Run[] } };

/** Linear interpolation of the logged counter at time t (ms). */
function counterAt(t: number): number {
  const i = log.findIndex((r) => r.t_ms >= t);
  if (i <= 0) throw new Error(`time ${t} is outside the independent log`);
  const a = log[i - 1]!;
  const b = log[i]!;
  return a.energy_mj + ((b.energy_mj - a.energy_mj) * (t - a.t_ms)) / (b.t_ms - a.t_ms);
}

/** Trapezoid integral of the logged power over [t0, t1], in joules. */
function powerIntegral(t0: number, t1: number): number {
  const pts = log.filter((r) => r.t_ms > t0 && r.t_ms < t1).map((r) => [r.t_ms, r.power_mw / 1000] as const);
  const first = pts[0];
  const last = pts[pts.length - 1];
  if (first === undefined || last === undefined) return NaN;
  const all = [[t0, first[1]] as const, ...pts, [t1, last[1]] as const];
  let j = 0;
  for (let k = 1; k < all.length; k += 1) j += ((all[k]![1] + all[k - 1]![1]) / 2) * ((all[k]![0] - all[k - 1]![0]) / 1000);
  return j;
}

/** Window bounds per run: the agent's marks when present, else its phase log (measuring -> +windowSeconds). */
function windowOf(run: Run): [number, number] {
  const file = join(raw!, 'runs', `${run.runId}.json`);
  if (existsSync(file)) {
    const marks = (JSON.parse(readFileSync(file, 'utf8')) as { marks: Array<{ mark: string; tMs: number }> }).marks;
    const s = marks.find((m) => m.mark === 'windowStart');
    const e = marks.find((m) => m.mark === 'windowEnd');
    if (s !== undefined && e !== undefined) return [s.tMs, e.tMs];
  }
  const line = readFileSync(join(raw!, 'run.log'), 'utf8').split('\n').find((l) => l.includes(`"run":"${run.runId}"`) && l.includes('"phase":"measuring"'));
  if (line === undefined) throw new Error(`no window bounds for ${run.runId}`);
  const t0 = (JSON.parse(line) as { time: number }).time;
  return [t0, t0 + (run.gpus[0]?.windowSeconds ?? 0) * 1000];
}

const changes: number[] = [];
for (let i = 1; i < log.length; i += 1) if (log[i]!.energy_mj !== log[i - 1]!.energy_mj) changes.push(log[i]!.t_ms);
const gaps = changes.slice(1).map((t, i) => t - changes[i]!).sort((a, b) => a - b);
const medianGapMs = gaps[Math.floor(gaps.length / 2)] ?? NaN;

const rows = experiment.results.runs.filter((r) => r.status === 'complete' && r.gpus[0]?.energyJoules != null).map((run) => {
  const [t0, t1] = windowOf(run);
  const agentJ = run.gpus[0]!.energyJoules!;
  const counterJ = (counterAt(t1) - counterAt(t0)) / 1000;
  const powerJ = powerIntegral(t0, t1);
  return {
    runId: run.runId, windowSeconds: (t1 - t0) / 1000, agentJoules: agentJ, independentCounterJoules: counterJ,
    agentVsIndependentPct: ((agentJ - counterJ) / counterJ) * 100, powerIntegralJoules: powerJ,
    powerIntegralVsCounterPct: ((powerJ - counterJ) / counterJ) * 100, joulesPerToken: run.metrics.joulesPerToken,
  };
});
const report = { logSamples: log.length, logRateHz: (log.length - 1) / ((log[log.length - 1]!.t_ms - log[0]!.t_ms) / 1000), counterUpdateMedianMs: medianGapMs, windows: rows };
writeFileSync(`${outPrefix}.json`, JSON.stringify(report, null, 2) + '\n');
writeFileSync(`${outPrefix}.svg`, barChart(rows.map((r) => ({ label: r.runId, value: r.agentVsIndependentPct, low: null, high: null })),
  { title: 'Agent window energy vs independent pynvml log (%)', xLabel: 'run', yLabel: '% difference' }));
const t0 = log[0]!.t_ms;
const windows = experiment.results.runs.filter((r) => r.status === 'complete').map((r) => windowOf(r));
writeFileSync(`${outPrefix}-power.svg`, lineChart(
  [{ label: 'GPU 0 power (independent pynvml log, 10 Hz)', points: log.map((r) => [(r.t_ms - t0) / 1000, r.power_mw / 1000] as const) }],
  { title: 'H200 power over the run; shaded: the agent\'s measurement windows', xLabel: 'seconds since the log started', yLabel: 'W' },
  windows.map(([a, b], i) => ({ start: (a - t0) / 1000, end: (b - t0) / 1000, label: rows[i]?.runId ?? '' })),
));
writeFileSync(`${outPrefix}-jpt.svg`, barChart(rows.map((r) => ({ label: r.runId, value: r.joulesPerToken, low: null, high: null })),
  { title: 'J per output token by run (concurrency 1, 8, 32)', xLabel: 'run', yLabel: 'J / token' }));
const worst = Math.max(...rows.map((r) => Math.abs(r.agentVsIndependentPct)));
console.log(JSON.stringify(report, null, 2));
console.log(`RESULT bench=h200-crosscheck windows=${rows.length} worst_abs_diff_pct=${worst.toFixed(3)} counter_update_ms=${medianGapMs.toFixed(1)} ` +
  `power_vs_counter_pct=${rows.map((r) => r.powerIntegralVsCounterPct.toFixed(2)).join('/')}`);
