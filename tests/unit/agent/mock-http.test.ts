// The mock server's own HTTP/1.1 (agent/mock-http.ts, ADR 0037), spoken to over raw sockets: what a
// client on the wire sees, byte for byte, not what a forgiving client library makes of it.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { StreamingClient, type StreamRequest } from '../../../agent/load/client.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';

/** A raw connection: write bytes, read until a predicate on everything read so far holds, or until close. */
class Raw {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  closed = false;
  private waiters: Array<() => void> = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      this.wake();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    this.socket.on('error', () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(s: string): void {
    this.socket.write(s);
  }

  /** Everything read so far, once `done` holds of it (or the connection closed). */
  async until(done: (text: string) => boolean): Promise<string> {
    const deadline = Date.now() + 5000;
    while (!done(this.buf.toString('latin1')) && !this.closed) {
      if (Date.now() > deadline) throw new Error(`timed out; read so far: ${this.buf.toString('latin1')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.buf.toString('latin1');
  }

  async untilClosed(): Promise<string> {
    return this.until(() => false);
  }

  take(): string {
    const s = this.buf.toString('latin1');
    this.buf = Buffer.alloc(0);
    return s;
  }
}

async function server(t: { after(fn: () => unknown): void }): Promise<MockServer> {
  const s = await startMockServer({ ttft: { meanMs: 2 }, itl: { meanMs: 1 } });
  t.after(() => s.close());
  return s;
}

const completion = (body: object, extra = ''): string => {
  const json = JSON.stringify(body);
  return (
    'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
    `${extra}content-length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
  );
};

/** The chunks of a chunked body (after the head), decoded; the terminator's presence. */
function chunks(response: string): { head: string; chunks: string[]; terminated: boolean; rest: string } {
  const end = response.indexOf('\r\n\r\n');
  const head = response.slice(0, end);
  let at = end + 4;
  const out: string[] = [];
  for (;;) {
    const eol = response.indexOf('\r\n', at);
    if (eol < 0) return { head, chunks: out, terminated: false, rest: response.slice(at) };
    const size = parseInt(response.slice(at, eol), 16);
    at = eol + 2;
    if (size === 0)
      return { head, chunks: out, terminated: response.startsWith('\r\n', at), rest: response.slice(at + 2) };
    out.push(response.slice(at, at + size));
    assert.equal(response.slice(at + size, at + size + 2), '\r\n', 'every chunk ends with CRLF');
    at += size + 2;
  }
}

const MALFORMED: Array<[string, string, number]> = [
  ['a request line with no version', 'GET /health\r\nhost: x\r\n\r\n', 400],
  ['a request line with an unknown version', 'GET /health HTTP/2.0\r\nhost: x\r\n\r\n', 400],
  ['a header line with no colon', 'GET /health HTTP/1.1\r\nhost: x\r\nbroken header\r\n\r\n', 400],
  ['a header name with a space before the colon', 'GET /health HTTP/1.1\r\nhost : x\r\n\r\n', 400],
  ['an HTTP/1.1 request with no Host', 'GET /health HTTP/1.1\r\n\r\n', 400],
  ['a non-numeric Content-Length', 'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1x\r\n\r\n', 400],
  [
    'two different Content-Lengths',
    'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}',
    400,
  ],
  [
    'both Content-Length and Transfer-Encoding',
    'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n{}',
    400,
  ],
  [
    'a malformed chunk size',
    'POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
    400,
  ],
  ['an unknown transfer coding', 'POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n', 501],
  ['a head over 16 KiB', `GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431],
];

for (const [what, bytes, status] of MALFORMED) {
  void test(`a request with ${what} is answered ${status} and its connection closed`, async (t) => {
    const s = await server(t);
    const raw = new Raw(s.port);
    raw.send(bytes);
    const text = await raw.untilClosed();
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), text);
    assert.match(text, /connection: close/);
    assert.ok(raw.closed, 'the connection is closed after the error');
    assert.equal(s.stats().requests, 0, 'nothing reached the engine');
  });
}

void test('a body that is not JSON is answered 400 and the connection stays usable', async (t) => {
  const s = await server(t);
  const raw = new Raw(s.port);
  raw.send('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc');
  const first = await raw.until((x) => x.includes('}'));
  assert.match(first, /^HTTP\/1\.1 400 /);
  assert.match(first, /not JSON/);
  raw.take();
  raw.send('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
  assert.match(await raw.until((x) => x.includes('"ok"')), /^HTTP\/1\.1 200 /);
  assert.equal(s.stats().connections, 1);
});

void test('keep-alive: many requests on one connection, pipelined ones answered in order', async (t) => {
  const s = await server(t);
  const raw = new Raw(s.port);
  // Three at once in one write (pipelined): a stream between two JSON answers.
  raw.send(
    'GET /health HTTP/1.1\r\nhost: x\r\n\r\n' +
      completion({ prompt: 'a b', max_tokens: 3, stream: true }) +
      'GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n',
  );
  const text = await raw.until((x) => x.includes('"object":"list"'));
  const health = text.indexOf('"status":"ok"');
  const done = text.indexOf('data: [DONE]');
  const models = text.indexOf('"object":"list"');
  assert.ok(health >= 0 && health < done && done < models, text);
  assert.ok(!raw.closed);
  raw.take();
  raw.send('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
  assert.match(await raw.until((x) => x.includes('"ok"')), /keep-alive: timeout=65/);
  assert.equal(s.stats().connections, 1, 'one TCP connection for all four requests');
});

void test(
  'a stream is SSE in chunked framing: one event per chunk, the first with the server stamps, ' + 'then the terminator',
  async (t) => {
    const s = await server(t);
    const raw = new Raw(s.port);
    raw.send(completion({ prompt: 'a b c', max_tokens: 5, stream: true, stream_options: { include_usage: true } }));
    const r = chunks(await raw.until((x) => x.endsWith('0\r\n\r\n')));
    assert.match(r.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.head, /\r\ncontent-type: text\/event-stream\r\n/);
    assert.match(r.head, /\r\ntransfer-encoding: chunked/);
    assert.match(r.head, /\r\nx-llem-simulated: true/);
    assert.match(r.head, /\r\nconnection: keep-alive/);
    assert.ok(r.terminated);
    assert.equal(r.rest, '', 'nothing after the terminator');
    assert.equal(r.chunks.length, 7, '5 tokens, usage, [DONE]');
    for (const c of r.chunks) assert.match(c, /^data: [^\n]+\n\n$/, 'each chunk is exactly one SSE event');
    const events = r.chunks.slice(0, 5).map((c) => JSON.parse(c.slice(6)) as Record<string, unknown>);
    const stamps = events[0]?.['llem_server'] as { received_ms: number; first_token_ms: number };
    assert.ok(stamps.first_token_ms >= stamps.received_ms && stamps.received_ms > 1.7e12, JSON.stringify(stamps));
    assert.deepEqual(
      events.map((e) => (e['choices'] as Array<{ text: string; finish_reason: string | null }>)[0]),
      [
        { index: 0, text: 'sim', finish_reason: null },
        { index: 0, text: ' tok', finish_reason: null },
        { index: 0, text: ' tok', finish_reason: null },
        { index: 0, text: ' tok', finish_reason: null },
        { index: 0, text: ' tok', finish_reason: 'length' },
      ],
    );
    assert.deepEqual((JSON.parse(r.chunks[5]?.slice(6) ?? '') as { usage: object }).usage, {
      prompt_tokens: 3,
      completion_tokens: 5,
      total_tokens: 8,
    });
    assert.equal(r.chunks[6], 'data: [DONE]\n\n');
  },
);

void test('an HTTP/1.0 client gets the stream unframed, ended by the connection closing', async (t) => {
  const s = await server(t);
  const raw = new Raw(s.port);
  const json = JSON.stringify({ prompt: 'a', max_tokens: 2, stream: true });
  raw.send(`POST /v1/completions HTTP/1.0\r\ncontent-length: ${json.length}\r\n\r\n${json}`);
  const text = await raw.untilClosed();
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(text, /transfer-encoding/);
  assert.match(text, /connection: close/);
  assert.match(text, /\r\n\r\ndata: \{[^\n]+\n\ndata: \{[^\n]+\n\ndata: \[DONE\]\n\n$/);
});

void test('a chunked request body and Expect: 100-continue are understood', async (t) => {
  const s = await server(t);
  const raw = new Raw(s.port);
  const json = JSON.stringify({ messages: [{ content: 'hi there' }], max_tokens: 2 });
  raw.send(
    'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n',
  );
  assert.match(await raw.until((x) => x.includes('\r\n\r\n')), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  raw.take();
  const half = Math.floor(json.length / 2);
  raw.send(`${half.toString(16)};ext=1\r\n${json.slice(0, half)}\r\n`);
  raw.send(`${(json.length - half).toString(16)}\r\n${json.slice(half)}\r\n0\r\ntrailer: x\r\n\r\n`);
  const text = await raw.until((x) => x.includes('"usage"') && x.endsWith('}'));
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { usage: { prompt_tokens: number } };
  assert.equal(body.usage.prompt_tokens, 2);
  assert.match(text, /content-length: \d+/);
});

void test('a client gone mid-stream is dropped from the engine, and the server keeps serving', async (t) => {
  const s = await startMockServer({ ttft: { meanMs: 1 }, itl: { meanMs: 5 } });
  t.after(() => s.close());
  const raw = new Raw(s.port);
  raw.send(completion({ prompt: 'a', max_tokens: 10_000, stream: true }));
  await raw.until((x) => x.includes('llem_server'));
  raw.socket.destroy();
  for (let i = 0; i < 100 && s.stats().inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.stats().inFlight, 0, 'the stream left the batch');
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
});

void test('the load client opens exactly one connection per stream slot and reuses it for every request', async (t) => {
  const s = await server(t);
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 5000 });
  t.after(() => client.close());
  const SLOTS = 8;
  assert.equal(await client.warm(SLOTS, '/health'), SLOTS);
  assert.equal(s.stats().connections, SLOTS, 'one per slot after warm-up');
  const req: StreamRequest = {
    api: 'completions',
    model: 'x',
    prompt: 'a b',
    promptTokens: 2,
    maxTokens: 4,
    ignoreEos: true,
    temperature: 0,
  };
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all(Array.from({ length: SLOTS }, () => client.send(req)));
    assert.ok(
      results.every((r) => r.ok && r.outputTokens === 4 && r.serverStamps !== undefined),
      JSON.stringify(results),
    );
  }
  assert.equal(s.stats().connections, SLOTS, 'still one per slot after 24 streamed requests');
});

void test(
  'prompt tokens are words as a split on whitespace would count them, ' + 'for prompts, prompt lists and messages',
  async (t) => {
    const s = await server(t);
    const usage = async (body: object, path = 'completions'): Promise<number> => {
      const res = await fetch(`${s.url}/v1/${path}`, {
        method: 'POST',
        body: JSON.stringify({ ...body, max_tokens: 1 }),
      });
      return ((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
    };
    const odd = '  a\tb\u00a0c\u3000d\ne\u2003f  ';
    assert.equal(await usage({ prompt: odd }), odd.trim().split(/\s+/).length);
    assert.equal(await usage({ prompt: '' }), 0);
    assert.equal(await usage({ prompt: ['a b', 'c'] }), 3);
    assert.equal(await usage({ messages: [{ content: 'x y' }, { content: ' z ' }, {}] }, 'chat/completions'), 3);
  },
);

void test(
  'a request pipelined behind a stream is stamped received when its bytes arrived, ' + 'not when its turn came',
  async (t) => {
    const s = await startMockServer({ ttft: { meanMs: 1 }, itl: { meanMs: 10 } });
    t.after(() => s.close());
    const raw = new Raw(s.port);
    raw.send(completion({ prompt: 'a', max_tokens: 10, stream: true }));
    await raw.until((x) => x.includes('llem_server'));
    const sentB = performance.timeOrigin + performance.now();
    raw.send(completion({ prompt: 'b', max_tokens: 2, stream: true }));
    const text = await raw.until((x) => (x.match(/llem_server/g) ?? []).length === 2 && x.endsWith('0\r\n\r\n'));
    const stamps = [...text.matchAll(/"received_ms":([\d.]+),"first_token_ms":([\d.]+)/g)].map((m) => Number(m[1]));
    const endA = text.indexOf('data: [DONE]');
    assert.ok(endA < text.lastIndexOf('llem_server'), 'B is answered after A ends');
    // B arrived while A was streaming (~90 ms more): its stamp is its own read, after it was sent.
    assert.ok((stamps[1] ?? 0) >= sentB - 1, `B received ${stamps[1]} before it was sent (${sentB})`);
    assert.ok(
      (stamps[1] ?? 0) < sentB + 50,
      `B received ${(stamps[1] ?? 0) - sentB} ms after sending: its turn, not its arrival`,
    );
  },
);
