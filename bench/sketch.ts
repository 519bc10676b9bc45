// Sketch benchmark: MergingDigest (ours) against npm `tdigest` (baseline, same run) on 10^6 values
// from a lognormal and a bimodal mixture: accuracy against exact quantiles in one stream and after
// merging 1,000 partial sketches (each sent through its binary form, as on the wire), merge and
// add speed, serialised size, determinism. Times are CPU times (process.cpuUsage): the machine is
// shared, and wall time would measure the neighbours. Run: node --import tsx bench/sketch.ts [--full]
import { loadavg } from 'node:os';
import { MergingDigest, TDigestSketch, type LatencySketch } from '../lib/sketch/index.ts';
import { normal, seededRandom } from '../tests/support/streams.ts';

const N = 1_000_000;
/** --full also measures the baseline's single-stream accuracy (about 1.5 s more CPU). */
const FULL = process.argv.includes('--full');
const PARTS = 1000;
const QS = [0.5, 0.9, 0.99, 0.999] as const;

interface Impl {
  name: string;
  make: () => LatencySketch;
  decode: (b: Uint8Array) => LatencySketch;
}
const OURS: Impl = { name: 'merging', make: () => new MergingDigest(), decode: (b) => MergingDigest.deserialize(b) };
const NPM: Impl = { name: 'tdigest', make: () => new TDigestSketch(), decode: (b) => TDigestSketch.deserialize(b) };

function cpuMs<T>(fn: () => T): [T, number] {
  const c0 = process.cpuUsage();
  const out = fn();
  const c = process.cpuUsage(c0);
  return [out, (c.user + c.system) / 1000];
}

function values(kind: 'lognormal' | 'bimodal', seed: number): Float64Array {
  const r = seededRandom(seed);
  const out = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    out[i] = kind === 'lognormal' ? Math.exp(Math.log(50) + 0.8 * normal(r)) : r() < 0.7 ? Math.max(0.1, 20 + 3 * normal(r)) : Math.max(0.1, 200 + 40 * normal(r));
  }
  return out;
}

/** Exact quantile: the value of rank ceil(q·n) (1-based), as the nearest-rank method. */
function exactQuantiles(v: Float64Array): number[] {
  const s = v.slice().sort();
  return QS.map((q) => s[Math.max(0, Math.ceil(q * s.length) - 1)] as number);
}

function relErrPct(sketch: LatencySketch, exact: number[]): number[] {
  if (sketch.count === 0) return QS.map(() => Number.NaN);
  return QS.map((q, i) => (Math.abs(sketch.quantile(q) - (exact[i] as number)) / (exact[i] as number)) * 100);
}

function partials(impl: Impl, v: Float64Array): LatencySketch[] {
  const per = v.length / PARTS;
  const out: LatencySketch[] = [];
  for (let p = 0; p < PARTS; p++) {
    const s = impl.make();
    for (let i = p * per; i < (p + 1) * per; i++) s.add(v[i] as number);
    out.push(impl.decode(s.serialize()));
  }
  return out;
}

function mergeAll(impl: Impl, parts: LatencySketch[]): LatencySketch {
  const m = impl.make();
  for (const p of parts) m.merge(p);
  m.quantile(0.5); // include any deferred folding in the timing
  return m;
}

function addNsPerValue(impl: Impl, v: Float64Array, count: number): number {
  const [, ms] = cpuMs(() => {
    const s = impl.make();
    for (let i = 0; i < count; i++) s.add(v[i] as number);
    s.quantile(0.5);
  });
  return (ms * 1e6) / count;
}

interface Row { impl: string; dist: string; single: number[]; merged: number[]; mergeMs: number; bytes: number; deterministic: boolean }

/** `reps` timed merges (best taken) after one warm-up; the baseline gets one, it is slow enough. */
function evaluate(impl: Impl, dist: 'lognormal' | 'bimodal', v: Float64Array, exact: number[], reps: number): Row {
  const single = impl.make();
  if (impl === OURS || FULL) for (const x of v) single.add(x);
  const parts = partials(impl, v);
  if (reps > 1) mergeAll(impl, parts);
  const times: number[] = [];
  let merged: LatencySketch = impl.make();
  for (let rep = 0; rep < reps; rep++) {
    const [m, ms] = cpuMs(() => mergeAll(impl, parts));
    merged = m;
    times.push(ms);
  }
  // Determinism: the same values in the same order, sketched and merged again from scratch
  // (the first 10% of the values, as 1,000 partials of 100, to keep the run short).
  const subset = v.subarray(0, v.length / 10);
  const a = mergeAll(impl, partials(impl, subset)).serialize();
  const b = mergeAll(impl, partials(impl, subset)).serialize();
  const deterministic = a.length === b.length && a.every((x, i) => x === b[i]);
  return { impl: impl.name, dist, single: relErrPct(single, exact), merged: relErrPct(merged, exact), mergeMs: Math.min(...times), bytes: merged.serialize().length, deterministic };
}

const rows: Row[] = [];
const addValues = values('lognormal', 99);
for (const [i, dist] of (['lognormal', 'bimodal'] as const).entries()) {
  const v = values(dist, i + 1);
  const exact = exactQuantiles(v);
  rows.push(evaluate(OURS, dist, v, exact, 3), evaluate(NPM, dist, v, exact, 1));
}
addNsPerValue(OURS, addValues, 200_000);
addNsPerValue(NPM, addValues, 10_000);
const oursAdd = Math.min(addNsPerValue(OURS, addValues, N), addNsPerValue(OURS, addValues, N));
const npmAdd = addNsPerValue(NPM, addValues, 200_000);

const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(4)).join(' / ');
console.log('relative value error %, p50 / p90 / p99 / p99.9');
for (const r of rows) {
  console.log(`${r.impl.padEnd(8)} ${r.dist.padEnd(9)} single ${fmt(r.single)} | merged x${PARTS} ${fmt(r.merged)} | merge ${r.mergeMs.toFixed(1)} ms | ${r.bytes} B | deterministic ${r.deterministic}`);
}
console.log(`add: merging ${oursAdd.toFixed(1)} ns/value, tdigest ${npmAdd.toFixed(1)} ns/value`);

const ours = rows.filter((r) => r.impl === 'merging');
const npm = rows.filter((r) => r.impl === 'tdigest');
const worst = (rs: Row[], i: number): number => Math.max(...rs.map((r) => r.merged[i] as number));
const errP50to99 = Math.max(worst(ours, 0), worst(ours, 1), worst(ours, 2));
const errP999 = worst(ours, 3);
const bytes = Math.max(...ours.map((r) => r.bytes));
const mergeMs = Math.max(...ours.map((r) => r.mergeMs));
const npmMergeMs = Math.max(...npm.map((r) => r.mergeMs));
const speedup = npmAdd / oursAdd;
const deterministic = ours.every((r) => r.deterministic);
const pass = errP50to99 <= 0.1 && errP999 <= 0.5 && bytes <= 4096 && mergeMs < 50 && speedup >= 3 && deterministic;
console.log(
  `RESULT bench=sketch merged_err_pct_p50_p99=${errP50to99.toFixed(4)} merged_err_pct_p999=${errP999.toFixed(4)} ` +
    `tdigest_merged_err_pct_p999=${worst(npm, 3).toFixed(4)} bytes=${bytes} tdigest_bytes=${Math.max(...npm.map((r) => r.bytes))} ` +
    `merge1000_cpu_ms=${mergeMs.toFixed(1)} tdigest_merge1000_cpu_ms=${npmMergeMs.toFixed(1)} add_ns=${oursAdd.toFixed(1)} ` +
    `tdigest_add_ns=${npmAdd.toFixed(1)} add_speedup=${speedup.toFixed(2)} deterministic=${deterministic} ` +
    `tdigest_deterministic=${npm.every((r) => r.deterministic)} pass=${pass} loadavg1=${loadavg()[0]?.toFixed(1)}`,
);
