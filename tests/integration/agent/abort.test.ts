import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { AbortedMessage, Phase } from '../../../api/protocol.ts';
import { BackendError, InterruptedError, TelemetryError } from '../../../lib/errors.ts';
import { createLatencySketch } from '../../../lib/sketch/index.ts';
import { runAgent } from '../../../agent/runner.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';
import { createNvmlTelemetry, createSimulatedGpu } from '../../../agent/telemetry/sampler.ts';
import { recordingBus } from './recording-bus.ts';
import { protocolConfig, until } from './protocol-helpers.ts';

let server: MockServer;
let slowStart: MockServer;
before(async () => {
  server = await startMockServer({ ttft: { meanMs: 10 }, itl: { meanMs: 5 } });
  slowStart = await startMockServer({ readyAfterMs: 600_000 });
});
after(async () => {
  await server.close();
  await slowStart.close();
});

const LONG = 600;

/** A config whose `phase` lasts (practically) forever and every earlier phase is short. */
function stuckIn(phase: Phase): ReturnType<typeof protocolConfig> {
  const order: Phase[] = ['starting', 'baseline', 'warmup', 'ready', 'measuring', 'cooldown'];
  const reached = (p: Phase): boolean => order.indexOf(p) >= order.indexOf(phase);
  return protocolConfig(phase === 'starting' ? slowStart.url : server.url, {
    backend: { readinessTimeoutSeconds: LONG },
    measurement: {
      baselineSeconds: phase === 'baseline' ? LONG : 0.1,
      warmupRequests: phase === 'warmup' ? 1_000_000 : 2,
      cooldownSeconds: phase === 'cooldown' ? LONG : 0.1,
    },
    start: { mode: phase === 'ready' ? 'signal' : 'immediate', timeoutSeconds: LONG },
    workload: { requests: reached('measuring') && phase === 'measuring' ? 1_000_000 : 20 },
  });
}

for (const phase of ['starting', 'baseline', 'warmup', 'ready', 'measuring', 'cooldown'] as const) {
  void test(`an abort during ${phase} publishes aborted with that phase and stops promptly`, async () => {
    const { bus, messages } = recordingBus();
    const ac = new AbortController();
    const run = runAgent(stuckIn(phase), {
      bus,
      telemetry: createSimulatedGpu({ sampleIntervalMs: 20, batchIntervalMs: 30 }),
      createSketch: createLatencySketch,
      signal: ac.signal,
    });
    // Periodic telemetry carries the current phase: it tells the test where the run is.
    await until(messages, (m) => m.kind === 'telemetry' && m.phase === phase);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    ac.abort(new InterruptedError('received SIGTERM'));
    await assert.rejects(run, (e: unknown) => e instanceof InterruptedError && e.message.includes(`during ${phase}`));
    assert.ok(performance.now() - t0 < 3000, `took ${performance.now() - t0} ms`);
    const last = messages.at(-1) as AbortedMessage;
    assert.equal(last.kind, 'aborted');
    assert.equal(last.phase, phase);
    assert.match(last.reason, /SIGTERM/);
    assert.deepEqual(
      messages.map((m) => m.seq),
      messages.map((_m, i) => i + 1),
    );
    assert.ok(!messages.some((m) => m.kind === 'summary'));
  });
}

void test('a backend that dies mid-run ends it with a BackendError and an aborted marker', async (t) => {
  const doomed = await startMockServer({ ttft: { meanMs: 5 }, itl: { meanMs: 5 } });
  t.after(() => doomed.close());
  const { bus, messages } = recordingBus();
  const ac = new AbortController();
  const config = protocolConfig(doomed.url, {
    workload: { requests: 1_000_000 },
    measurement: { warmupRequests: 0, baselineSeconds: 0 },
  });
  const run = runAgent(config, {
    bus,
    telemetry: createSimulatedGpu(),
    createSketch: createLatencySketch,
    signal: ac.signal,
  });
  await until(messages, (m) => m.kind === 'sketch');
  await doomed.close();
  // What the supervisor does when the backend process exits.
  ac.abort(new BackendError('backend exited with code 1'));
  await assert.rejects(run, BackendError);
  const last = messages.at(-1) as AbortedMessage;
  assert.deepEqual([last.kind, last.phase, last.reason], ['aborted', 'measuring', 'backend exited with code 1']);
});

void test('a backend that never becomes ready fails the run at readiness', async () => {
  const { bus, messages } = recordingBus();
  const config = protocolConfig(slowStart.url, { backend: { readinessTimeoutSeconds: 0.4 } });
  await assert.rejects(
    runAgent(config, { bus, telemetry: createSimulatedGpu(), createSketch: createLatencySketch }),
    (e: unknown) => e instanceof BackendError && /503/.test(e.message),
  );
  assert.equal(messages.at(-1)?.kind, 'aborted');
});

void test('missing NVML fails at start with a TelemetryError and an aborted marker', async () => {
  const { bus, messages } = recordingBus();
  const telemetry = createNvmlTelemetry({ libraryPath: '/nonexistent/libnvidia-ml.so.1', visibility: {} });
  await assert.rejects(
    runAgent(protocolConfig(server.url), { bus, telemetry, createSketch: createLatencySketch }),
    TelemetryError,
  );
  assert.deepEqual(
    messages.map((m) => m.kind),
    ['aborted'],
  );
});
