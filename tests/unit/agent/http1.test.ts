// The load client's own HTTP/1.1 transport (agent/load/http1.ts) against raw TCP servers that write
// exactly the bytes under test, split at every boundary: chunked and Content-Length framing, keep-alive
// reuse, servers that close, and the time each read reached JS.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Http1Pool } from '../../../agent/load/http1.ts';

/** Reads ready in one poll whose parse takes ~1 ms each. */
const BATCH = 48;

interface RawServer {
  url: URL;
  /** TCP connections accepted so far. */
  accepted: () => number;
  close: () => Promise<void>;
}

/** A server that answers every request (each head ending in a blank line) with `answer(n)`, `gapMs` between parts. */
async function rawServer(
  answer: (n: number) => Buffer[],
  after: 'keep' | 'close' = 'keep',
  gapMs = 2,
): Promise<RawServer> {
  let accepted = 0;
  let served = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let pending = '';
    s.on('data', (b) => {
      pending += b.toString('latin1');
      while (pending.includes('\r\n\r\n')) {
        const end = pending.indexOf('\r\n\r\n') + 4;
        const length = /content-length: (\d+)/i.exec(pending.slice(0, end));
        pending = pending.slice(end + Number(length?.[1] ?? 0));
        void (async (): Promise<void> => {
          for (const part of answer(++served)) {
            s.write(part);
            await new Promise((r) => setTimeout(r, gapMs));
          }
          if (after === 'close') s.end();
        })();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Got {
  status: number;
  body: string;
  arrivals: number[];
  outcome: string;
}

function exchange(pool: Http1Pool, path = '/x'): Promise<Got> {
  return new Promise((resolve) => {
    const got: Got = { status: 0, body: '', arrivals: [], outcome: '' };
    pool.request(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n`, '{}', {
      onHead: (s) => void (got.status = s),
      onBody: (b, from, to, at) => {
        got.body += b.toString('latin1', from, to);
        got.arrivals.push(at);
      },
      onEnd: () => resolve({ ...got, outcome: 'end' }),
      onError: (code, afterHead) => resolve({ ...got, outcome: `error:${afterHead ? 'afterHead' : 'beforeHead'}` }),
    });
  });
}

/** Every way of cutting `bytes` in two, plus one byte at a time. */
function splits(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes], [...bytes].map((b) => Buffer.from([b]))];
  for (let i = 1; i < bytes.length; i += 3) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return out;
}

const CHUNKED = Buffer.from(
  'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n' +
    '5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n',
);

void test('a chunked response split at any byte is framed whole, with its extensions and trailers', async () => {
  for (const parts of splits(CHUNKED)) {
    const s = await rawServer(() => parts);
    const pool = new Http1Pool(s.url);
    const got = await exchange(pool);
    pool.close();
    await s.close();
    assert.deepEqual([got.status, got.body, got.outcome], [200, 'hello, world', 'end'], `${parts.length} parts`);
  }
});

void test('each body read carries the time it reached JS, in order, before the next read', async () => {
  const parts = [
    Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'),
    Buffer.from('1\r\na\r\n'),
    Buffer.from('1\r\nb\r\n'),
    Buffer.from('0\r\n\r\n'),
  ];
  const s = await rawServer(() => parts, 'keep', 25);
  const pool = new Http1Pool(s.url);
  const before = performance.now();
  const got = await exchange(pool);
  pool.close();
  await s.close();
  assert.equal(got.arrivals.length, 2);
  assert.ok((got.arrivals[0] as number) > before);
  const gap = (got.arrivals[1] as number) - (got.arrivals[0] as number);
  assert.ok(gap >= 20, `the server waits 25 ms between writes; the reads were timed ${gap.toFixed(1)} ms apart`);
});

void test('a keep-alive connection is reused for the next request; Connection: close is not', async () => {
  const ok = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const s = await rawServer(() => [ok]);
  const pool = new Http1Pool(s.url);
  for (let i = 0; i < 3; i++) assert.equal((await exchange(pool)).body, 'ok');
  assert.equal(s.accepted(), 1, 'three requests over one connection');
  pool.close();
  await s.close();

  const closing = await rawServer(() => [
    Buffer.from('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok'),
  ]);
  const pool2 = new Http1Pool(closing.url);
  for (let i = 0; i < 2; i++) assert.equal((await exchange(pool2)).outcome, 'end');
  assert.equal(closing.accepted(), 2, 'a connection the server said it will close is never sent another request');
  pool2.close();
  await closing.close();
});

void test('a body without length or chunking ends when the server closes, and an interim 100 is skipped', async () => {
  const s = await rawServer(
    () => [Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nall of it'), Buffer.from(' and more')],
    'close',
  );
  const pool = new Http1Pool(s.url);
  const got = await exchange(pool);
  pool.close();
  await s.close();
  assert.deepEqual([got.status, got.body, got.outcome], [200, 'all of it and more', 'end']);
});

void test('a connection closed before the head or mid-body is an error that says which', async () => {
  const none = await rawServer(() => [], 'close');
  const pool = new Http1Pool(none.url);
  assert.equal((await exchange(pool)).outcome, 'error:beforeHead');
  pool.close();
  await none.close();

  const cut = await rawServer(() => [Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc')], 'close');
  const pool2 = new Http1Pool(cut.url);
  const got = await exchange(pool2);
  assert.deepEqual([got.body, got.outcome], ['abc', 'error:afterHead']);
  pool2.close();
  await cut.close();

  const endless = await rawServer(() => [Buffer.from('HTTP/1.1 200 OK\r\n'), Buffer.alloc(70 * 1024, 'x')]);
  const pool4 = new Http1Pool(endless.url);
  assert.equal((await exchange(pool4)).outcome, 'error:beforeHead', 'a head that never ends');
  pool4.close();
  await endless.close();

  const garbled = await rawServer(() => [Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n')]);
  const pool3 = new Http1Pool(garbled.url);
  assert.equal((await exchange(pool3)).outcome, 'error:afterHead', 'a chunk size that is not hex');
  pool3.close();
  await garbled.close();
});

void test("an idle connection is retired a second before the server's Keep-Alive timeout", async () => {
  const ok = Buffer.from('HTTP/1.1 200 OK\r\nkeep-alive: timeout=2\r\ncontent-length: 2\r\n\r\nok');
  const s = await rawServer(() => [ok]);
  const pool = new Http1Pool(s.url);
  await exchange(pool);
  assert.equal(pool.connections, 1);
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal(pool.connections, 0, 'retired after 1 s idle, before the server would close it');
  await exchange(pool);
  assert.equal(s.accepted(), 2);
  pool.close();
  await s.close();
});

void test('every read of one poll is timed before any of them is parsed, so a slow parse delays no other stream', async () => {
  const response = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const waiting: net.Socket[] = [];
  const server = net.createServer((s) =>
    s.once('data', () => {
      waiting.push(s);
      // Both requests in: answer both in one go, so both reads are ready in the client's same poll.
      if (waiting.length === 2) for (const w of waiting) w.write(response);
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const pool = new Http1Pool(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  const arrivals: number[] = [];
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      pool.request('GET / HTTP/1.1\r\nhost: x\r\n\r\n', '', {
        onHead: () => undefined,
        onBody: (_b, _from, _to, at) => {
          arrivals.push(at);
          const end = performance.now() + 30; // a slow parse of the first stream's chunk
          while (arrivals.length === 1 && performance.now() < end) {
            // spin
          }
        },
        onEnd: resolve,
        onError: () => resolve(),
      });
    });
  await Promise.all([one(), one()]);
  pool.close();
  await new Promise<void>((r) => server.close(() => r()));
  assert.equal(arrivals.length, 2);
  const gap = Math.abs((arrivals[1] as number) - (arrivals[0] as number));
  assert.ok(gap < 10, `the second read was timed ${gap.toFixed(1)} ms after the first (its parse took 30 ms)`);
});

void test('a read that arrives while earlier reads are still being parsed is timed when it arrives, not after them all', async (t) => {
  // The server runs on its own thread, so it writes while the client's loop is busy parsing. It
  // answers the batch at once, says so through `written`, and answers /late 3 ms later.
  const written = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const net = require('node:net');
    const { parentPort, workerData } = require('node:worker_threads');
    const batch = [];
    let late = null;
    const response = Buffer.from('HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok');
    const server = net.createServer((s) => s.on('data', (b) => {
      for (const head of b.toString('latin1').split('\\r\\n\\r\\n').slice(0, -1)) {
        if (head.startsWith('GET /warm')) s.write(response);
        else if (head.startsWith('GET /late')) late = s;
        else batch.push(s);
      }
      if (late === null || batch.length < ${BATCH}) return;
      for (const w of batch) w.write(response);
      Atomics.store(workerData, 0, 1);
      Atomics.notify(workerData, 0);
      setTimeout(() => late.write(response), 3);
    }));
    server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));`,
    { eval: true, workerData: written },
  );
  t.after(() => worker.terminate());
  const port = await new Promise<number>((r) => worker.once('message', r));
  const pool = new Http1Pool(new URL(`http://127.0.0.1:${port}`));
  let lastBatchParsedMs = 0;
  let lateArrivedMs = 0;
  const one = (path: string, onBody: (at: number) => void): Promise<void> =>
    new Promise((resolve) => {
      pool.request(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`, '', {
        onHead: () => undefined,
        onBody: (_b, _from, _to, at) => onBody(at),
        onEnd: resolve,
        onError: () => resolve(),
      });
    });
  const parseBatchChunk = (): void => {
    const end = performance.now() + 1; // 1 ms of parsing per chunk: the batch takes ~BATCH ms
    while (performance.now() < end) {
      // spin
    }
    lastBatchParsedMs = performance.now();
  };
  // Connected first, so the requests below are written at once.
  await Promise.all(Array.from({ length: BATCH + 1 }, () => one('/warm', () => undefined)));
  const done = Promise.all([
    ...Array.from({ length: BATCH }, () => one('/b', parseBatchChunk)),
    one('/late', (at) => void (lateArrivedMs = at)),
  ]);
  // Hold the loop until the whole batch is written: the next poll finds every one of its reads ready.
  Atomics.wait(written, 0, 0, 5000);
  await done;
  pool.close();
  assert.equal(Atomics.load(written, 0), 1, 'the server wrote the batch');
  const early = lastBatchParsedMs - lateArrivedMs;
  assert.ok(early > 0, `the late read was timed ${(-early).toFixed(1)} ms after the batch's parse ended`);
});
