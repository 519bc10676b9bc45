import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { StreamRequest } from '../../../agent/load/client.ts';
import { RequestFactory, runLoad, type Workload } from '../../../agent/load/generator.ts';
import {
  clientThreadsFor,
  createLoadSender,
  InlineClient,
  peakStreams,
  ThreadedClient,
} from '../../../agent/load/threaded-client.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';
import { InvalidInputError } from '../../../lib/errors.ts';

const req = (over: Partial<StreamRequest> = {}): StreamRequest => ({
  api: 'completions',
  model: 'mock-simulated',
  prompt: 'one two three four',
  promptTokens: 4,
  maxTokens: 6,
  ignoreEos: true,
  temperature: 0,
  ...over,
});

let server: MockServer;
before(async () => {
  server = await startMockServer({ ttft: { meanMs: 40 }, itl: { meanMs: 10 } });
});
after(async () => server.close());

void test('threaded client: results carry the main thread clock, first-token hooks fire', async () => {
  const client = new ThreadedClient({ baseUrl: server.url, timeoutMs: 5000 }, 2);
  try {
    assert.equal(client.threads, 2);
    let firsts = 0;
    const before = performance.now();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => client.send(req(), undefined, { onFirstToken: () => firsts++ })),
    );
    const afterMs = performance.now();
    assert.equal(firsts, 8);
    for (const r of results) {
      assert.equal(r.ok, true, r.error);
      assert.equal(r.outputTokens, 6);
      assert.equal(r.itlMs.length, 5);
      // Worker threads have their own time origin; the client moves stamps onto this thread's.
      assert.ok(
        r.startMs >= before - 1 && r.endMs <= afterMs + 1,
        `start ${r.startMs} end ${r.endMs} within [${before}, ${afterMs}]`,
      );
      assert.ok((r.ttftMs ?? 0) >= 39, `ttft ${r.ttftMs}`);
    }
    const loops = await client.loopDelayP99Ms(true);
    assert.equal(loops.length, 2);
    assert.ok(
      loops.every((x) => Number.isFinite(x) && x >= 0),
      String(loops),
    );
  } finally {
    client.close();
  }
});

void test('threaded client: the stop signal cancels streams in the threads', async () => {
  const client = new ThreadedClient({ baseUrl: server.url, timeoutMs: 5000 }, 2);
  try {
    const stop = new AbortController();
    const pending = Promise.all(Array.from({ length: 4 }, () => client.send(req({ maxTokens: 500 }), stop.signal)));
    setTimeout(() => stop.abort(), 100);
    const results = await pending;
    assert.deepEqual(
      results.map((r) => r.errorClass),
      ['cancelled', 'cancelled', 'cancelled', 'cancelled'],
    );
    assert.ok(results.every((r) => r.e2eMs < 2000));
    // An already-aborted signal cancels at once.
    const r = await client.send(req({ maxTokens: 500 }), stop.signal);
    assert.equal(r.errorClass, 'cancelled');
  } finally {
    client.close();
  }
});

void test('threaded client: a thread that dies fails its requests with a clear error, the others carry on', async () => {
  const client = new ThreadedClient({ baseUrl: server.url, timeoutMs: 5000 }, 2);
  try {
    const inFlight = [client.send(req({ maxTokens: 200 })), client.send(req({ maxTokens: 200 }))];
    const pool = (client as unknown as { pool: Array<{ worker: { terminate(): Promise<number> } }> }).pool;
    await pool[0]?.worker.terminate();
    const settled = await Promise.allSettled(inFlight);
    const failed = settled.filter((s) => s.status === 'rejected');
    assert.equal(failed.length, 1);
    assert.match(String((failed[0] as PromiseRejectedResult).reason), /load client thread stopped/);
    const r = await client.send(req());
    assert.equal(r.ok, true, 'the live thread takes new requests');
  } finally {
    client.close();
  }
  await assert.rejects(client.send(req()), /closed/);
});

void test('threaded client: closing with requests in flight hands them back as cancelled', async () => {
  const client = new ThreadedClient({ baseUrl: server.url, timeoutMs: 5000 }, 2);
  const inFlight = Promise.all([client.send(req({ maxTokens: 500 })), client.send(req({ maxTokens: 500 }))]);
  await new Promise((r) => setTimeout(r, 100));
  client.close();
  const results = await inFlight;
  assert.deepEqual(
    results.map((r) => [r.ok, r.errorClass]),
    [
      [false, 'cancelled'],
      [false, 'cancelled'],
    ],
  );
});

void test('the load generator runs unchanged over threads (closed loop, saturation hook)', async () => {
  const client = createLoadSender({ baseUrl: server.url, timeoutMs: 5000 }, 3);
  try {
    const w: Workload = {
      api: 'completions',
      model: 'mock-simulated',
      mode: 'concurrency',
      concurrency: 12,
      ratePerSecond: 1,
      inputTokens: 16,
      outputTokens: 5,
      ignoreEos: true,
      temperature: 0,
      seed: 7,
    };
    let saturated = 0;
    const results: boolean[] = [];
    const stats = await runLoad(client, new RequestFactory(w), w, {
      requests: 36,
      signal: new AbortController().signal,
      onResult: (r) => results.push(r.ok),
      onSaturated: () => saturated++,
    });
    assert.equal(stats.completed, 36);
    assert.equal(results.filter(Boolean).length, 36);
    assert.equal(saturated, 1);
  } finally {
    client.close();
  }
});

void test('thread count: one per 128 streams, capped by cores less two and 8; LLEM_CLIENT_THREADS overrides; bad values are input errors', () => {
  assert.equal(clientThreadsFor(1, 16), 1);
  assert.equal(clientThreadsFor(128, 16), 1);
  assert.equal(clientThreadsFor(600, 16), 5);
  assert.equal(clientThreadsFor(5000, 64), 8);
  assert.equal(clientThreadsFor(600, 2), 1);
  assert.equal(clientThreadsFor(600, 16, '0'), 0);
  assert.equal(clientThreadsFor(1, 16, '3'), 3);
  for (const bad of ['x', '-1', '1.5', '65']) {
    assert.throws(
      () => clientThreadsFor(10, 16, bad),
      (e: unknown) => e instanceof InvalidInputError && e.exitCode === 2 && /LLEM_CLIENT_THREADS/.test(e.message),
    );
  }
  assert.ok(createLoadSender({ baseUrl: server.url, timeoutMs: 1000 }, 1) instanceof InlineClient);
  assert.equal(peakStreams({ mode: 'concurrency', concurrency: 64, ratePerSecond: 1 }, 1000), 64);
  assert.equal(peakStreams({ mode: 'offline', concurrency: 1, ratePerSecond: 1 }, 300), 300);
  assert.equal(peakStreams({ mode: 'rate', concurrency: 1, ratePerSecond: 20 }, 1000), 600);
});

void test("threaded client: warming opens each thread's share of connections; a dead thread answers instead of hanging", async () => {
  const own = await startMockServer({ ttft: { meanMs: 5 }, itl: { meanMs: 2 } });
  const client = new ThreadedClient({ baseUrl: own.url, timeoutMs: 5000 }, 2);
  try {
    assert.equal(await client.warm(5, '/health'), 5);
    assert.equal(own.stats().connections, 5, 'one connection per slot, over both threads');
    const pool = (client as unknown as { pool: Array<{ worker: { terminate(): Promise<number> } }> }).pool;
    const warming = client.warm(40, '/health');
    await pool[1]?.worker.terminate();
    const warmed = await warming;
    assert.ok(
      warmed >= 20 && warmed <= 40,
      `${warmed} warmed: at least the live thread's share, and the call returned`,
    );
    assert.ok(Number.isNaN((await client.loopDelayP99Ms())[1]), 'the dead thread reports no loop delay');
  } finally {
    client.close();
    await own.close();
  }
});
