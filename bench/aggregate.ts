// Aggregator benchmark: sketch-message throughput on one core and RSS growth between 10^4 and
// 10^8 represented latency samples. Baseline measured in the same run: decoding the same
// messages from wire bytes (JSON + zod), which every consumer pays anyway.
// Run: node --import tsx bench/aggregate.ts [--messages N]
import { loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeMessage, encodeMessage, type SketchMessage, type WireMessage } from '../api/protocol.ts';
import { Aggregator } from '../aggregator/index.ts';
import { createLatencySketch, sketchToBase64 } from '../lib/sketch/index.ts';
import { makePlan, normal, replicaMessages, seededRandom } from '../tests/support/streams.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MESSAGES = arg('messages', 20_000);
const RUNS = 50;

function cpuMs(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

/** A pool of realistic slice messages (16 requests, ~64 output tokens each per slice). */
function slicePool(): SketchMessage[] {
  const plan = makePlan({ configs: 1, cycles: 1 });
  const run = plan.runs[0]!;
  return replicaMessages(run, 0, plan.experimentUid, {
    seed: 5,
    slices: 64,
    requestsPerSlice: 16,
    outputTokensPerRequest: 64,
  }).filter((m): m is SketchMessage => m.kind === 'sketch');
}

/** `count` sketch messages round-robin over the plan's runs, with contiguous seqs per run. */
function messages(pool: SketchMessage[], runs: string[], count: number, seqs: Map<string, number>): WireMessage[] {
  const out: WireMessage[] = [];
  for (let i = 0; i < count; i++) {
    const runId = runs[i % runs.length]!;
    const seq = (seqs.get(runId) ?? 0) + 1;
    seqs.set(runId, seq);
    // As a consumer hands them over: decoded from wire bytes (decoding is the baseline, timed apart).
    const decoded = decodeMessage(encodeMessage({ ...pool[i % pool.length]!, runId, seq }));
    if (!decoded.ok) throw new Error(decoded.error);
    out.push(decoded.message);
  }
  return out;
}

function feed(agg: Aggregator, msgs: WireMessage[]): void {
  let stream = agg.lastStreamSeq;
  for (const m of msgs) {
    const o = agg.apply(m, ++stream);
    if (o.outcome !== 'applied') throw new Error(`unexpected outcome ${JSON.stringify(o)}`);
  }
}

function throughput(): { aggPerS: number; decodePerS: number } {
  const pool = slicePool();
  const plan = makePlan({ configs: RUNS, cycles: 1 });
  const runs = plan.runs.map((r) => r.runId);
  feed(new Aggregator(plan), messages(pool, runs, 5000, new Map())); // JIT warm-up
  const msgs = messages(pool, runs, MESSAGES, new Map());
  const agg = new Aggregator(plan);
  const ms = cpuMs(() => feed(agg, msgs));
  const bytes = pool.map((m) => encodeMessage(m));
  const decodeCount = Math.min(MESSAGES, 5000);
  const decodeMs = cpuMs(() => {
    for (let i = 0; i < decodeCount; i++)
      if (!decodeMessage(bytes[i % bytes.length]!).ok) throw new Error('decode failed');
  });
  return { aggPerS: (MESSAGES / ms) * 1000, decodePerS: (decodeCount / decodeMs) * 1000 };
}

/** Slice messages whose sketches each stand for `weight` x 256 samples (weighted adds). */
function heavyPool(weight: number): SketchMessage[] {
  const random = seededRandom(9);
  const base = slicePool().slice(0, 16);
  return base.map((m) => {
    const sketches: SketchMessage['sketches'] = {};
    for (const k of ['ttftMs', 'itlMs', 'e2eMs', 'tpotMs'] as const) {
      const d = createLatencySketch();
      for (let i = 0; i < 256; i++) d.add(Math.exp(Math.log(40) + 0.5 * normal(random)), weight);
      sketches[k] = sketchToBase64(d);
    }
    return { ...m, sketches };
  });
}

function rssMb(): number {
  gc();
  return process.memoryUsage().rss / 2 ** 20;
}

function rssGrowth(): { rssSmallMb: number; rssLargeMb: number; represented: number } {
  const perMessage = 4 * 256;
  const weight = 25;
  const pool = heavyPool(weight);
  const small = heavyPool(1).map((m) => m);
  const plan = makePlan({ configs: RUNS, cycles: 1 });
  const runs = plan.runs.map((r) => r.runId);
  const agg = new Aggregator(plan);
  const seqs = new Map<string, number>();
  feed(agg, messages(small, runs, Math.ceil(1e4 / perMessage), seqs));
  agg.results();
  const rssSmallMb = rssMb();
  const target = 1e8;
  const count = Math.ceil((target - 1e4) / (perMessage * weight));
  // In batches, so the messages themselves never pile up in memory.
  for (let done = 0; done < count; done += 2000) feed(agg, messages(pool, runs, Math.min(2000, count - done), seqs));
  const represented = agg
    .results()
    .runs.reduce(
      (a, r) => a + r.latency.ttftMs.count + r.latency.itlMs.count + r.latency.e2eMs.count + r.latency.tpotMs.count,
      0,
    );
  return { rssSmallMb, rssLargeMb: rssMb(), represented };
}

const t = throughput();
const m = rssGrowth();
const growth = m.rssLargeMb - m.rssSmallMb;
console.log(
  `aggregator: ${t.aggPerS.toFixed(0)} sketch msgs/s (CPU time, ${MESSAGES} messages over ${RUNS} runs); wire decode alone: ${t.decodePerS.toFixed(0)} msgs/s`,
);
console.log(
  `RSS ${m.rssSmallMb.toFixed(1)} MB at 1e4 samples -> ${m.rssLargeMb.toFixed(1)} MB at ${m.represented.toExponential(2)} represented samples`,
);
const ok = t.aggPerS >= 20_000 && growth < 50 && m.represented >= 1e8;
console.log(
  `RESULT bench=aggregate msgs_per_s=${t.aggPerS.toFixed(0)} target_msgs_per_s=20000 decode_baseline_msgs_per_s=${t.decodePerS.toFixed(0)} ` +
    `agg_vs_decode=${(t.aggPerS / t.decodePerS).toFixed(2)} rss_growth_mb=${growth.toFixed(1)} target_rss_growth_mb=50 ` +
    `represented_samples=${m.represented.toExponential(2)} pass=${ok} loadavg1=${loadavg()[0]?.toFixed(1)}`,
);
