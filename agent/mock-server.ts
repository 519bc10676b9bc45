// `llem mock-server`: an OpenAI-compatible streaming server with injected TTFT/ITL and a max batch.
// Simulated, and it says so: the model owner, the system fingerprint and a response header.
import type { AddressInfo } from 'node:net';
import { createMockHttpServer, type MockRequest, type MockResponse } from './mock-http.ts';
import { MockEngine, wallClockMs, type DelayDistribution, type MockSequence } from './mock-engine.ts';

export type { DelayDistribution } from './mock-engine.ts';

export interface MockFaults {
  /** Every Nth request (1-based count) has its connection cut mid-stream. */
  cutEveryNth?: number;
  /** ... after this many tokens (default: 2). */
  cutAfterTokens?: number;
  /** Every Nth request is answered with HTTP 500. */
  errorEveryNth?: number;
}

export interface MockServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  model?: string;
  ttft?: DelayDistribution;
  itl?: DelayDistribution;
  maxBatch?: number;
  /** Output length when the request gives no max_tokens. */
  defaultMaxTokens?: number;
  seed?: number;
  /** /health answers 503 until this long after start (readiness tests). */
  readyAfterMs?: number;
  faults?: MockFaults;
  /** Idle keep-alive connections are closed after this long (default 65 s; uvicorn's is 5 s). */
  keepAliveTimeoutMs?: number;
  /** Keep every token's send time, for tokensEmittedBetween() and GET /llem/emitted (benchmarks, tests). */
  recordEmissions?: boolean;
}

export interface MockServerStats {
  requests: number;
  inFlight: number;
  tokensEmitted: number;
  /** TCP connections accepted since start (a keep-alive client opens one per stream slot). */
  connections: number;
}

export interface MockServer {
  url: string;
  port: number;
  readonly simulated: true;
  stats(): MockServerStats;
  /** Tokens written in [fromMs, toMs) (wall clock); null unless recordEmissions. */
  tokensEmittedBetween(fromMs: number, toMs: number): number | null;
  close(): Promise<void>;
}

export const MOCK_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  model: 'mock-simulated',
  ttft: { meanMs: 50 },
  itl: { meanMs: 20 },
  maxBatch: 256,
  defaultMaxTokens: 128,
  seed: 1,
  readyAfterMs: 0,
};

const SIMULATED_HEADER = 'x-llem-simulated: true\r\n';
const STREAM_HEADERS = `content-type: text/event-stream\r\ncache-control: no-cache\r\n${SIMULATED_HEADER}`;

interface CompletionBody {
  model?: string;
  prompt?: string | string[];
  messages?: Array<{ content?: string }>;
  max_tokens?: number;
  max_completion_tokens?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

/** The non-ASCII code units /\s/ matches. */
function isUnicodeSpace(c: number): boolean {
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/** Words (runs of non-whitespace) in `text`, counted in place: split() made an array and a string per word. */
function wordsIn(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c === 32 || (c >= 9 && c <= 13) || (c > 127 && isUnicodeSpace(c));
    if (!space && !inWord) n++;
    inWord = !space;
  }
  return n;
}

function countWords(body: CompletionBody): number {
  if (body.messages !== undefined) return body.messages.reduce((n, m) => n + wordsIn(m.content ?? ''), 0);
  if (Array.isArray(body.prompt)) return body.prompt.reduce((n, p) => n + wordsIn(p), 0);
  return wordsIn(body.prompt ?? '');
}

function json(res: MockResponse, status: number, body: unknown): void {
  res.json(status, body, SIMULATED_HEADER);
}

class MockHandler {
  private count = 0;
  readonly engine: MockEngine;
  private readonly o: typeof MOCK_DEFAULTS & { faults: MockFaults };
  private readonly startedAt = Date.now();

  constructor(opts: MockServerOptions) {
    this.o = { ...MOCK_DEFAULTS, faults: {}, ...opts };
    this.engine = new MockEngine({
      ttft: this.o.ttft,
      itl: this.o.itl,
      maxBatch: this.o.maxBatch,
      seed: this.o.seed,
      recordEmissions: opts.recordEmissions === true,
    });
  }

  get requests(): number {
    return this.count;
  }

  handle(req: MockRequest, res: MockResponse, stats: () => MockServerStats): void {
    // When the read holding the request head reached this process's JS, before any parsing: the
    // receive side of the server's TTFT, timed as the client times its reads (ADR 0037).
    const receivedMs = req.receivedMs;
    const { path, query } = req;
    if (req.method === 'GET' && path === '/health') {
      const ready = Date.now() - this.startedAt >= this.o.readyAfterMs;
      return json(res, ready ? 200 : 503, { status: ready ? 'ok' : 'loading', simulated: true });
    }
    if (req.method === 'GET' && path === '/v1/models') {
      return json(res, 200, {
        object: 'list',
        data: [{ id: this.o.model, object: 'model', created: 0, owned_by: 'llem-simulated' }],
      });
    }
    if (req.method === 'POST' && (path === '/v1/completions' || path === '/v1/chat/completions')) {
      return this.completion(path === '/v1/chat/completions', req.body.toString('utf8'), res, receivedMs);
    }
    if (req.method === 'GET' && path === '/llem/stats') return this.ownStats(query, res, stats());
    json(res, 404, {
      error: { message: `no route ${req.method} ${path} (simulated mock server)`, type: 'not_found' },
    });
  }

  /** The server's own accounting, for a benchmark that runs it as a separate process. */
  private ownStats(query: string, res: MockResponse, stats: MockServerStats): void {
    const q = new URLSearchParams(query);
    const from = Number(q.get('fromMs') ?? NaN);
    const to = Number(q.get('toMs') ?? NaN);
    const between = Number.isFinite(from) && Number.isFinite(to) ? this.engine.tokensEmittedBetween(from, to) : null;
    const cpu = process.cpuUsage();
    // The server's own CPU time, so a benchmark can tell whether the mock itself was the bottleneck.
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    json(res, 200, { ...stats, tokensEmittedBetween: between, cpuSeconds, pid: process.pid, simulated: true });
  }

  private completion(chat: boolean, raw: string, res: MockResponse, receivedMs: number): void {
    let body: CompletionBody;
    try {
      body = JSON.parse(raw) as CompletionBody;
    } catch {
      return json(res, 400, { error: { message: 'request body is not JSON', type: 'invalid_request_error' } });
    }
    const n = ++this.count;
    const f = this.o.faults;
    if (f.errorEveryNth !== undefined && n % f.errorEveryNth === 0) {
      return json(res, 500, { error: { message: 'injected failure (simulated)', type: 'server_error' } });
    }
    const cutAt = f.cutEveryNth !== undefined && n % f.cutEveryNth === 0 ? (f.cutAfterTokens ?? 2) : Infinity;
    const maxTokens = Math.max(1, body.max_tokens ?? body.max_completion_tokens ?? this.o.defaultMaxTokens);
    const promptTokens = countWords(body);
    const usage = { prompt_tokens: promptTokens, completion_tokens: maxTokens, total_tokens: promptTokens + maxTokens };
    if (body.stream !== true) return this.unary(chat, maxTokens, usage, res);
    res.stream(200, STREAM_HEADERS);
    const seq = this.sequence(
      { chat, n, maxTokens, cutAt, usage: body.stream_options?.include_usage === true ? usage : null, receivedMs },
      res,
    );
    res.onClose = () => this.engine.drop(seq);
    this.engine.submit(seq);
  }

  private sequence(
    o: { chat: boolean; n: number; maxTokens: number; cutAt: number; usage: object | null; receivedMs: number },
    res: MockResponse,
  ): MockSequence {
    const { chat, n, maxTokens, cutAt, usage, receivedMs } = o;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-sim${n}`;
    const head = `{"id":"${id}","object":"${chat ? 'chat.completion.chunk' : 'text_completion'}","created":${Math.floor(Date.now() / 1000)},"model":"${this.o.model}","system_fingerprint":"llem-mock-simulated","choices":[{"index":0,`;
    // The first chunk carries the server's own timestamps (wall clock, ms): when the request arrived
    // and when this first token was handed to the kernel, so a benchmark can tell client error from
    // server queueing. The send stamp has to be inside the bytes it dates, so it is taken as late as
    // that allows: just before the one socket write of the response head and this chunk, with only this
    // chunk's formatting in between (microseconds). Anything that delays the write after the stamp (a GC
    // pause, the process losing its core) is charged to the client, never hidden from it (ADR 0037).
    const piece = (text: string, finish: string | null, timing = ''): string =>
      `data: ${head}${chat ? `"delta":{"content":"${text}"}` : `"text":"${text}"`},"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${timing}}\n\n`;
    // Every token between the first and the last is the same bytes, framed as one HTTP chunk once per
    // stream and written as one socket write: no garbage per token in the process whose GC pauses leave
    // requests unread and tokens unsent, which the benchmark charges to the client it measures.
    let middleFrame: Buffer | undefined;
    return {
      tokensLeft: maxTokens,
      emitted: 0,
      token: (i) => {
        if (res.destroyed) return false;
        if (i >= cutAt) {
          res.destroy();
          return false;
        }
        if (i === 0) {
          const timing = `,"llem_server":{"received_ms":${receivedMs},"first_token_ms":${wallClockMs()}}`;
          res.write(piece('sim', maxTokens === 1 ? 'length' : null, timing));
        } else if (i < maxTokens - 1 && res.started) {
          res.writeFramed((middleFrame ??= res.frame(Buffer.from(piece(' tok', null)))));
        } else {
          res.write(piece(' tok', i === maxTokens - 1 ? 'length' : null));
        }
        return true;
      },
      finish: () => {
        const done = 'data: [DONE]\n\n';
        if (usage === null) return res.end(done);
        res.end(
          `data: {"id":"${id}","object":"${chat ? 'chat.completion.chunk' : 'text_completion'}",` +
            `"model":"${this.o.model}","choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
          done,
        );
      },
    };
  }

  private unary(chat: boolean, maxTokens: number, usage: object, res: MockResponse): void {
    const text = ['sim', ...new Array<string>(maxTokens - 1).fill(' tok')].join('');
    const delayMs = this.o.ttft.meanMs + (maxTokens - 1) * this.o.itl.meanMs;
    const choice = chat
      ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' }
      : { index: 0, text, finish_reason: 'length' };
    setTimeout(
      () =>
        json(res, 200, {
          id: 'sim',
          object: chat ? 'chat.completion' : 'text_completion',
          model: this.o.model,
          system_fingerprint: 'llem-mock-simulated',
          choices: [choice],
          usage,
        }),
      delayMs,
    );
  }
}

export async function startMockServer(opts: MockServerOptions = {}): Promise<MockServer> {
  const handler = new MockHandler(opts);
  const stats = (): MockServerStats => ({
    requests: handler.requests,
    inFlight: handler.engine.inFlight,
    tokensEmitted: handler.engine.tokensEmitted,
    connections: front.connections,
  });
  const front = createMockHttpServer((req, res) => handler.handle(req, res, stats), opts.keepAliveTimeoutMs ?? 65_000);
  const server = front.server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? MOCK_DEFAULTS.port, opts.host ?? MOCK_DEFAULTS.host, resolve);
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    port,
    simulated: true,
    stats,
    tokensEmittedBetween: (fromMs, toMs) => handler.engine.tokensEmittedBetween(fromMs, toMs),
    close: async () => {
      handler.engine.stop();
      front.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
