// Results store benchmark (docs/adr/0025): 100,000 simulated runs written through the local store
// (state journal + runs.ndjson, what `llem run` calls per run), the final documents written, then read back
// by the real CLI: `llem results show` (wall time) and `llem results export --format mlenergy-csv` (max RSS,
// /usr/bin/time). Baselines measured in the same run:
//   - write: the layout before ADR 0025 (state.json rewritten whole on every transition, one runs/<id>.json
//     per run) at two smaller sizes; its cost per run grows with the run count (the fitted exponent says by
//     how much) and its rate at 100,000 is extrapolated from that fit; the new store at the same sizes too;
//   - show/export: the same 100,000-run directory read as directories written before ADR 0025 are read
//     (summary.json hidden: experiment.json parsed whole).
// The run records are clones of real aggregator output (tests/support/streams.ts messages through the
// Aggregator), 1,000 configurations x 100 cycles. Files go to /dev/shm by default (--dir): on this
// machine's disk an fsync costs ~1.3 ms, and the new store makes 3 per run, so there the write rate is the
// disk's (~250 runs/s, still far above any real run rate) and the benchmark would take minutes.
// Run: node --import tsx bench/results-store.ts [--runs 100000] [--dir /dev/shm]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Aggregator, type AggregateResults, type RunResult } from '../aggregator/index.ts';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import { writeRunDocuments, type RunFile } from '../local/results.ts';
import { RunLog } from '../local/run-log.ts';
import { ResultsDirectory, type LocalState } from '../local/state.ts';
import { makePlan, replicaMessages } from '../tests/support/streams.ts';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const RUNS = Number(arg('runs', '100000'));
const CONFIGS = Math.min(1000, RUNS);
const BASE = arg('dir', '/dev/shm');
const OLD_SIZES = [500, 1000, 2000];
const REPO = new URL('..', import.meta.url).pathname;
const LLEM = join(REPO, 'bin', 'llem.mjs');

function templates(): AggregateResults {
  const plan = makePlan({ configs: 2, cycles: 3 });
  const agg = new Aggregator(plan);
  let stream = 0;
  for (const run of plan.runs) {
    agg.startAttempt(run.runId, 0);
    for (const m of replicaMessages(run, 0, plan.experimentUid, { seed: 3, slices: 8, requestsPerSlice: 16 }))
      agg.apply(m, ++stream);
  }
  return agg.results();
}

const T = templates();
const RUN = T.runs.find((r) => r.status === 'complete') ?? T.runs[0]!;
const CONFIG = T.configurations[0]!;

function runOf(i: number): RunResult {
  const c = i % CONFIGS;
  const cycle = Math.floor(i / CONFIGS);
  return { ...RUN, runId: `c${c}-k${cycle}`, configId: `c${c}`, configHash: `hash-${c}`, cycle };
}

function runFileOf(r: RunResult): RunFile {
  const power = Array.from({ length: 10 }, (_, k) => ({
    tMs: 1_700_000_000_000 + k * 100,
    runId: r.runId,
    replica: 0,
    gpuUuid: 'GPU-simulated-0',
    powerWatts: 300 + k,
    energyMillijoules: 1000 * k,
  }));
  return { result: r, power, marks: [], windowStartMs: power[0]!.tMs, windowEndMs: power[9]!.tMs };
}

function stateOf(): LocalState {
  return {
    version: 2,
    manifestFile: '/bench.yaml',
    experimentUid: T.experimentUid,
    simulated: true,
    experiment: { metadata: { name: 'bench' }, spec: { model: { name: 'bench/model' } } },
    startedAt: new Date().toISOString(),
    runs: {},
    environment: {},
  };
}

/** What `llem run` does per run with the new store: running, record, complete. Returns runs/s. */
function writeNew(dir: string, n: number): number {
  const rd = new ResultsDirectory(dir);
  rd.writeState(stateOf());
  const log = new RunLog(dir);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = runOf(i);
    rd.recordRun(r.runId, { status: 'running', attempts: 1, lastError: null });
    log.append(runFileOf(r));
    rd.recordRun(r.runId, { status: 'complete', attempts: 1, lastError: null });
  }
  return n / ((performance.now() - t0) / 1000);
}

/** The layout before ADR 0025, as local/ wrote it: whole state.json per transition, one file per run. */
function writeOld(dir: string, n: number): number {
  const state = stateOf();
  mkdirSync(join(dir, '.llem'), { recursive: true });
  mkdirSync(join(dir, 'runs'), { recursive: true });
  const save = (): void => writeFileAtomic(join(dir, '.llem', 'state.json'), JSON.stringify(state, null, 2) + '\n');
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = runOf(i);
    state.runs[r.runId] = { status: 'running', attempts: 1, lastError: null };
    save();
    writeFileAtomic(join(dir, 'runs', `${r.runId}.json`), JSON.stringify(runFileOf(r), null, 2) + '\n');
    state.runs[r.runId] = { status: 'complete', attempts: 1, lastError: null };
    save();
  }
  return n / ((performance.now() - t0) / 1000);
}

function finalDocuments(dir: string, n: number): number {
  const t0 = performance.now();
  const runs = Array.from({ length: n }, (_, i) => runOf(i));
  const configurations = Array.from({ length: CONFIGS }, (_, c) => ({
    ...CONFIG,
    configId: `c${c}`,
    configHash: `hash-${c}`,
    runsIncluded: runs.filter((_, i) => i % CONFIGS === c).map((r) => r.runId),
    runsPlanned: Math.ceil(n / CONFIGS),
  }));
  const doc = {
    schemaVersion: 1,
    kind: 'llem.dev/results',
    generatedAt: new Date().toISOString(),
    ...stateOf(),
    configurations: configurations.map((c) => ({ id: c.configId, label: c.configId, configHash: c.configHash })),
    runStates: Object.fromEntries(runs.map((r) => [r.runId, { status: 'complete', attempts: 1, lastError: null }])),
    results: { ...T, runs, configurations },
    best: null,
  };
  writeRunDocuments(dir, doc, runs);
  writeFileSync(join(dir, 'configs.csv'), 'config\n');
  return (performance.now() - t0) / 1000;
}

function llem(args: string[]): { ms: number; rssMb: number; bytes: number } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, LLEM, ...args], {
    maxBuffer: 1 << 30,
    encoding: 'buffer',
  });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`llem ${args.join(' ')}: exit ${r.status}: ${r.stderr.toString().slice(-2000)}`);
  const kb = Number(r.stderr.toString().trim().split('\n').at(-1));
  return { ms, rssMb: kb / 1024, bytes: r.stdout.length };
}

const fmt = (x: number, d = 0): string => x.toFixed(d);
const root = mkdtempSync(join(BASE, 'llem-bench-results-'));
try {
  execFileSync(process.execPath, [LLEM, 'results', '--help']); // compiles dist/ once, outside the timings
  const oldRates = OLD_SIZES.map((n) => writeOld(join(root, `old-${n}`), n));
  const newSmall = OLD_SIZES.map((n) => writeNew(join(root, `new-${n}`), n));
  // Cost per run grows as n^k for the old layout: k fitted (least squares, log-log) over the sizes, then
  // extrapolated to RUNS from the largest size. A fit on a shared machine: read k with its noise in mind.
  const xs = OLD_SIZES.map((n) => Math.log(n));
  const ys = oldRates.map((r) => -Math.log(r));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const k = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / xs.reduce((a, x) => a + (x - mx) * (x - mx), 0);
  const largest = OLD_SIZES.at(-1)!;
  const oldAtLargest = oldRates.at(-1)!;
  const oldAtRuns = oldAtLargest / (RUNS / largest) ** k;
  for (const n of OLD_SIZES) rmSync(join(root, `old-${n}`), { recursive: true, force: true });

  const dir = join(root, 'new');
  const writeRate = writeNew(dir, RUNS);
  const finalizeS = finalDocuments(dir, RUNS);
  const show = llem(['results', 'show', dir]);
  const exp = llem(['results', 'export', dir, '--format', 'mlenergy-csv']);
  const expRows = exp.bytes;
  const experimentMb = statSync(join(dir, 'experiment.json')).size / 2 ** 20;
  // The same directory read as a pre-ADR-0025 one is: experiment.json whole.
  renameSync(join(dir, 'summary.json'), join(dir, 'summary.json.hidden'));
  const oldShow = llem(['results', 'show', dir]);
  const oldExp = llem(['results', 'export', dir, '--format', 'mlenergy-csv']);
  if (oldExp.bytes !== expRows) throw new Error(`export differs: ${oldExp.bytes} vs ${expRows} bytes`);

  console.log(
    `machine load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; files in ${BASE}`,
  );
  console.log(
    `old layout write: ${OLD_SIZES.map((n, i) => `${n} runs ${fmt(oldRates[i]!)} runs/s`).join(', ')}; ` +
      `cost per run ~ n^${k.toFixed(2)}`,
  );
  console.log(`new store write: ${OLD_SIZES.map((n, i) => `${n} runs ${fmt(newSmall[i]!)} runs/s`).join(', ')}`);
  console.log(`final documents: ${fmt(finalizeS, 1)} s (experiment.json ${fmt(experimentMb)} MB)`);
  console.log(`show ${fmt(show.ms)} ms (rss ${fmt(show.rssMb)} MB); experiment.json whole: ${fmt(oldShow.ms)} ms`);
  console.log(`export ${fmt(exp.ms)} ms rss ${fmt(exp.rssMb)} MB; experiment.json whole: rss ${fmt(oldExp.rssMb)} MB`);
  console.log(
    `RESULT runs=${RUNS} write_runs_per_s=${fmt(writeRate)} show_ms=${fmt(show.ms)} export_rss_mb=${fmt(exp.rssMb)} ` +
      `baseline_write_runs_per_s_extrapolated=${fmt(oldAtRuns, 1)} baseline_write_runs_per_s_at_${largest}=${fmt(oldAtLargest)} ` +
      `new_write_runs_per_s_at_${largest}=${fmt(newSmall.at(-1)!)} ` +
      `baseline_show_ms=${fmt(oldShow.ms)} baseline_export_rss_mb=${fmt(oldExp.rssMb)} ` +
      `show_under_2s=${show.ms < 2000} export_under_200mb=${exp.rssMb < 200} simulated=true`,
  );
} finally {
  if (process.argv.includes('--keep')) console.log(`kept ${root}`);
  else rmSync(root, { recursive: true, force: true });
}
