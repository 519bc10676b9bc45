// `llem mock-server`: an OpenAI-compatible streaming server with injected TTFT/ITL and a max batch.
// Simulated, and it says so: the model owner, the system fingerprint and a response header.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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

const SIMULATED_HEADERS = { 'x-llem-simulated': 'true' };
const CRLF = Buffer.from('\r\n');

interface CompletionBody {
  model?: string;
  prompt?: string | string[];
  messages?: Array<{ content?: string }>;
  max_tokens?: number;
  max_completion_tokens?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

function countWords(body: CompletionBody): number {
  const text =
    body.messages?.map((m) => m.content ?? '').join(' ') ??
    (Array.isArray(body.prompt) ? body.prompt.join(' ') : (body.prompt ?? ''));
  const trimmed = text.trim();
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', ...SIMULATED_HEADERS });
  res.end(JSON.stringify(body));
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

  handle(req: http.IncomingMessage, res: http.ServerResponse, stats: () => MockServerStats): void {
    const receivedMs = wallClockMs();
    const [path, query] = (req.url ?? '/').split('?');
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
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () =>
        this.completion(path === '/v1/chat/completions', Buffer.concat(chunks).toString('utf8'), res, receivedMs),
      );
      return;
    }
    if (req.method === 'GET' && path === '/llem/stats') return this.ownStats(query, res, stats());
    json(res, 404, {
      error: { message: `no route ${req.method ?? ''} ${path ?? ''} (simulated mock server)`, type: 'not_found' },
    });
  }

  /** The server's own accounting, for a benchmark that runs it as a separate process. */
  private ownStats(query: string | undefined, res: http.ServerResponse, stats: MockServerStats): void {
    const q = new URLSearchParams(query ?? '');
    const from = Number(q.get('fromMs') ?? NaN);
    const to = Number(q.get('toMs') ?? NaN);
    const between = Number.isFinite(from) && Number.isFinite(to) ? this.engine.tokensEmittedBetween(from, to) : null;
    const cpu = process.cpuUsage();
    // The server's own CPU time, so a benchmark can tell whether the mock itself was the bottleneck.
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    json(res, 200, { ...stats, tokensEmittedBetween: between, cpuSeconds, pid: process.pid, simulated: true });
  }

  private completion(chat: boolean, raw: string, res: http.ServerResponse, receivedMs: number): void {
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
    const usage = {
      prompt_tokens: countWords(body),
      completion_tokens: maxTokens,
      total_tokens: countWords(body) + maxTokens,
    };
    if (body.stream !== true) return this.unary(chat, maxTokens, usage, res);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...SIMULATED_HEADERS,
    });
    res.socket?.setNoDelay(true);
    const seq = this.sequence(
      { chat, n, maxTokens, cutAt, usage: body.stream_options?.include_usage === true ? usage : null, receivedMs },
      res,
    );
    res.on('close', () => this.engine.drop(seq));
    this.engine.submit(seq);
  }

  private sequence(
    o: { chat: boolean; n: number; maxTokens: number; cutAt: number; usage: object | null; receivedMs: number },
    res: http.ServerResponse,
  ): MockSequence {
    const { chat, n, maxTokens, cutAt, usage, receivedMs } = o;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-sim${n}`;
    const head = `{"id":"${id}","object":"${chat ? 'chat.completion.chunk' : 'text_completion'}","created":${Math.floor(Date.now() / 1000)},"model":"${this.o.model}","system_fingerprint":"llem-mock-simulated","choices":[{"index":0,`;
    // The first chunk carries the server's own timestamps (wall clock, ms): when the request arrived
    // and when this first token was written, so a benchmark can tell client error from server queueing.
    const piece = (text: string, finish: string | null, timing = ''): string =>
      `data: ${head}${chat ? `"delta":{"content":"${text}"}` : `"text":"${text}"`},"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${timing}}\n\n`;
    const timing = (): string => `,"llem_server":{"received_ms":${receivedMs},"first_token_ms":${wallClockMs()}}`;
    // Every token between the first and the last is the same bytes: encoded once per stream, so a step
    // allocates less (the mock's GC pauses leave requests unread, so their arrival is stamped late).
    let middle: Buffer | undefined;
    // Once node:http has sent the head and chosen chunked framing, a middle token is one socket write of
    // its whole HTTP chunk, framed here once per stream: res.write would queue the size line, the data and
    // the CRLF as separate writes, about four objects per token, and the mock's GC pauses are charged to
    // the client it measures. Later res.write / res.end calls continue the same chunked body.
    let middleFrame: Buffer | undefined;
    const rawFrames = (): boolean =>
      (res as unknown as { chunkedEncoding?: boolean }).chunkedEncoding === true &&
      res.headersSent &&
      res.socket !== null &&
      !res.socket.writableCorked;
    const writeMiddle = (): void => {
      middle ??= Buffer.from(piece(' tok', null));
      if (!rawFrames()) {
        res.write(middle);
        return;
      }
      middleFrame ??= Buffer.concat([Buffer.from(`${middle.length.toString(16)}\r\n`), middle, CRLF]);
      res.socket?.write(middleFrame);
    };
    return {
      tokensLeft: maxTokens,
      emitted: 0,
      token: (i) => {
        if (res.destroyed) return false;
        if (i >= cutAt) {
          res.destroy();
          return false;
        }
        if (i > 0 && i < maxTokens - 1) writeMiddle();
        else res.write(piece(i === 0 ? 'sim' : ' tok', i === maxTokens - 1 ? 'length' : null, i === 0 ? timing() : ''));
        // node:http corks a response's writes until the next tick; the first token carries its send
        // time, so it goes to the kernel now, right after that time was taken.
        if (i === 0) res.socket?.uncork();
        return true;
      },
      finish: () => {
        if (usage !== null)
          res.write(
            `data: {"id":"${id}","object":"${chat ? 'chat.completion.chunk' : 'text_completion'}","model":"${this.o.model}","choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
          );
        res.end('data: [DONE]\n\n');
      },
    };
  }

  private unary(chat: boolean, maxTokens: number, usage: object, res: http.ServerResponse): void {
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
  let connections = 0;
  const stats = (): MockServerStats => ({
    requests: handler.requests,
    inFlight: handler.engine.inFlight,
    tokensEmitted: handler.engine.tokensEmitted,
    connections,
  });
  const server = http.createServer({ keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000 }, (req, res) =>
    handler.handle(req, res, stats),
  );
  server.on('connection', () => connections++);
  server.maxConnections = 100_000;
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
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
