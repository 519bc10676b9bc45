// Property (issue #17 item 4): for ANY sequence of messages the wire schema accepts — hostile
// error-class names, odd numbers (0, -0, huge counters, subnormals, the largest safe integers),
// GPUs shared between replicas, unknown runs and attempts, implausible latencies — with attempts started
// at random points, checkpoint -> restore never throws, and the restored aggregator's results and
// checkpoint are byte-identical to those of one that was never interrupted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { WireMessageSchema, type WireMessage } from '../../../api/protocol.ts';
import { Aggregator, type AggregatorPlan } from '../../../aggregator/index.ts';
import { createLatencySketch, sketchToBase64 } from '../../../lib/sketch/index.ts';

const plan: AggregatorPlan = {
  experimentUid: 'exp',
  runs: [
    { runId: 'r0', configId: 'c0', configHash: 'h0', cycle: 0, replicas: 2, failurePolicy: 'strict' },
    { runId: 'r1', configId: 'c0', configHash: 'h0', cycle: 1, replicas: 1, failurePolicy: 'bestEffort' },
  ],
};

const CLASSES = [
  'constructor',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  '__defineGetter__',
  'prototype',
  'timeout',
  'length',
];
const UUIDS = ['GPU-a', 'GPU-b', 'GPU-c'];

const oddNumber = (max: number): fc.Arbitrary<number> =>
  fc.oneof(
    fc.constantFrom(0, -0, 1, Number.MIN_VALUE, 2 ** 52 + 0.5, max),
    fc.double({ min: 0, max, noNaN: true, noDefaultInfinity: true }),
    fc.integer({ min: 0, max: 10_000 }),
  );
const count = fc.oneof(fc.nat(50), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 40));
const timeMs = fc.oneof(fc.integer({ min: 1_700_000_000_000, max: 1_700_000_060_000 }), fc.constantFrom(0, 1e15));

const sketch = fc
  .array(fc.tuple(oddNumber(1e10), fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 1000 }))), {
    minLength: 1,
    maxLength: 40,
  })
  .map((values) => {
    const d = createLatencySketch();
    for (const [v, w] of values) d.add(v, w);
    return sketchToBase64(d);
  });

const envelope = fc.record({
  v: fc.constant(1 as const),
  namespace: fc.constant('default'),
  experimentUid: fc.constantFrom(...Array<string>(9).fill('exp'), 'other'),
  runId: fc.constantFrom('r0', 'r0', 'r0', 'r0', 'r1', 'r1', 'r1', 'zz'),
  attempt: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 2, 99),
  replica: fc.constantFrom(0, 0, 0, 0, 1, 1, 2),
  seq: fc.integer({ min: 1, max: 12 }),
  sentAtMs: timeMs,
  simulated: fc.boolean(),
});

const sample = fc.record({
  gpuUuid: fc.constantFrom(...UUIDS),
  tMs: timeMs,
  energyMillijoules: fc.option(oddNumber(2 ** 64)),
  powerWatts: fc.option(oddNumber(100_000)),
  utilizationGpuPct: fc.option(fc.double({ min: 0, max: 100, noNaN: true })),
  memoryUsedMiB: fc.constant(null),
  smClockMhz: fc.constant(null),
  memClockMhz: fc.constant(null),
  temperatureC: fc.constant(null),
  throttleReasons: fc.constant(null),
});

const body = fc.oneof(
  fc.record({
    kind: fc.constant('hello'),
    environment: fc.record({
      hostname: fc.constant('n'),
      gpus: fc.uniqueArray(fc.constantFrom(...UUIDS), { maxLength: 3 }).chain((uuids) =>
        fc.tuple(
          ...uuids.map((uuid, index) =>
            fc.record({
              index: fc.constant(index),
              uuid: fc.constant(uuid),
              name: fc.constant('H200'),
              memoryTotalMiB: fc.constant(null),
              powerLimitWatts: fc.option(fc.double({ min: 1, max: 2000, noNaN: true })),
              smClockMaxMhz: fc.constant(null),
            }),
          ),
        ),
      ),
      driverVersion: fc.constant(null),
      nvmlVersion: fc.constant(null),
      cudaVersion: fc.constant(null),
      backend: fc.constant('mock'),
      backendVersion: fc.constant(null),
      configHash: fc.constantFrom('h0', 'x'),
      agentVersion: fc.constant('0'),
      telemetrySource: fc.constant('simulated'),
    }),
  }),
  fc.record({ kind: fc.constant('ready') }),
  fc.record({
    kind: fc.constant('sketch'),
    slice: fc.nat(5),
    sliceStartMs: fc.constant(1_700_000_000_000),
    sliceEndMs: fc.constant(1_700_000_001_000),
    requestsOk: count,
    requestsFailed: count,
    inputTokens: count,
    outputTokens: count,
    errorClasses: fc.dictionary(fc.constantFrom(...CLASSES), count, { maxKeys: 4 }),
    sketches: fc.record({ ttftMs: sketch, e2eMs: sketch }, { requiredKeys: [] }),
  }),
  fc.record({
    kind: fc.constant('telemetry'),
    phase: fc.constantFrom('baseline', 'measuring'),
    mark: fc.option(fc.constantFrom('baselineStart', 'baselineEnd', 'windowStart', 'windowEnd'), { nil: undefined }),
    samples: fc.uniqueArray(sample, { maxLength: 3, selector: (s) => s.gpuUuid }),
  }),
  fc.record({
    kind: fc.constant('summary'),
    messagesBefore: fc.nat(12),
    countsByKind: fc.record({ hello: fc.nat(2), ready: fc.nat(2), sketch: fc.nat(5), telemetry: fc.nat(8) }),
    requestsOk: count,
    requestsFailed: count,
    inputTokens: count,
    outputTokens: count,
    baselineStartMs: fc.constant(1_700_000_000_000),
    baselineEndMs: fc.constant(1_700_000_002_000),
    windowStartMs: fc.constant(1_700_000_003_000),
    windowEndMs: fc.integer({ min: 1_700_000_003_001, max: 1_700_000_063_000 }),
    warnings: fc.constant([]),
  }),
  fc.record({
    kind: fc.constant('aborted'),
    phase: fc.constant('measuring'),
    reason: fc.constantFrom('SIGTERM', 'constructor'),
  }),
);

/** Messages the wire schema accepts (the generator's few misses are dropped), and attempt starts. */
type Event = { message: WireMessage } | { start: string; attempt: number };
const event: fc.Arbitrary<Event | null> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.tuple(envelope, body).map(([e, b]) => {
      const parsed = WireMessageSchema.safeParse({ ...e, ...b });
      return parsed.success ? { message: parsed.data } : null;
    }),
  },
  { weight: 1, arbitrary: fc.record({ start: fc.constantFrom('r0', 'r1'), attempt: fc.constantFrom(1, 2) }) },
);

function feed(agg: Aggregator, events: readonly Event[], firstSeq: number): void {
  events.forEach((e, i) => {
    if ('start' in e) agg.startAttempt(e.start, e.attempt);
    else agg.apply(e.message, firstSeq + i);
  });
}

void describe('checkpoint and restore of accepted input', () => {
  void it('restores any accepted message sequence into byte-identical results and checkpoints', () => {
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 60 }).map((a) => a.filter((e): e is Event => e !== null)),
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 3 }),
        (events, rawCuts) => {
          const straight = new Aggregator(plan);
          feed(straight, events, 1);
          const cuts = [...new Set(rawCuts.map((c) => c % (events.length + 1)))].sort((a, b) => a - b);
          let agg = new Aggregator(plan);
          let done = 0;
          for (const cut of cuts) {
            feed(agg, events.slice(done, cut), done + 1);
            done = cut;
            agg.results();
            const bytes = agg.checkpoint();
            agg = Aggregator.restore(bytes);
            assert.deepEqual(agg.checkpoint(), bytes, 'a restored checkpoint checkpoints to the same bytes');
          }
          feed(agg, events.slice(done), done + 1);
          assert.equal(agg.resultsJson(), straight.resultsJson());
          assert.deepEqual(agg.checkpoint(), straight.checkpoint());
          const json = straight.resultsJson();
          assert.ok(!json.includes('NaN') && !json.includes('Infinity'));
        },
      ),
      { numRuns: 150, seed: 17_04 },
    );
  });
});
