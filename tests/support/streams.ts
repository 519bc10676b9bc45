// Realistic wire-message streams for aggregator tests and benchmarks, until the agent produces
// real ones: per replica hello -> baseline marks and samples -> ready -> window marks with
// telemetry and per-slice sketches -> summary, with seqs 1..n and a consistent energy counter.
// Deterministic for a given seed. Every message says simulated: true.
import type { SketchMessage, TelemetryMessage, WireMessage } from '../../api/protocol.ts';
import type { AggregatorPlan, FailurePolicy, PlannedRun } from '../../aggregator/index.ts';
import { createLatencySketch, sketchToBase64 } from '../../lib/sketch/index.ts';

import { seededRandom } from '../../api/random.ts';

export { seededRandom };

export function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export function makePlan(opts: {
  experimentUid?: string;
  configs: number;
  cycles: number;
  replicas?: number;
  failurePolicy?: FailurePolicy;
}): AggregatorPlan {
  const runs: PlannedRun[] = [];
  for (let cycle = 0; cycle < opts.cycles; cycle++) {
    for (let c = 0; c < opts.configs; c++) {
      runs.push({
        runId: `c${c}-k${cycle}`,
        configId: `c${c}`,
        configHash: `hash-${c}`,
        cycle,
        replicas: opts.replicas ?? 1,
        failurePolicy: opts.failurePolicy ?? 'strict',
      });
    }
  }
  return { experimentUid: opts.experimentUid ?? 'exp-1', runs };
}

export interface StreamOptions {
  seed: number;
  attempt?: number;
  slices?: number;
  requestsPerSlice?: number;
  outputTokensPerRequest?: number;
  gpusPerReplica?: number;
  sliceMs?: number;
  baselineMs?: number;
  /** Samples per GPU per slice (telemetry messages between sketch messages). */
  samplesPerSlice?: number;
  /** Make the energy counter of GPU 0 drop to a small value in this slice (a driver reset). */
  counterResetSlice?: number;
}

interface Ctx {
  run: PlannedRun;
  replica: number;
  attempt: number;
  experimentUid: string;
  seq: number;
  random: () => number;
  counters: number[];
  gpus: string[];
}

function envelope(
  c: Ctx,
  sentAtMs: number,
): Pick<
  WireMessage,
  'v' | 'namespace' | 'experimentUid' | 'runId' | 'attempt' | 'replica' | 'seq' | 'sentAtMs' | 'simulated'
> {
  c.seq += 1;
  return {
    v: 1,
    namespace: 'default',
    experimentUid: c.experimentUid,
    runId: c.run.runId,
    attempt: c.attempt,
    replica: c.replica,
    seq: c.seq,
    sentAtMs,
    simulated: true,
  };
}

function telemetry(
  c: Ctx,
  tMs: number,
  phase: TelemetryMessage['phase'],
  powerW: number,
  mark?: TelemetryMessage['mark'],
): TelemetryMessage {
  const samples = c.gpus.map((gpuUuid, i) => {
    const p = powerW * (0.95 + 0.1 * c.random());
    return {
      gpuUuid,
      tMs,
      energyMillijoules: c.counters[i] as number,
      powerWatts: p,
      utilizationGpuPct: phase === 'measuring' ? 95 : 0,
      memoryUsedMiB: 70000,
      smClockMhz: 1980,
      memClockMhz: 2619,
      temperatureC: 50,
      throttleReasons: 0,
    };
  });
  return { ...envelope(c, tMs), kind: 'telemetry', phase, ...(mark === undefined ? {} : { mark }), samples };
}

function advance(c: Ctx, dtMs: number, powerW: number): void {
  // W x ms = mJ
  for (let i = 0; i < c.counters.length; i++) c.counters[i] = (c.counters[i] as number) + Math.round(powerW * dtMs);
}

function sketchMessage(c: Ctx, slice: number, startMs: number, o: Required<StreamOptions>): SketchMessage {
  const d = {
    ttftMs: createLatencySketch(),
    itlMs: createLatencySketch(),
    e2eMs: createLatencySketch(),
    tpotMs: createLatencySketch(),
  };
  let outputTokens = 0;
  for (let r = 0; r < o.requestsPerSlice; r++) {
    const ttft = Math.exp(Math.log(40) + 0.5 * normal(c.random));
    const tokens = Math.max(2, Math.round(o.outputTokensPerRequest * (0.5 + c.random())));
    let e2e = ttft;
    for (let t = 1; t < tokens; t++) {
      const itl = c.random() < 0.7 ? 8 + normal(c.random) : 25 + 5 * normal(c.random);
      const clamped = Math.max(0.5, itl);
      d.itlMs.add(clamped);
      e2e += clamped;
    }
    d.ttftMs.add(ttft);
    d.e2eMs.add(e2e);
    d.tpotMs.add((e2e - ttft) / (tokens - 1));
    outputTokens += tokens;
  }
  return {
    ...envelope(c, startMs + o.sliceMs),
    kind: 'sketch',
    slice,
    sliceStartMs: startMs,
    sliceEndMs: startMs + o.sliceMs,
    requestsOk: o.requestsPerSlice,
    requestsFailed: 0,
    errorClasses: {},
    inputTokens: o.requestsPerSlice * 128,
    outputTokens,
    sketches: {
      ttftMs: sketchToBase64(d.ttftMs),
      itlMs: sketchToBase64(d.itlMs),
      e2eMs: sketchToBase64(d.e2eMs),
      tpotMs: sketchToBase64(d.tpotMs),
    },
  };
}

function defaults(o: StreamOptions): Required<StreamOptions> {
  return {
    seed: o.seed,
    attempt: o.attempt ?? 0,
    slices: o.slices ?? 5,
    requestsPerSlice: o.requestsPerSlice ?? 8,
    outputTokensPerRequest: o.outputTokensPerRequest ?? 16,
    gpusPerReplica: o.gpusPerReplica ?? 1,
    sliceMs: o.sliceMs ?? 1000,
    baselineMs: o.baselineMs ?? 2000,
    samplesPerSlice: o.samplesPerSlice ?? 1,
    counterResetSlice: o.counterResetSlice ?? -1,
  };
}

/** One replica's complete message sequence (seq 1..n), ending with its summary. */
export function replicaMessages(
  run: PlannedRun,
  replica: number,
  experimentUid: string,
  options: StreamOptions,
): WireMessage[] {
  const o = defaults(options);
  const random = seededRandom(o.seed * 7919 + replica * 104729 + o.attempt * 31);
  const gpus = Array.from({ length: o.gpusPerReplica }, (_, i) => `GPU-${run.runId}-r${replica}-${i}`);
  const c: Ctx = {
    run,
    replica,
    attempt: o.attempt,
    experimentUid,
    seq: 0,
    random,
    counters: gpus.map(() => 1e9 + Math.round(random() * 1e6)),
    gpus,
  };
  const out: WireMessage[] = [];
  const t0 = 1_700_000_000_000;
  const idleW = 70;
  const busyW = 450 + 100 * random();
  out.push({
    ...envelope(c, t0),
    kind: 'hello',
    environment: {
      hostname: `node-${replica}`,
      gpus: gpus.map((uuid, index) => ({
        index,
        uuid,
        name: 'Simulated H200',
        memoryTotalMiB: 143771,
        powerLimitWatts: 700,
        smClockMaxMhz: 1980,
      })),
      driverVersion: null,
      nvmlVersion: null,
      cudaVersion: null,
      backend: 'mock',
      backendVersion: null,
      configHash: run.configHash,
      agentVersion: '0.1.0',
      telemetrySource: 'simulated',
    },
  });
  out.push(telemetry(c, t0, 'baseline', idleW, 'baselineStart'));
  advance(c, o.baselineMs, idleW);
  out.push(telemetry(c, t0 + o.baselineMs, 'baseline', idleW, 'baselineEnd'));
  out.push({ ...envelope(c, t0 + o.baselineMs), kind: 'ready' });
  const w0 = t0 + o.baselineMs + 1000;
  advance(c, 1000, idleW);
  out.push(telemetry(c, w0, 'measuring', busyW, 'windowStart'));
  let requestsOk = 0;
  let outputTokens = 0;
  for (let s = 0; s < o.slices; s++) {
    const start = w0 + s * o.sliceMs;
    for (let k = 1; k <= o.samplesPerSlice; k++) {
      advance(c, o.sliceMs / o.samplesPerSlice, busyW);
      if (s === o.counterResetSlice && k === 1) c.counters[0] = 1000;
      const last = s === o.slices - 1 && k === o.samplesPerSlice;
      if (!last) out.push(telemetry(c, start + (k * o.sliceMs) / o.samplesPerSlice, 'measuring', busyW));
    }
    const sk = sketchMessage(c, s, start, o);
    requestsOk += sk.requestsOk;
    outputTokens += sk.outputTokens;
    out.push(sk);
  }
  const wEnd = w0 + o.slices * o.sliceMs;
  out.push(telemetry(c, wEnd, 'measuring', busyW, 'windowEnd'));
  const counts = { hello: 0, ready: 0, sketch: 0, telemetry: 0 };
  for (const m of out) if (m.kind !== 'summary' && m.kind !== 'aborted') counts[m.kind] += 1;
  out.push({
    ...envelope(c, wEnd + 100),
    kind: 'summary',
    messagesBefore: out.length,
    countsByKind: counts,
    requestsOk,
    requestsFailed: 0,
    inputTokens: requestsOk * 128,
    outputTokens,
    baselineStartMs: t0,
    baselineEndMs: t0 + o.baselineMs,
    windowStartMs: w0,
    windowEndMs: wEnd,
    warnings: [],
  });
  return out;
}

/** All runs of a plan, each run's replicas interleaved message by message, runs one after another. */
export function experimentMessages(plan: AggregatorPlan, options: StreamOptions): WireMessage[] {
  const out: WireMessage[] = [];
  for (const [i, run] of plan.runs.entries()) {
    const per = Array.from({ length: run.replicas }, (_, r) =>
      replicaMessages(run, r, plan.experimentUid, { ...options, seed: options.seed * 1000 + i }),
    );
    const longest = Math.max(...per.map((p) => p.length));
    for (let k = 0; k < longest; k++) for (const p of per) if (k < p.length) out.push(p[k] as WireMessage);
  }
  return out;
}
