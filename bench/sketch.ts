// Sketch benchmark (docs/adr/0012): LogHistogram (the sketch) against MergingDigest (the t-digest
// it replaced, docs/adr/0004), measured in the same run on the same values. Four distributions
// (lognormal σ=1, Pareto α=1.1, exponential, log-uniform over 12 decades), each split into 1,000
// partial sketches of uneven sizes (1 to 10^5 values, ~3.1·10^6 in all) in three layouts:
//   uneven      values in random order, partials merged in random order;
//   sorted      partials hold consecutive ranges of the sorted values, merged in ascending order;
//   adversarial the sorted partials merged outside-in (largest range, smallest, next largest, ...),
//               each partial's values added in descending order.
// Every partial goes through its binary form (as on the wire), then all are merged into one.
// Relative value error |est - exact| / exact against exact nearest-rank quantiles of the same values.
// Times are CPU times (process.cpuUsage): the machine is shared. Run: node --import tsx bench/sketch.ts
import { loadavg } from 'node:os';
import { LogHistogram, MergingDigest, withoutSum, type LatencySketch } from '../lib/sketch/index.ts';
import { normal, seededRandom } from '../tests/support/streams.ts';

const PARTS = 1000;
const QS = [0.5, 0.9, 0.99, 0.999] as const;
const DISTS = ['lognormal', 'pareto1.1', 'exponential', 'loguniform12'] as const;
const LAYOUTS = ['uneven', 'sorted', 'adversarial'] as const;
type Dist = (typeof DISTS)[number];
type Layout = (typeof LAYOUTS)[number];

interface Impl {
  name: string;
  make: () => LatencySketch;
  decode: (b: Uint8Array) => LatencySketch;
}
const NEW: Impl = { name: 'loghist', make: () => new LogHistogram(), decode: (b) => LogHistogram.deserialize(b) };
const OLD: Impl = { name: 'tdigest-v1', make: () => new MergingDigest(), decode: (b) => MergingDigest.deserialize(b) };

function cpuMs<T>(fn: () => T): [T, number] {
  const c0 = process.cpuUsage();
  const out = fn();
  const c = process.cpuUsage(c0);
  return [out, (c.user + c.system) / 1000];
}

/** Partial sizes from 1 to 10^5, heavily skewed to small ones (10^(5·x³) over an even grid), shuffled. */
function partSizes(random: () => number): number[] {
  const sizes = Array.from({ length: PARTS }, (_, i) => Math.max(1, Math.round(10 ** (5 * (i / (PARTS - 1)) ** 3))));
  for (let i = sizes.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sizes[i], sizes[j]] = [sizes[j] as number, sizes[i] as number];
  }
  return sizes;
}

function values(dist: Dist, n: number, random: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - random(); // (0, 1]
    if (dist === 'lognormal') out[i] = Math.exp(Math.log(50) + normal(random));
    else if (dist === 'pareto1.1') out[i] = 10 * u ** (-1 / 1.1);
    else if (dist === 'exponential') out[i] = -50 * Math.log(u);
    else out[i] = 10 ** (-6 + 12 * random());
  }
  return out;
}

function exactQuantiles(sorted: Float64Array): number[] {
  return QS.map((q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number);
}

function partials(impl: Impl, v: Float64Array, sizes: number[], descending: boolean): LatencySketch[] {
  const out: LatencySketch[] = [];
  let at = 0;
  for (const size of sizes) {
    const s = impl.make();
    if (descending) for (let i = at + size - 1; i >= at; i--) s.add(v[i] as number);
    else for (let i = at; i < at + size; i++) s.add(v[i] as number);
    at += size;
    out.push(impl.decode(s.serialize()));
  }
  return out;
}

function mergeOrder(layout: Layout, random: () => number): number[] {
  const order = Array.from({ length: PARTS }, (_, i) => i);
  if (layout === 'uneven') {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    return order;
  }
  if (layout === 'sorted') return order;
  const out: number[] = [];
  for (let lo = 0, hi = PARTS - 1; lo <= hi; lo++, hi--) out.push(...(lo === hi ? [hi] : [hi, lo]));
  return out;
}

function mergeAll(impl: Impl, parts: LatencySketch[], order: number[]): LatencySketch {
  const m = impl.make();
  for (const i of order) m.merge(parts[i] as LatencySketch);
  m.quantile(0.5); // include any deferred folding in the timing
  return m;
}

interface Row {
  impl: string;
  dist: Dist;
  layout: Layout;
  err: number[];
  mergeMs: number;
  bytes: number;
  serialized: Uint8Array;
}

interface Data {
  v: Float64Array;
  sorted: Float64Array;
  exact: number[];
  sizes: number[];
}

function evaluate(impl: Impl, dist: Dist, layout: Layout, { v, sorted, exact, sizes }: Data): Row {
  const random = seededRandom(11);
  const parts = partials(impl, layout === 'uneven' ? v : sorted, sizes, layout === 'adversarial');
  const order = mergeOrder(layout, random);
  mergeAll(impl, parts, order); // warm-up
  const times: number[] = [];
  let merged = impl.make();
  for (let rep = 0; rep < 3; rep++) {
    const [m, ms] = cpuMs(() => mergeAll(impl, parts, order));
    merged = m;
    times.push(ms);
  }
  const err = QS.map((q, i) => (Math.abs(merged.quantile(q) - (exact[i] as number)) / (exact[i] as number)) * 100);
  const serialized = merged.serialize();
  return { impl: impl.name, dist, layout, err, mergeMs: Math.min(...times), bytes: serialized.length, serialized };
}

function addNsPerValue(impl: Impl, v: Float64Array): number {
  const [, ms] = cpuMs(() => {
    const s = impl.make();
    for (const x of v) s.add(x);
    s.quantile(0.5);
  });
  return (ms * 1e6) / v.length;
}

const random = seededRandom(2026);
const sizes = partSizes(random);
const total = sizes.reduce((a, b) => a + b, 0);
const rows: Row[] = [];
for (const dist of DISTS) {
  const v = values(dist, total, random);
  const sorted = v.slice().sort();
  const exact = exactQuantiles(sorted);
  const data = { v, sorted, exact, sizes };
  for (const layout of LAYOUTS) rows.push(evaluate(NEW, dist, layout, data), evaluate(OLD, dist, layout, data));
}
const addValues = values('lognormal', 1_000_000, seededRandom(99));
addNsPerValue(NEW, addValues.subarray(0, 100_000));
addNsPerValue(OLD, addValues.subarray(0, 100_000));
const newAdd = Math.min(addNsPerValue(NEW, addValues), addNsPerValue(NEW, addValues));
const oldAdd = Math.min(addNsPerValue(OLD, addValues), addNsPerValue(OLD, addValues));

const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(4)).join(' / ');
console.log(`${PARTS} partials, ${total} values per distribution; % value error after merging, p50/p90/p99/p99.9`);
for (const r of rows) {
  const where = `${r.impl.padEnd(10)} ${r.dist.padEnd(12)} ${r.layout.padEnd(11)}`;
  console.log(`${where} ${fmt(r.err)} | merge ${r.mergeMs.toFixed(1)} ms | ${r.bytes} B`);
}
console.log(`add: loghist ${newAdd.toFixed(1)} ns/value, tdigest-v1 ${oldAdd.toFixed(1)} ns/value`);

interface Summary {
  p50to99: number;
  p999: number;
  bytes: number;
  mergeMs: number;
  orderFree: boolean;
}
function summarise(name: string): Summary {
  const rs = rows.filter((r) => r.impl === name);
  const worst = (from: number, to: number): number => Math.max(...rs.flatMap((r) => r.err.slice(from, to)));
  // Order-free: every layout of a distribution (other splits, other merge orders) gives the same
  // bytes; for loghist the floating-point sum is left out (it may differ in its last bits).
  const orderFree = DISTS.every((d) => {
    const bytes = (r: Row): Buffer => Buffer.from(name === NEW.name ? withoutSum(r.serialized) : r.serialized);
    const [first, ...rest] = rs.filter((r) => r.dist === d).map(bytes);
    return rest.every((b) => first !== undefined && b.equals(first));
  });
  const bytes = Math.max(...rs.map((r) => r.bytes));
  return { p50to99: worst(0, 3), p999: worst(3, 4), bytes, mergeMs: Math.max(...rs.map((r) => r.mergeMs)), orderFree };
}
const n = summarise(NEW.name);
const o = summarise(OLD.name);
const pass = n.p50to99 <= 0.1 && n.p999 <= 0.5 && n.bytes <= 4096 && n.mergeMs < 50;
console.log(
  `RESULT bench=sketch worst_err_pct_p50_p99=${n.p50to99.toFixed(4)} worst_err_pct_p999=${n.p999.toFixed(4)} ` +
    `bytes=${n.bytes} ` +
    `merge1000_cpu_ms=${n.mergeMs.toFixed(1)} order_free=${n.orderFree} add_ns=${newAdd.toFixed(1)} ` +
    `old_worst_err_pct_p50_p99=${o.p50to99.toFixed(4)} old_worst_err_pct_p999=${o.p999.toFixed(4)} ` +
    `old_bytes=${o.bytes} ` +
    `old_merge1000_cpu_ms=${o.mergeMs.toFixed(1)} old_order_free=${o.orderFree} old_add_ns=${oldAdd.toFixed(1)} ` +
    `values_per_dist=${total} pass=${pass} loadavg1=${loadavg()[0]?.toFixed(1)}`,
);
