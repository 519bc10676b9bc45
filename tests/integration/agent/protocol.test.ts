import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  PROTOCOL_VERSION,
  startSubject,
  type SketchMessage,
  type SummaryMessage,
  type TelemetryMessage,
} from '../../../api/protocol.ts';
import { createLatencySketch, sketchFromBase64 } from '../../../lib/sketch/index.ts';
import { runAgent } from '../../../agent/runner.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';
import { createSimulatedGpu } from '../../../agent/telemetry/sampler.ts';
import { kinds, recordingBus } from './recording-bus.ts';
import { protocolConfig, until } from './protocol-helpers.ts';

let server: MockServer;
before(async () => {
  server = await startMockServer({ ttft: { meanMs: 15 }, itl: { meanMs: 3 } });
});
after(async () => server.close());

const deps = (bus: ReturnType<typeof recordingBus>['bus']): Parameters<typeof runAgent>[1] => ({
  bus,
  telemetry: createSimulatedGpu({ sampleIntervalMs: 20, batchIntervalMs: 50 }),
  createSketch: createLatencySketch,
});

void test('a full run publishes every phase in order with contiguous seq and a summary that proves completeness', async () => {
  const { bus, messages } = recordingBus();
  const before = server.stats().requests;
  const summary = await runAgent(protocolConfig(server.url), deps(bus));
  const k = kinds(messages);
  assert.equal(k[0], 'hello');
  assert.equal(k.at(-1), 'summary');
  const order = [
    'mark:baselineStart',
    'mark:baselineEnd',
    'ready',
    'mark:windowStart',
    'sketch',
    'mark:windowEnd',
    'summary',
  ];
  const at = order.map((x) => k.indexOf(x));
  assert.deepEqual(
    [...at].sort((a, b) => a - b),
    at,
    k.join(' '),
  );
  assert.deepEqual(
    messages.map((m) => m.seq),
    messages.map((_m, i) => i + 1),
  );
  const last = messages.at(-1) as SummaryMessage;
  assert.equal(last.messagesBefore, messages.length - 1);
  assert.equal(last.countsByKind.sketch, k.filter((x) => x === 'sketch').length);
  assert.equal(last.countsByKind.telemetry, messages.filter((m) => m.kind === 'telemetry').length);
  assert.ok(messages.every((m) => m.simulated && m.v === PROTOCOL_VERSION && m.attempt === 2));
  // Warm-up requests reach the server but not the numbers.
  assert.equal(server.stats().requests - before, 33);
  const sketches = messages.filter((m): m is SketchMessage => m.kind === 'sketch');
  assert.equal(
    sketches.reduce((s, m) => s + m.requestsOk, 0),
    30,
  );
  assert.equal(summary.requestsOk, 30);
  assert.equal(summary.outputTokens, 30 * 8);
  const ttft = createLatencySketch();
  for (const m of sketches) {
    // A binary batch carries the sketch's bytes, JSON its base64 (ADR 0036, amended).
    const t = m.sketches.ttftMs;
    if (t !== undefined) ttft.merge(sketchFromBase64(typeof t === 'string' ? t : Buffer.from(t).toString('base64')));
  }
  assert.equal(ttft.count, 30);
  assert.ok(ttft.quantile(0.5) >= 14, `ttft p50 ${ttft.quantile(0.5)}`);
  assert.deepEqual(
    sketches.map((m) => m.slice),
    sketches.map((_m, i) => i),
  );
  const marks = messages.filter((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark !== undefined);
  const energy = marks.map((m) => m.samples[0]?.energyMillijoules ?? NaN);
  assert.deepEqual(
    [...energy].sort((a, b) => a - b),
    energy,
  );
  assert.ok(summary.warnings.some((w) => /simulated/.test(w)));
});

void test("the window waits for this attempt's start signal and starts at its time", async () => {
  const { bus, messages } = recordingBus();
  const config = protocolConfig(server.url, {
    start: { mode: 'signal' },
    measurement: { baselineSeconds: 0, warmupRequests: 0 },
  });
  const run = runAgent(config, deps(bus));
  await until(messages, (m) => m.kind === 'ready');
  const send = (attempt: number, startAtMs: number): Promise<void> =>
    bus.publishControl(
      startSubject('ns', 'uid-1', 'run-a'),
      Buffer.from(JSON.stringify({ v: 1, experimentUid: 'uid-1', runId: 'run-a', attempt, startAtMs })),
    );
  await send(1, Date.now());
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(
    !messages.some((m) => m.kind === 'telemetry' && m.mark === 'windowStart'),
    'a signal for another attempt is ignored',
  );
  const startAt = Date.now() + 150;
  await send(2, startAt);
  const summary = await run;
  assert.ok(summary.windowStartMs >= startAt, `${summary.windowStartMs} < ${startAt}`);
});

void test('streams cut mid-response are counted as failures by class, not dropped', async () => {
  const cutting = await startMockServer({
    ttft: { meanMs: 5 },
    itl: { meanMs: 2 },
    faults: { cutEveryNth: 5, cutAfterTokens: 3 },
  });
  const { bus, messages } = recordingBus();
  const config = protocolConfig(cutting.url, { measurement: { warmupRequests: 0, baselineSeconds: 0 } });
  const summary = await runAgent(config, deps(bus));
  await cutting.close();
  assert.equal(summary.requestsOk + summary.requestsFailed, 30);
  assert.equal(summary.requestsFailed, 6);
  const classes = messages
    .filter((m): m is SketchMessage => m.kind === 'sketch')
    .reduce((s, m) => s + (m.errorClasses['stream_cut'] ?? 0), 0);
  assert.equal(classes, 6);
  assert.ok(summary.warnings.some((w) => /6 of 30 requests failed/.test(w)));
});

void test('the steady-state window leaves out the ramp-up and the tail', async () => {
  const { bus } = recordingBus();
  // Varied lengths, as in real traffic: with one fixed length the last streams start and end in the
  // same engine step, their ends reach the client in one read, and the tail they form lasts no time.
  const config = protocolConfig(server.url, {
    workload: { outputTokens: { distribution: 'uniform', min: 4, max: 24 } },
    measurement: { steadyState: true, warmupRequests: 0, baselineSeconds: 0 },
  });
  const summary = await runAgent(config, deps(bus));
  assert.ok(summary.requestsOk < 30 && summary.requestsOk > 0, `requestsOk ${summary.requestsOk}`);
  assert.ok(!summary.warnings.some((w) => /steady state never reached/.test(w)));
});

void test('a steady state that never forms (the first request ends before the last starts) is flagged, not mismeasured', async () => {
  const small = await startMockServer({ ttft: { meanMs: 5 }, itl: { meanMs: 2 }, maxBatch: 2 });
  try {
    const { bus } = recordingBus();
    const config = protocolConfig(small.url, {
      workload: { mode: 'offline', requests: 6, outputTokens: 4 },
      measurement: { steadyState: true, warmupRequests: 0, baselineSeconds: 0 },
    });
    const summary = await runAgent(config, deps(bus));
    assert.equal(summary.requestsOk, 0, 'no request belongs to a steady-state window that never opened');
    assert.ok(
      summary.warnings.some((w) => /steady state never reached/.test(w)),
      summary.warnings.join('; '),
    );
  } finally {
    await small.close();
  }
});

void test('a failed energy-counter mark ends the run with an error and an aborted message, not a crash', async () => {
  const { bus, messages } = recordingBus();
  const telemetry = createSimulatedGpu({ sampleIntervalMs: 20, batchIntervalMs: 50 });
  const realMark = telemetry.mark.bind(telemetry);
  let marks = 0;
  telemetry.mark = async () => {
    marks += 1;
    if (marks === 3) throw new Error('sampler worker died');
    return realMark();
  };
  await assert.rejects(runAgent(protocolConfig(server.url), { ...deps(bus), telemetry }), /sampler worker died/);
  assert.equal(messages.at(-1)?.kind, 'aborted');
});

void test("the summary carries the backend's own metrics, each a number or null with the reason", async () => {
  // The mock server has no /stats: every PyTorch metric must be null and say why (never silently absent).
  const { bus, messages } = recordingBus();
  const config = protocolConfig(server.url, {
    backend: { name: 'pytorch', metrics: { path: '/stats', format: 'llem-stats' } },
  });
  const summary = await runAgent(config, deps(bus));
  const metrics = Object.values(summary.backendMetrics?.metrics ?? {});
  assert.equal(summary.backendMetrics?.backend, 'pytorch');
  assert.ok(metrics.length >= 3);
  // Each is null with its reason: the ones read from /stats say the read failed; a metric the PyTorch server has no
  // source for at all (its prefix-cache hit rate: it keeps no prefix cache) says that instead.
  for (const m of metrics) assert.ok(m.value === null && (m.reason ?? '').length > 0, JSON.stringify(m));
  const statsReads = metrics.filter((m) => /\/stats not read: GET .*\/stats: HTTP 404/.test(m.reason ?? ''));
  assert.ok(statsReads.length >= 3, JSON.stringify(metrics));
  const unread = metrics.filter((m) => !statsReads.includes(m));
  for (const m of unread) assert.match(m.reason ?? '', /keeps no prefix cache/, JSON.stringify(m));
  assert.deepEqual((messages.at(-1) as SummaryMessage).backendMetrics, summary.backendMetrics);
});

void test('a windowStart energy read slower than a slice period still goes out before the first sketch slice', async () => {
  const { bus, messages } = recordingBus();
  const gpu = createSimulatedGpu({ sampleIntervalMs: 20, batchIntervalMs: 50 });
  // A loaded host: the window's opening energy read takes 3 slice periods (sliceMs 100).
  const slowStart: typeof gpu = {
    source: gpu.source,
    start: (onBatch) => gpu.start(onBatch),
    mark: async (m) => {
      if (m === 'windowStart') await new Promise((r) => setTimeout(r, 300));
      return gpu.mark(m);
    },
    flush: () => gpu.flush(),
    stop: () => gpu.stop(),
  };
  await runAgent(protocolConfig(server.url), { ...deps(bus), telemetry: slowStart });
  const k = kinds(messages);
  assert.ok(k.includes('sketch'), k.join(' '));
  assert.ok(k.indexOf('mark:windowStart') < k.indexOf('sketch'), k.join(' '));
  assert.deepEqual(
    messages.map((m) => m.seq),
    messages.map((_m, i) => i + 1),
  );
});
