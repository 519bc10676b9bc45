// Window accounting by arrival (issue #25 item 1): a steady-state window counts the tokens whose
// chunks arrived inside it, so the measured tokens/s is the server's own rate over the same interval
// (the mock server records when it wrote every token), at 1, 16 and 128 streams.
import assert from 'node:assert/strict';
import { after, before, describe, it, test } from 'node:test';
import type { RequestResult } from '../../../agent/load/client.ts';
import { RequestFactory, type Workload } from '../../../agent/load/generator.ts';
import { createLoadSender } from '../../../agent/load/threaded-client.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';
import { Publisher } from '../../../agent/publisher.ts';
import { runWindow, tokensWithin } from '../../../agent/window.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { createLatencySketch } from '../../../lib/sketch/index.ts';

const workload = (concurrency: number): Workload => ({
  api: 'completions',
  model: 'mock-simulated',
  mode: 'concurrency',
  concurrency,
  ratePerSecond: 1,
  inputTokens: 16,
  // Varied lengths, as in real traffic: with one fixed length the streams run in lockstep, the last
  // wave ends in one engine step, and a window closing there has no tail to get wrong.
  outputTokens: { distribution: 'uniform', min: 30, max: 70 },
  ignoreEos: true,
  temperature: 0,
  seed: 7,
});

void describe('steady-state window tokens/s against a deterministic server', () => {
  let server: MockServer;
  void before(async () => {
    server = await startMockServer({
      ttft: { meanMs: 20 },
      itl: { meanMs: 20 },
      maxBatch: 10_000,
      recordEmissions: true,
    });
  });
  void after(async () => {
    await server.close();
  });

  for (const streams of [1, 16, 128]) {
    void it(`is within 1% of the server's rate at ${streams} stream(s)`, async () => {
      const bus = new InProcessBus();
      const sender = createLoadSender({ baseUrl: server.url, timeoutMs: 30_000 }, 1);
      const key = { namespace: 'ns', experimentUid: 'u', runId: `r${streams}`, attempt: 0, replica: 0 };
      try {
        const w = await runWindow({
          publisher: new Publisher(bus, key, true),
          createSketch: createLatencySketch,
          sender,
          workload: workload(streams),
          factory: new RequestFactory(workload(streams)),
          requests: streams * 5,
          minDurationMs: 0,
          sliceMs: 500,
          steadyState: true,
          signal: new AbortController().signal,
          mark: async () => undefined,
        });
        assert.ok(w.steadyStateReached);
        const seconds = (w.windowEndPreciseMs - w.windowStartPreciseMs) / 1000;
        const serverTokens = server.tokensEmittedBetween(w.windowStartPreciseMs, w.windowEndPreciseMs) as number;
        const clientRate = w.totals.outputTokens / seconds;
        const serverRate = serverTokens / seconds;
        const error = Math.abs(clientRate - serverRate) / serverRate;
        assert.ok(serverTokens > 200, `${serverTokens} server tokens in a ${seconds.toFixed(2)} s window`);
        assert.ok(
          error <= 0.01,
          `client ${clientRate.toFixed(1)} tok/s vs server ${serverRate.toFixed(1)} tok/s (${(error * 100).toFixed(2)}% off)`,
        );
      } finally {
        sender.close();
        await bus.close();
      }
    });
  }
});

const result = (over: Partial<RequestResult>): RequestResult => ({
  ok: true,
  startMs: 100,
  endMs: 150,
  ttftMs: 10,
  itlMs: [10, 10, 10, 10],
  e2eMs: 50,
  tpotMs: 10,
  inputTokens: 8,
  outputTokens: 5,
  ...over,
});

void test('a request straddling the window counts only the tokens whose chunks arrived inside it', () => {
  // Chunks arrive at 110, 120, 130, 140, 150.
  assert.deepEqual(tokensWithin(result({}), 0, Infinity), { inputTokens: 8, outputTokens: 5 });
  assert.deepEqual(tokensWithin(result({}), 125, Infinity), { inputTokens: 0, outputTokens: 3 });
  assert.deepEqual(tokensWithin(result({}), 0, 125), { inputTokens: 8, outputTokens: 2 });
  // Usage says 10 tokens over 5 chunks: whole numbers, none lost, none invented.
  const spread = [0, 115, 125, 135, 145, 155].map((t, i, a) =>
    i === 0 ? 0 : tokensWithin(result({ outputTokens: 10 }), a[i - 1] as number, t).outputTokens,
  );
  assert.deepEqual(spread.slice(1), [2, 2, 2, 2, 2]);
  // No first token: its tokens (if the server reported any) and prompt count at the end.
  assert.deepEqual(tokensWithin(result({ ok: false, ttftMs: null, itlMs: [], outputTokens: 0 }), 140, 160), {
    inputTokens: 8,
    outputTokens: 0,
  });
});
