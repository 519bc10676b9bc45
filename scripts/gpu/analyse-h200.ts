// Cross-checks an H200 run against the independent pynvml log (scripts/gpu/nvml_logger.py):
// for every measurement window the agent reported, the energy from the independent log's counter
// over the same interval, the integral of its sampled power, and the counter's update period; then
// repeatability per configuration (95% CI half-width of J/token over the cycles, Student t) and the
// J/token-versus-concurrency curve; clocks, temperatures and host load seen during the windows.
//   node --import tsx scripts/gpu/analyse-h200.ts RAW_DIR OUT_PREFIX
// RAW_DIR holds experiment.json, nvml.jsonl (or nvml-log.jsonl) and either runs.ndjson or runs/<id>.json (window
// marks) or the agent's log run.log (phase times; windowStart follows "measuring" within ms). The
// unpacked h200-validation.tgz works as it is (llem's files under results/, the log beside them).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cycleStats } from '../../aggregator/stats.ts';
import { barChart, lineChart } from '../../report/svg.ts';
import { RunFileIndex } from '../../local/run-log.ts';

interface LogRow {
  t_ms: number;
  gpu: number;
  energy_mj: number;
  power_mw: number;
  sm_mhz?: number;
  temp_c?: number;
  load1?: number;
  cpu_busy_pct?: number;
  cpu_steal_pct?: number;
  probe_us?: number;
}
interface GpuResult {
  energyJoules: number | null;
  windowSeconds: number | null;
}
interface Run {
  runId: string;
  configId: string;
  cycle: number;
  status: string;
  gpus: Array<GpuResult & { baselineSubtractedJoules?: number | null }>;
  counts: { outputTokens: number };
  metrics: { joulesPerToken: number | null; tokensPerSecond: number | null };
}

const [raw, outPrefix] = process.argv.slice(2);
if (raw === undefined || outPrefix === undefined) throw new Error('usage: analyse-h200.ts RAW_DIR OUT_PREFIX');
const logFile = existsSync(join(raw, 'nvml.jsonl')) ? join(raw, 'nvml.jsonl') : join(raw, 'nvml-log.jsonl');
const log: LogRow[] = readFileSync(logFile, 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as LogRow)
  .filter((r) => r.gpu === 0);
const results = existsSync(join(raw, 'results', 'experiment.json')) ? join(raw, 'results') : raw;
const experiment = JSON.parse(readFileSync(join(results, 'experiment.json'), 'utf8')) as {
  results: { runs: Run[] };
  configurations: Array<{ id: string; workload: { concurrency: number } }>;
};

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
  for (let k = 1; k < all.length; k += 1)
    j += ((all[k]![1] + all[k - 1]![1]) / 2) * ((all[k]![0] - all[k - 1]![0]) / 1000);
  return j;
}

const runRecords = new RunFileIndex(results);

/** Window bounds per run: the agent's marks when present, else its phase log (measuring -> +windowSeconds). */
function windowOf(run: Run): [number, number] {
  // runs.ndjson (ADR 0025) or, in results written before it, runs/<id>.json: the index reads both.
  const record = runRecords.get(run.runId);
  if (record !== undefined) {
    const marks = record.marks;
    const s = marks.find((m) => m.mark === 'windowStart');
    const e = marks.find((m) => m.mark === 'windowEnd');
    if (s !== undefined && e !== undefined) return [s.tMs, e.tMs];
  }
  const line = readFileSync(join(raw!, 'run.log'), 'utf8')
    .split('\n')
    .find((l) => l.includes(`"run":"${run.runId}"`) && l.includes('"phase":"measuring"'));
  if (line === undefined) throw new Error(`no window bounds for ${run.runId}`);
  const t0 = (JSON.parse(line) as { time: number }).time;
  return [t0, t0 + (run.gpus[0]?.windowSeconds ?? 0) * 1000];
}

const changes: number[] = [];
for (let i = 1; i < log.length; i += 1) if (log[i]!.energy_mj !== log[i - 1]!.energy_mj) changes.push(log[i]!.t_ms);
const gaps = changes
  .slice(1)
  .map((t, i) => t - changes[i]!)
  .sort((a, b) => a - b);
const medianGapMs = gaps[Math.floor(gaps.length / 2)] ?? NaN;

const rows = experiment.results.runs
  .filter((r) => r.status === 'complete' && r.gpus[0]?.energyJoules != null)
  .map((run) => {
    const [t0, t1] = windowOf(run);
    const agentJ = run.gpus[0]!.energyJoules!;
    const counterJ = (counterAt(t1) - counterAt(t0)) / 1000;
    const powerJ = powerIntegral(t0, t1);
    const inside = log.filter((r) => r.t_ms >= t0 && r.t_ms <= t1);
    const mean = (k: 'cpu_busy_pct' | 'cpu_steal_pct' | 'sm_mhz' | 'probe_us'): number | null => {
      const xs = inside.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
      return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const server = (run as Run & { backendMetrics?: Array<{ metrics: Record<string, { value: number | null }> }> })
      .backendMetrics?.[0]?.metrics;
    const step = server?.['meanDecodeStepMs']?.value ?? null;
    return {
      hostCpuBusyPct: mean('cpu_busy_pct'),
      hostCpuStealPct: mean('cpu_steal_pct'),
      hostProbeUs: mean('probe_us'),
      smClockMhzMean: mean('sm_mhz'),
      serverDecodeStepMs: step,
      serverMeanBatchRows: server?.['meanBatchRows']?.value ?? null,
      serverPrefillBatches: server?.['prefillBatches']?.value ?? null,
      serverMeanPrefillMs: server?.['meanPrefillMs']?.value ?? null,
      runId: run.runId,
      windowSeconds: (t1 - t0) / 1000,
      agentJoules: agentJ,
      independentCounterJoules: counterJ,
      agentVsIndependentPct: ((agentJ - counterJ) / counterJ) * 100,
      powerIntegralJoules: powerJ,
      powerIntegralVsCounterPct: ((powerJ - counterJ) / counterJ) * 100,
      joulesPerToken: run.metrics.joulesPerToken,
    };
  });
/** llem's own statistics over the cycles (Student t, n - 1 df), with the half-width also in % of the mean. */
function ci95(xs: number[]): { n: number; mean: number; sd: number; halfWidth: number; halfWidthPct: number } {
  const c = cycleStats(xs);
  const mean = c.mean ?? NaN;
  const halfWidth = c.ci95High === null ? NaN : c.ci95High - mean;
  return { n: c.n, mean, sd: c.std ?? NaN, halfWidth, halfWidthPct: (halfWidth / mean) * 100 };
}

function range(xs: number[]): [number, number] {
  return [Math.min(...xs), Math.max(...xs)];
}

/** Clocks, temperature and host load the independent log saw inside the agent's windows. */
function conditions(windows: Array<[number, number]>): Record<string, [number, number] | null> {
  const inside = log.filter((r) => windows.some(([a, b]) => r.t_ms >= a && r.t_ms <= b));
  const field = (
    k: 'sm_mhz' | 'temp_c' | 'load1' | 'cpu_busy_pct' | 'cpu_steal_pct' | 'probe_us',
  ): [number, number] | null => {
    const xs = inside.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
    return xs.length === 0 ? null : range(xs);
  };
  return {
    smClockMhz: field('sm_mhz'),
    temperatureC: field('temp_c'),
    hostLoad1: field('load1'),
    hostCpuBusyPct: field('cpu_busy_pct'),
    hostCpuStealPct: field('cpu_steal_pct'),
    hostProbeUs: field('probe_us'),
    powerW: range(inside.map((r) => r.power_mw / 1000)),
  };
}

const complete = experiment.results.runs.filter((r) => r.status === 'complete' && r.metrics.joulesPerToken !== null);
const concurrencyOf = new Map(experiment.configurations.map((c) => [c.id, c.workload.concurrency]));
const byConfig = [...new Set(complete.map((r) => r.configId))]
  .map((configId) => {
    const runs = complete.filter((r) => r.configId === configId).sort((a, b) => a.cycle - b.cycle);
    const aboveIdle = runs.map((r) => (r.gpus[0]?.baselineSubtractedJoules ?? NaN) / r.counts.outputTokens);
    return {
      configId,
      concurrency: concurrencyOf.get(configId) ?? NaN,
      cycles: runs.map((r) => r.cycle),
      joulesPerToken: runs.map((r) => r.metrics.joulesPerToken as number),
      tokensPerSecond: runs.map((r) => r.metrics.tokensPerSecond ?? NaN),
      windowSeconds: runs.map((r) => r.gpus[0]?.windowSeconds ?? NaN),
      aboveIdleJoulesPerToken: aboveIdle,
      jptCi: ci95(runs.map((r) => r.metrics.joulesPerToken as number)),
      tpsCi: ci95(runs.map((r) => r.metrics.tokensPerSecond ?? NaN)),
      aboveIdleCi: ci95(aboveIdle),
    };
  })
  .sort((a, b) => a.concurrency - b.concurrency);

/** Pearson r of two series. */
function pearson(a: number[], b: number[]): number {
  const ma = a.reduce((x, y) => x + y, 0) / a.length;
  const mb = b.reduce((x, y) => x + y, 0) / b.length;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  a.forEach((x, i) => {
    ab += (x - ma) * (b[i]! - mb);
    aa += (x - ma) ** 2;
    bb += (b[i]! - mb) ** 2;
  });
  return ab / Math.sqrt(aa * bb);
}

/**
 * What J/token moves with, across cycles: each window's value relative to its configuration's mean
 * (so the concurrency levels pool), correlated with the server's own decode-step time and with the
 * host CPU speed probe. Null when the run lacks those fields (older logs, older agent).
 */
function drivers(): {
  jptVsDecodeStep: number;
  decodeStepVsHostProbe: number;
  jptVsHostProbe: number;
  windows: number;
} | null {
  const rel: Array<{ jpt: number; step: number; probe: number }> = [];
  for (const c of byConfig) {
    const ws = rows.filter((r) => complete.find((x) => x.runId === r.runId)?.configId === c.configId);
    if (ws.some((w) => w.serverDecodeStepMs === null || w.hostProbeUs === null || w.joulesPerToken === null))
      return null;
    const m = (f: (w: (typeof ws)[number]) => number): number => ws.reduce((x, w) => x + f(w), 0) / ws.length;
    const mj = m((w) => w.joulesPerToken as number);
    const ms = m((w) => w.serverDecodeStepMs as number);
    const mp = m((w) => w.hostProbeUs as number);
    for (const w of ws)
      rel.push({
        jpt: (w.joulesPerToken as number) / mj - 1,
        step: (w.serverDecodeStepMs as number) / ms - 1,
        probe: (w.hostProbeUs as number) / mp - 1,
      });
  }
  const col = (k: 'jpt' | 'step' | 'probe'): number[] => rel.map((r) => r[k]);
  return {
    jptVsDecodeStep: pearson(col('jpt'), col('step')),
    decodeStepVsHostProbe: pearson(col('step'), col('probe')),
    jptVsHostProbe: pearson(col('jpt'), col('probe')),
    windows: rel.length,
  };
}

const windowBounds = complete.map((r) => windowOf(r));
const report = {
  logFile,
  logSamples: log.length,
  logRateHz: (log.length - 1) / ((log[log.length - 1]!.t_ms - log[0]!.t_ms) / 1000),
  counterUpdateMedianMs: medianGapMs,
  windowSeconds: range(rows.map((r) => r.windowSeconds)),
  conditionsDuringWindows: conditions(windowBounds),
  windows: rows,
  repeatability: byConfig,
  drivers: drivers(),
};
writeFileSync(`${outPrefix}.json`, JSON.stringify(report, null, 2) + '\n');
writeFileSync(
  `${outPrefix}.svg`,
  barChart(
    rows.map((r) => ({ label: r.runId, value: r.agentVsIndependentPct, low: null, high: null })),
    { title: 'Agent window energy vs independent pynvml log (%)', xLabel: 'run', yLabel: '% difference' },
  ),
);
const t0 = log[0]!.t_ms;
writeFileSync(
  `${outPrefix}-power.svg`,
  lineChart(
    [
      {
        label: 'GPU 0 power (independent pynvml log, 10 Hz)',
        points: log.map((r) => [(r.t_ms - t0) / 1000, r.power_mw / 1000] as const),
      },
    ],
    {
      title: "H200 power over the run; shaded: the agent's measurement windows",
      xLabel: 'seconds since the log started',
      yLabel: 'W',
    },
    windowBounds.map(([a, b], i) => ({ start: (a - t0) / 1000, end: (b - t0) / 1000, label: rows[i]?.runId ?? '' })),
  ),
);
writeFileSync(
  `${outPrefix}-jpt.svg`,
  barChart(
    byConfig.map((c) => ({
      label: `concurrency ${c.concurrency}`,
      value: c.jptCi.mean,
      low: c.jptCi.mean - c.jptCi.halfWidth,
      high: c.jptCi.mean + c.jptCi.halfWidth,
    })),
    {
      title: `J per output token by concurrency: mean and 95% CI over ${byConfig[0]?.jptCi.n ?? 0} cycles`,
      xLabel: 'configuration',
      yLabel: 'J / token',
    },
  ),
);
writeFileSync(
  `${outPrefix}-curve.svg`,
  lineChart(
    [
      { label: 'J/token (total)', points: byConfig.map((c) => [c.concurrency, c.jptCi.mean] as const) },
      { label: 'J/token above idle power', points: byConfig.map((c) => [c.concurrency, c.aboveIdleCi.mean] as const) },
    ],
    { title: 'J per output token falls as concurrency rises', xLabel: 'concurrency', yLabel: 'J / token' },
  ),
);
const worst = Math.max(...rows.map((r) => Math.abs(r.agentVsIndependentPct)));
const pv = rows.map((r) => r.powerIntegralVsCounterPct);
console.log(JSON.stringify(report, null, 2));
console.log(
  `RESULT bench=h200-crosscheck windows=${rows.length} worst_abs_diff_pct=${worst.toFixed(3)} counter_update_ms=${medianGapMs.toFixed(1)} ` +
    `window_s_min=${report.windowSeconds[0].toFixed(1)} power_vs_counter_pct_min=${Math.min(...pv).toFixed(2)} power_vs_counter_pct_max=${Math.max(...pv).toFixed(2)}`,
);
const c = (x: number): string => x.toPrecision(4);
console.log(
  `RESULT bench=h200-repeatability ${byConfig.map((g) => `c${g.concurrency}_jpt=${c(g.jptCi.mean)} c${g.concurrency}_ci95_pct=${g.jptCi.halfWidthPct.toFixed(2)} c${g.concurrency}_above_idle_ci95_pct=${g.aboveIdleCi.halfWidthPct.toFixed(2)}`).join(' ')} ` +
    `cycles=${byConfig[0]?.jptCi.n ?? 0} jpt_falls=${byConfig.every((g, i) => i === 0 || g.jptCi.mean < byConfig[i - 1]!.jptCi.mean)}`,
);
if (report.drivers !== null) {
  const d = report.drivers;
  console.log(
    `RESULT bench=h200-drivers windows=${d.windows} r_jpt_vs_decode_step=${d.jptVsDecodeStep.toFixed(2)} r_decode_step_vs_host_probe=${d.decodeStepVsHostProbe.toFixed(2)} r_jpt_vs_host_probe=${d.jptVsHostProbe.toFixed(2)}`,
  );
}
