// The load client's read path allocates nothing per read (issue #25: young-generation GC pauses hold
// every first token the kernel has ready, and their length is what survives, their count what is
// allocated): reads queue into a reused arena, SSE events are read by range, ITL gaps live in a
// Float64Array; the mock's emission log keeps a bench's reference count without one growing heap array.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { StreamingClient, type StreamRequest } from '../../../agent/load/client.ts';
import { SseParser } from '../../../agent/load/sse.ts';
import { EmissionLog } from '../../../agent/mock-engine.ts';
import { startMockServer } from '../../../agent/mock-server.ts';

const req = (maxTokens: number): StreamRequest => ({
  api: 'completions',
  model: 'm',
  prompt: 'p',
  promptTokens: 1,
  maxTokens,
  ignoreEos: true,
  temperature: 0,
});

const event = (text: string, finish: string | null = null): string =>
  `data: {"choices":[{"index":0,"text":"${text}","finish_reason":${finish === null ? 'null' : `"${finish}"`}}]}\n\n`;

/** Frame one SSE piece as an HTTP chunk. */
const chunk = (s: string): Buffer => Buffer.from(`${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`);

/** A raw TCP server streaming `tokens` SSE events, `gapMs` apart (each its own read), then [DONE]. */
async function streamingServer(tokens: number, gapMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.once('data', () => {
      void (async (): Promise<void> => {
        s.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
        for (let i = 0; i < tokens; i++) {
          s.write(chunk(event(i === 0 ? 'a' : ' b', i === tokens - 1 ? 'length' : null)));
          await new Promise((r) => setTimeout(r, gapMs));
        }
        s.write(Buffer.concat([chunk('data: [DONE]\n\n'), Buffer.from('0\r\n\r\n')]));
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

void test('a streamed response is read without allocating a buffer per socket read', async () => {
  const tokens = 60;
  const server = await streamingServer(tokens, 3);
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 10_000 });
  const original = Buffer.allocUnsafe;
  let calls = 0;
  Buffer.allocUnsafe = ((n: number) => {
    calls++;
    return original(n);
  }) as typeof Buffer.allocUnsafe;
  try {
    const r = await client.send(req(tokens));
    assert.equal(r.ok, true, r.error);
    assert.equal(r.outputTokens, tokens);
  } finally {
    Buffer.allocUnsafe = original;
    client.close();
    await server.close();
  }
  // The old read path copied every read into a Buffer of its own (one call per read, ~60 here).
  assert.ok(calls < tokens / 4, `Buffer.allocUnsafe called ${calls} times for ${tokens} reads`);
});

void test('ITL gaps come back as a Float64Array, one per later token, even past max_tokens', async () => {
  const tokens = 40;
  const server = await streamingServer(tokens, 1);
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 10_000 });
  try {
    // The server sends more chunks than were asked for: the gap store grows and keeps every gap.
    const r = await client.send(req(3));
    assert.equal(r.ok, true, r.error);
    assert.ok(r.itlMs instanceof Float64Array, 'gaps off the V8 heap');
    assert.equal(r.itlMs.length, tokens - 1);
    assert.ok([...r.itlMs].every((g) => g >= 0 && Number.isFinite(g)));
    const span = [...r.itlMs].reduce((a, b) => a + b, 0);
    assert.ok(r.ttftMs! + span <= r.e2eMs + 1e-6, 'first token plus the gaps ends by [DONE]');
    assert.ok(span > (tokens - 1) * 0.5, `gaps span the stream (${span} ms)`);
  } finally {
    client.close();
    await server.close();
  }
});

void test('the SSE parser reads only its range of a larger buffer, whose other bytes hold events too', () => {
  const before = event('outside-before');
  const inside = event('in1') + event('in2') + ': a comment\n\n';
  const after = event('outside-after');
  const buf = Buffer.from(before + inside + after);
  const from = Buffer.byteLength(before);
  const to = from + Buffer.byteLength(inside);
  const got: string[] = [];
  const parser = new SseParser();
  parser.pushBytes(buf, (b, f, t) => got.push(b.toString('utf8', f, t)), from, to);
  assert.deepEqual(
    got.map((g) => (JSON.parse(g) as { choices: Array<{ text: string }> }).choices[0]?.text),
    ['in1', 'in2'],
  );
  // A range that ends mid-event keeps the rest for the next push, copied out of the (reused) buffer.
  const half = from + 10;
  const split: string[] = [];
  const p2 = new SseParser();
  p2.pushBytes(buf, (b, f, t) => split.push(b.toString('utf8', f, t)), from, half);
  buf.fill(0x78, 0, half); // the caller reuses its buffer
  p2.pushBytes(Buffer.from(inside.slice(10)), (b, f, t) => split.push(b.toString('utf8', f, t)));
  assert.equal(split.length, 2);
  assert.equal((JSON.parse(split[0] as string) as { choices: Array<{ text: string }> }).choices[0]?.text, 'in1');
});

void test('the emission log counts the times below any bound as a sorted array does, across its blocks', () => {
  const log = new EmissionLog();
  const times: number[] = [];
  let t = 1_700_000_000_000;
  for (let i = 0; i < 150_000; i++) {
    t += i % 7 === 0 ? 0 : 0.013 * (i % 5); // ties and steps
    times.push(t);
    log.push(t);
  }
  assert.equal(log.length, times.length);
  const naive = (x: number): number => times.filter((v) => v < x).length;
  for (const x of [times[0]! - 1, times[0]!, times[65_535]!, times[65_536]!, times[100_000]! + 0.001, t, t + 1]) {
    assert.equal(log.countBefore(x), naive(x), `below ${x}`);
  }
  assert.equal(new EmissionLog().countBefore(5), 0, 'an empty log counts nothing');
});

void test('the mock writes each middle token of a stream as one socket write of its whole HTTP chunk', async () => {
  const server = await startMockServer({ ttft: { meanMs: 5 }, itl: { meanMs: 2 } });
  const client = new StreamingClient({ baseUrl: server.url, timeoutMs: 10_000 });
  const original = net.Socket.prototype.write;
  let writes = 0;
  net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof original>): boolean {
    writes++;
    return original.apply(this, args);
  } as typeof original;
  const tokens = 40;
  try {
    const r = await client.send(req(tokens));
    assert.equal(r.ok, true, r.error);
    assert.equal(r.outputTokens, tokens);
    assert.equal(r.itlMs.length, tokens - 1, 'every token arrived as its own well-framed chunk');
  } finally {
    net.Socket.prototype.write = original;
    client.close();
    await server.close();
  }
  // Through res.write each token was four socket writes (size line, CRLF, data, CRLF): ~160 here; now one
  // per middle token, plus the head, first and last tokens, usage and end.
  assert.ok(writes < tokens * 2, `${writes} socket writes for ${tokens} tokens`);
});
