import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { StreamingClient, type StreamRequest } from '../../../agent/load/client.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';

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
  server = await startMockServer({
    ttft: { meanMs: 40 },
    itl: { meanMs: 10 },
    faults: { cutEveryNth: 1_000_003, errorEveryNth: 1_000_003 },
  });
});
after(async () => server.close());

void test('a streamed completion reports TTFT, one gap per later token, E2E, TPOT and usage tokens', async () => {
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 5000 });
  const r = await client.send(req());
  client.close();
  assert.equal(r.ok, true);
  assert.ok((r.ttftMs ?? 0) >= 39, `ttft ${r.ttftMs}`);
  assert.equal(r.itlMs.length, 5);
  assert.ok(r.itlMs.every((g) => g >= 0));
  assert.ok(r.e2eMs >= (r.ttftMs ?? Infinity));
  assert.equal(r.outputTokens, 6);
  assert.equal(r.inputTokens, 4);
  assert.ok(r.tpotMs !== null && Math.abs(r.tpotMs - (r.e2eMs - (r.ttftMs ?? 0)) / 5) < 1e-9);
});

void test('chat completions stream through delta content', async () => {
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 5000 });
  const r = await client.send(req({ api: 'chat', maxTokens: 3 }));
  client.close();
  assert.equal(r.ok, true);
  assert.equal(r.outputTokens, 3);
  assert.equal(r.itlMs.length, 2);
});

/** A server that writes `body` raw and then does `then` to the socket. */
async function rawServer(
  body: string,
  then: 'end' | 'destroy',
  status = 200,
): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer((_q, res) => {
    res.writeHead(status, { 'content-type': 'text/event-stream' });
    res.write(body);
    if (then === 'end') res.end();
    else setTimeout(() => res.destroy(), 20);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

const chunk = (text: string): string => `data: {"choices":[{"index":0,"text":"${text}","finish_reason":null}]}\n\n`;

void test('a connection cut mid-response is a stream_cut failure that keeps the tokens seen', async () => {
  const s = await rawServer(chunk('a') + chunk(' b'), 'destroy');
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 5000 });
  const r = await client.send(req());
  client.close();
  await s.close();
  assert.equal(r.ok, false);
  assert.equal(r.errorClass, 'stream_cut');
  assert.equal(r.outputTokens, 2);
});

void test('a stream that ends cleanly without [DONE] or finish_reason is a stream_cut', async () => {
  const s = await rawServer(chunk('a'), 'end');
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 5000 });
  const r = await client.send(req());
  client.close();
  await s.close();
  assert.equal(r.errorClass, 'stream_cut');
});

void test('HTTP errors, refused connections, timeouts and garbage are classified', async (t) => {
  const s500 = await rawServer('oops', 'end', 503);
  const s400 = await rawServer('bad', 'end', 400);
  const garbage = await rawServer('data: {not json\n\n', 'destroy');
  const silent = await rawServer(': keep-alive\n\n', 'destroy');
  t.after(() => Promise.all([s500.close(), s400.close(), garbage.close(), silent.close()]));
  const send = async (url: string, timeoutMs = 5000): Promise<string | undefined> => {
    const c = new StreamingClient({ baseUrl: url, timeoutMs });
    const r = await c.send(req());
    c.close();
    return r.errorClass;
  };
  assert.equal(await send(s500.url), 'http_5xx');
  assert.equal(await send(s400.url), 'http_4xx');
  assert.equal(await send(garbage.url), 'bad_response');
  assert.equal(await send('http://127.0.0.1:1'), 'connect');
  const slow = http.createServer(() => undefined);
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  t.after(() => {
    slow.closeAllConnections();
    slow.close();
  });
  assert.equal(await send(`http://127.0.0.1:${(slow.address() as AddressInfo).port}`, 100), 'timeout');
});

void test('aborting the load cancels a request in flight', async () => {
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 5000 });
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  const r = await client.send(req({ maxTokens: 500 }), ac.signal);
  client.close();
  assert.equal(r.errorClass, 'cancelled');
});

void test('the request body carries top_p only when nucleus sampling is on', () => {
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 5000 });
  assert.equal((JSON.parse(client.body(req())) as Record<string, unknown>)['top_p'], undefined);
  assert.equal((JSON.parse(client.body(req({ topP: 1 }))) as Record<string, unknown>)['top_p'], undefined);
  assert.equal(
    (JSON.parse(client.body(req({ topP: 0.9, temperature: 0.7 }))) as Record<string, unknown>)['top_p'],
    0.9,
  );
  client.close();
});

void test('many requests on one stop signal share one listener, and aborting cancels every one of them', async () => {
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 5000 });
  const ac = new AbortController();
  const inFlight = Array.from({ length: 50 }, () => client.send(req({ maxTokens: 500 }), ac.signal));
  // EventTarget checks every listener on each add and remove: one per request made that O(streams).
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  await new Promise((r) => setTimeout(r, 20));
  ac.abort();
  const results = await Promise.all(inFlight);
  client.close();
  assert.deepEqual(new Set(results.map((r) => r.errorClass)), new Set(['cancelled']));
  const late = new StreamingClient({ baseUrl: server.url, timeoutMs: 5000 });
  const done = await late.send(req(), ac.signal);
  late.close();
  assert.equal(done.errorClass, 'cancelled', 'a request sent on a signal already aborted is cancelled at once');
});
