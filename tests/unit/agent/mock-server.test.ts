import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StreamingClient, type StreamRequest } from '../../../agent/load/client.ts';
import { MockEngine, STEP_SLICE } from '../../../agent/mock-engine.ts';
import { startMockServer } from '../../../agent/mock-server.ts';
import { optionsFromArgv } from '../../../cli/commands/mock-server.ts';

const req: StreamRequest = {
  api: 'completions',
  model: 'x',
  prompt: 'a b c',
  promptTokens: 3,
  maxTokens: 4,
  ignoreEos: true,
  temperature: 0,
};

void test('health and model list say the server is simulated', async (t) => {
  const s = await startMockServer({ readyAfterMs: 1500 });
  t.after(() => s.close());
  const early = await fetch(`${s.url}/health`);
  assert.equal(early.status, 503);
  await early.text();
  let health = early;
  for (let i = 0; i < 100 && health.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    health = await fetch(`${s.url}/health`);
  }
  assert.equal(health.status, 200);
  assert.equal(health.headers.get('x-llem-simulated'), 'true');
  assert.deepEqual(await health.json(), { status: 'ok', simulated: true });
  const models = (await (await fetch(`${s.url}/v1/models`)).json()) as {
    data: Array<{ id: string; owned_by: string }>;
  };
  assert.equal(models.data[0]?.id, 'mock-simulated');
  assert.match(models.data[0]?.owned_by ?? '', /simulated/);
});

void test('requests beyond the max batch queue, so their TTFT grows', async (t) => {
  const s = await startMockServer({ ttft: { meanMs: 30 }, itl: { meanMs: 10 }, maxBatch: 2 });
  t.after(() => s.close());
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 5000 });
  const results = await Promise.all(Array.from({ length: 4 }, () => client.send(req)));
  client.close();
  const ttfts = results.map((r) => r.ttftMs ?? 0).sort((a, b) => a - b);
  assert.ok(results.every((r) => r.ok && r.outputTokens === 4));
  // The first two fill the batch; the others wait for a slot (a whole generation) before prefill.
  assert.ok((ttfts[3] ?? 0) > (ttfts[0] ?? 0) + 40, ttfts.join(', '));
});

void test('a non-streaming request gets the whole completion with usage', async (t) => {
  const s = await startMockServer({ ttft: { meanMs: 5 }, itl: { meanMs: 1 } });
  t.after(() => s.close());
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ messages: [{ content: 'hi there' }], max_tokens: 3 }),
  });
  const body = (await res.json()) as {
    usage: { prompt_tokens: number; completion_tokens: number };
    system_fingerprint: string;
  };
  assert.deepEqual([body.usage.prompt_tokens, body.usage.completion_tokens], [2, 3]);
  assert.match(body.system_fingerprint, /simulated/);
});

void test('injected faults cut streams and fail requests on schedule', async (t) => {
  const s = await startMockServer({
    ttft: { meanMs: 1 },
    itl: { meanMs: 1 },
    faults: { cutEveryNth: 2, cutAfterTokens: 1, errorEveryNth: 3 },
  });
  t.after(() => s.close());
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 5000 });
  const classes: string[] = [];
  for (let i = 0; i < 6; i++) classes.push((await client.send(req)).errorClass ?? 'ok');
  client.close();
  assert.deepEqual(classes, ['ok', 'stream_cut', 'http_5xx', 'stream_cut', 'ok', 'http_5xx']);
});

void test('mock-server flags are parsed and checked', () => {
  const o = optionsFromArgv(['--port', '0', '--ttft-ms', '12', '--itl-std-ms', '2', '--max-batch', '8']);
  assert.ok(o !== 'help');
  assert.equal(o.ttft?.meanMs, 12);
  assert.equal(o.itl?.stdMs, 2);
  assert.equal(o.maxBatch, 8);
  assert.throws(() => optionsFromArgv(['--port', 'abc']), /--port: must be a non-negative number/);
  assert.throws(() => optionsFromArgv(['--port', '99999']), /--port: must be a whole number from 0 to 65535/);
  assert.throws(() => optionsFromArgv(['--port', '1.5']), /--port: must be a whole number/);
  assert.throws(() => optionsFromArgv(['--bogus']), /Unknown option/);
});

void test('an engine step over many streams lets the event loop through, so requests arriving mid-step are read', async () => {
  // 200 streams whose every write costs 0.1 ms: 20 ms per step written in one go.
  const engine = new MockEngine({ ttft: { meanMs: 1 }, itl: { meanMs: 1 }, maxBatch: 1000, seed: 1 });
  const spin = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // the cost of one socket write under load
    }
  };
  let written = 0;
  for (let i = 0; i < 200; i++) {
    engine.submit({
      tokensLeft: 4,
      emitted: 0,
      token: () => {
        spin(0.1);
        written++;
        return true;
      },
      finish: () => undefined,
    });
  }
  // The first tokens (prefill timers due together) are one burst; the steps after them are watched
  // from the check phase, once per turn of the loop: how many tokens were written between two turns.
  // (Counted in tokens, not milliseconds, so a busy machine that deschedules the test changes nothing.)
  while (written < 200) await new Promise((r) => setImmediate(r));
  let mostPerTurn = 0;
  while (written < 800) {
    const before = written;
    await new Promise((r) => setImmediate(r));
    mostPerTurn = Math.max(mostPerTurn, written - before);
  }
  engine.stop();
  assert.equal(written, 800, 'every stream got all its tokens');
  assert.ok(mostPerTurn <= STEP_SLICE, `${mostPerTurn} tokens written in one turn of the loop (a step: 200)`);
});

void test("engine steps start one ITL apart however long their writes take, so the mock's rate holds with many streams", async () => {
  const engine = new MockEngine({ ttft: { meanMs: 1 }, itl: { meanMs: 30 }, maxBatch: 1000, seed: 1 });
  const STREAMS = 40;
  const stepStarts: number[] = [];
  const stepEnds: number[] = [];
  const spin = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // a slow socket write
    }
  };
  for (let i = 0; i < STREAMS; i++) {
    engine.submit({
      tokensLeft: 12,
      emitted: 0,
      token: (index) => {
        // Steps write the streams in order: the first stream's token starts one, the last's ends it.
        if (i === 0 && index > 0) stepStarts.push(performance.now());
        spin(0.45); // 40 streams x 0.45 ms: every step takes ~18 ms to write
        if (i === STREAMS - 1 && index > 0) stepEnds.push(performance.now());
        return true;
      },
      finish: () => undefined,
    });
  }
  while (stepStarts.length < 11) await new Promise((r) => setTimeout(r, 5));
  engine.stop();
  // From the end of one step's writes to the next step's start. Timed from the end of the writes (the
  // old rule) that wait is a whole ITL, never less; timed from the step's start it is ITL - ~18 ms,
  // plus however late the timer fires on a busy machine (so the least of ten is taken).
  const waits = stepStarts.slice(1).map((t, i) => t - (stepEnds[i] as number));
  const periods = stepStarts.slice(1).map((t, i) => t - (stepStarts[i] as number));
  assert.ok(Math.min(...waits) < 27, `waits after a step's writes: ${waits.map((w) => w.toFixed(1)).join(', ')} ms`);
  // Never much faster than one ITL either: a timer may fire a millisecond or two early against performance.now(), and
  // the first stream's write lags its step's start by a varying amount, so one period can read ~28.5 ms.
  assert.ok(Math.min(...periods) >= 27, `step periods ${periods.map((p) => p.toFixed(1)).join(', ')} ms (ITL 30)`);
});

void test("the mock's first chunk gives the client the server's own stamps, on the client's wall clock", async (t) => {
  const s = await startMockServer({ ttft: { meanMs: 30 }, itl: { meanMs: 5 } });
  t.after(() => s.close());
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 5000 });
  const r = await client.send(req);
  client.close();
  const stamps = r.serverStamps;
  assert.ok(stamps !== undefined, 'the result carries the server stamps');
  assert.equal(stamps.firstTokenMs - stamps.receivedMs, r.serverTtftMs);
  // Same process here, so one clock: received after the send, first token written before it was read.
  const sentWallMs = performance.timeOrigin + r.startMs;
  assert.ok(stamps.receivedMs >= sentWallMs, 'received after sent');
  assert.ok(stamps.firstTokenMs <= sentWallMs + (r.ttftMs ?? 0), 'written before read');
  assert.ok(stamps.firstTokenMs - stamps.receivedMs >= 29, `server TTFT ${r.serverTtftMs} ms (configured 30)`);
});
