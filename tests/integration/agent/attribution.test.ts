import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { AbortedMessage, SummaryMessage, TelemetryMessage } from '../../../api/protocol.ts';
import { GpuAttributionError, GpuNotExclusiveError, NvmlTimeoutError } from '../../../lib/errors.ts';
import { createLatencySketch } from '../../../lib/sketch/index.ts';
import { runAgent } from '../../../agent/runner.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';
import { createSimulatedGpu } from '../../../agent/telemetry/sampler.ts';
import type { SimulatedGpuOptions } from '../../../agent/telemetry/simulated.ts';
import { recordingBus } from './recording-bus.ts';
import { protocolConfig } from './protocol-helpers.ts';

let server: MockServer;
before(async () => {
  server = await startMockServer({ ttft: { meanMs: 10 }, itl: { meanMs: 5 } });
});
after(async () => {
  await server.close();
});

type Over = Parameters<typeof protocolConfig>[1];

async function run(
  gpu: SimulatedGpuOptions & { markTimeoutMs?: number },
  over: Over = {},
): Promise<{
  summary: SummaryMessage | undefined;
  messages: ReturnType<typeof recordingBus>['messages'];
  error: unknown;
}> {
  const { bus, messages } = recordingBus();
  const config = protocolConfig(server.url, over);
  let error: unknown = null;
  try {
    await runAgent(config, {
      bus,
      telemetry: createSimulatedGpu({ sampleIntervalMs: 20, batchIntervalMs: 50, ...gpu }),
      createSketch: createLatencySketch,
    });
  } catch (err) {
    error = err;
  }
  return { summary: messages.find((m): m is SummaryMessage => m.kind === 'summary'), messages, error };
}

void test('every mark is a counter step edge: aligned, its time known to a few ms, the period measured', async () => {
  const { messages, error } = await run({ counterTickMs: 100 });
  assert.equal(error, null);
  const marks = messages.filter((m): m is TelemetryMessage => m.kind === 'telemetry' && m.mark !== undefined);
  assert.deepEqual(
    marks.map((m) => m.mark),
    ['baselineStart', 'baselineEnd', 'windowStart', 'windowEnd'],
  );
  for (const m of marks) {
    const tick = m.samples[0]?.tick;
    assert.ok(tick?.aligned, `${m.mark} not aligned`);
    assert.ok(tick.waitedMs >= 0 && tick.waitedMs <= 250, `${m.mark} waited ${tick.waitedMs} ms`);
    assert.ok(tick.periodMs !== null && tick.periodMs > 60 && tick.periodMs < 200, `period ${tick.periodMs}`);
  }
});

void test('a foreign process on the GPU is a warning on the run when exclusivity is not required', async () => {
  const { summary, error } = await run(
    { processes: [{ pid: 1, usedMemoryMiB: 512 }] },
    { telemetry: { requireExclusiveGpu: false } },
  );
  assert.equal(error, null);
  assert.ok(
    summary?.warnings.some((w) => /another process used a measured GPU during the run: pid 1 .* 512 MiB/.test(w)),
    JSON.stringify(summary?.warnings),
  );
});

void test('under requireExclusiveGpu a foreign process fails the run before any load', async () => {
  const { messages, error } = await run({ processes: [{ pid: 1 }] }, { telemetry: { requireExclusiveGpu: true } });
  assert.ok(error instanceof GpuNotExclusiveError, String(error));
  assert.ok(!messages.some((m) => m.kind === 'sketch'), 'no measurement window ran');
  assert.match((messages.at(-1) as AbortedMessage).reason, /another process used a measured GPU during the run: pid 1/);
});

void test('our own processes on the GPU raise nothing', async () => {
  const { summary, error } = await run(
    { processes: [{ pid: process.pid }] },
    { telemetry: { requireExclusiveGpu: true } },
  );
  assert.equal(error, null);
  assert.ok(!summary?.warnings.some((w) => /another process/.test(w)));
});

void test('a window that ran thermally throttled carries a warning naming the reason', async () => {
  const { summary } = await run({ throttleReasons: 0x20 | 0x4 }, { workload: { requests: 60 } });
  assert.ok(
    summary?.warnings.some((w) => /throttled \(software power cap, software thermal slowdown\)/.test(w)),
    JSON.stringify(summary?.warnings),
  );
});

void test('a busy SM clock below minClockFraction of its maximum is a warning; at full clock there is none', async () => {
  const slow = await run({ smClockMhz: 990 }, { telemetry: { minClockFraction: 0.8 }, workload: { requests: 60 } });
  assert.ok(
    slow.summary?.warnings.some((w) => /SM clock below 80% of its 1980 MHz maximum/.test(w)),
    JSON.stringify(slow.summary?.warnings),
  );
  const fast = await run({}, { workload: { requests: 60 } });
  assert.ok(!fast.summary?.warnings.some((w) => /throttled|SM clock/.test(w)), JSON.stringify(fast.summary?.warnings));
});

void test('a hung NVML call at a mark aborts the run with the reason, within the mark timeout', async () => {
  const t0 = performance.now();
  const { messages, error } = await run(
    { stallAtMark: { mark: 'windowStart', ms: 20_000 }, markTimeoutMs: 500 },
    { workload: { requests: 100_000 } },
  );
  const took = performance.now() - t0;
  assert.ok(error instanceof NvmlTimeoutError, String(error));
  assert.ok(took < 8000, `took ${took} ms`);
  const aborted = messages.at(-1) as AbortedMessage;
  assert.equal(aborted.kind, 'aborted');
  assert.match(aborted.reason, /NVML did not answer within 0.5 s at windowStart/);
});

void test('fewer visible GPUs than gpusPerRun fails at start, before anything is measured', async () => {
  const { messages, error } = await run({ gpuCount: 1 }, { telemetry: { expectedGpus: 2 } });
  assert.ok(
    error instanceof GpuAttributionError && /1 GPU\(s\) visible .* placement.gpusPerRun is 2/.test(error.message),
    String(error),
  );
  assert.ok(!messages.some((m) => m.kind === 'telemetry' && m.mark !== undefined));
});
