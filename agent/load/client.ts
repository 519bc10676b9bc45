// OpenAI-compatible streaming client: /v1/completions and /v1/chat/completions over SSE, one
// keep-alive connection per stream (http1.ts), timings taken with performance.now() when the socket
// read holding each chunk reaches the event loop, before it is decoded or parsed.
import { Http1Pool, type Exchange, type ExchangeHandlers } from './http1.ts';
import { SCAN_FALLBACK, SCAN_FINISHED, SCAN_TEXT, scanChunk } from './chunk-scan.ts';
import { SseParser } from './sse.ts';

export type ApiKind = 'completions' | 'chat';
export type ErrorClass =
  'timeout' | 'connect' | 'http_4xx' | 'http_5xx' | 'stream_cut' | 'bad_response' | 'server_error' | 'cancelled';

export interface StreamRequest {
  api: ApiKind;
  model: string;
  prompt: string;
  /** The requested prompt length: reported when the server sends no usage. */
  promptTokens: number;
  maxTokens: number;
  ignoreEos: boolean;
  temperature: number;
  /** Nucleus sampling; sent as top_p only below 1. */
  topP?: number;
  /** Keep the generated text in the result (multi-turn conversations put it into the next prompt). */
  collectText?: boolean;
}

export interface RequestHooks {
  /** Called when the first token arrives (the steady-state window watches for a full batch). */
  onFirstToken?: () => void;
}

export interface RequestResult {
  ok: boolean;
  errorClass?: ErrorClass;
  error?: string;
  /** performance.now() at send. */
  startMs: number;
  endMs: number;
  ttftMs: number | null;
  /**
   * Every gap between consecutive token-carrying chunks. The client hands a Float64Array (off the V8 heap,
   * so a long stream's gaps are never copied by a young-generation GC); results made elsewhere may use an array.
   */
  itlMs: Float64Array | number[];
  e2eMs: number;
  /** (E2E - TTFT) / (output tokens - 1); null with fewer than two tokens. */
  tpotMs: number | null;
  inputTokens: number;
  outputTokens: number;
  /**
   * The server's own TTFT (first token written - request received, on its clock), when it says
   * (the mock server does, in its first chunk): client TTFT minus this is the client's error.
   */
  serverTtftMs?: number;
  /** The generated text, when the request asked for it (collectText). */
  text?: string;
  /**
   * The server's own stamps behind serverTtftMs (wall clock, ms): when it received the request and
   * when it wrote the first token. With the send and read times they split the client's error into
   * the way out and the way back (bench/agent).
   */
  serverStamps?: { receivedMs: number; firstTokenMs: number };
}

export interface ClientOptions {
  baseUrl: string;
  timeoutMs: number;
  apiKey?: string | undefined;
}

interface Progress {
  firstMs: number | null;
  lastMs: number;
  /** Gaps so far, `itl[0, itlN)`; sized by max_tokens (capped), doubled if a server sends more chunks. */
  itl: Float64Array;
  itlN: number;
  /** When the read holding the event being handled reached JS. */
  readMs: number;
  chunks: number;
  usageIn: number | null;
  usageOut: number | null;
  finished: boolean;
  done: boolean;
  serverError: string | null;
  serverTtftMs: number | null;
  /** Generated text pieces, kept only when the request asks (collectText). */
  text: string[] | null;
  serverStamps: { receivedMs: number; firstTokenMs: number } | null;
}

type Chunk = {
  choices?: Array<{ text?: string; delta?: { content?: string | null }; finish_reason?: string | null }>;
  error?: { message?: string };
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  llem_server?: { received_ms?: unknown; first_token_ms?: unknown };
};

const DONE = Buffer.from('[DONE]');
/** Gap slots a request starts with at most (max_tokens beyond this grow by doubling, not up front). */
const MAX_PRESIZED_GAPS = 4096;

/** Whether `buf[from, to)` is `[DONE]` (compared in JS, without a view of the range). */
function isDone(buf: Buffer, from: number, to: number): boolean {
  if (to - from !== DONE.length) return false;
  for (let k = 0; k < DONE.length; k++) if (buf[from + k] !== DONE[k]) return false;
  return true;
}

/** The text a parsed chunk carries ('' for none). */
function chunkContent(api: ApiKind, chunk: Chunk | null): string {
  const choice = chunk?.choices?.[0];
  return (api === 'chat' ? choice?.delta?.content : choice?.text) ?? '';
}

/**
 * Whether a parsed chunk's choices[0] has text and a finish reason (SCAN_TEXT | SCAN_FINISHED bits, as
 * scanChunk answers for the chunks it reads without JSON.parse).
 */
export function chunkFacts(api: ApiKind, chunk: Chunk): number {
  const choice = chunk.choices?.[0];
  if (choice === undefined) return 0;
  const text = (api === 'chat' ? choice.delta?.content : choice.text) ?? '';
  const finished = choice.finish_reason !== null && choice.finish_reason !== undefined;
  return (text === '' ? 0 : SCAN_TEXT) | (finished ? SCAN_FINISHED : 0);
}

const aborters = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Run `fn` when `signal` aborts; returns the way to stop listening. One listener per signal for all
 * its requests: EventTarget checks every listener for duplicates on each add and remove, ~20 µs per
 * request with 512 streams in flight on one signal.
 */
export function onAbortOf(signal: AbortSignal, fn: () => void): () => void {
  let waiting = aborters.get(signal);
  if (waiting === undefined) {
    const set = new Set<() => void>();
    waiting = set;
    aborters.set(signal, set);
    signal.addEventListener('abort', () => [...set].forEach((f) => f()), { once: true });
  }
  const set = waiting;
  set.add(fn);
  return () => void set.delete(fn);
}

export class StreamingClient {
  private readonly pool: Http1Pool;
  private readonly url: URL;
  private readonly opts: ClientOptions;

  constructor(opts: ClientOptions) {
    this.opts = opts;
    this.url = new URL(opts.baseUrl);
    this.pool = new Http1Pool(this.url);
  }

  body(req: StreamRequest): string {
    const common = {
      model: req.model,
      max_tokens: req.maxTokens,
      temperature: req.temperature,
      stream: true,
      stream_options: { include_usage: true },
      ...(req.ignoreEos ? { ignore_eos: true } : {}),
      ...(req.topP !== undefined && req.topP < 1 ? { top_p: req.topP } : {}),
    };
    return JSON.stringify(
      req.api === 'chat'
        ? { ...common, messages: [{ role: 'user', content: req.prompt }] }
        : { ...common, prompt: req.prompt },
    );
  }

  send(req: StreamRequest, signal?: AbortSignal, hooks?: RequestHooks): Promise<RequestResult> {
    const startMs = performance.now();
    const p: Progress = {
      firstMs: null,
      lastMs: startMs,
      itl: new Float64Array(Math.min(Math.max(req.maxTokens, 1), MAX_PRESIZED_GAPS)),
      itlN: 0,
      readMs: 0,
      chunks: 0,
      usageIn: null,
      usageOut: null,
      finished: false,
      done: false,
      serverError: null,
      serverTtftMs: null,
      text: req.collectText === true ? [] : null,
      serverStamps: null,
    };
    const payload = this.body(req);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (errorClass?: ErrorClass, error?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        unlisten();
        resolve(this.result(req, p, startMs, errorClass, error));
      };
      const path = `${this.url.pathname.replace(/\/$/, '')}/v1/${req.api === 'chat' ? 'chat/completions' : 'completions'}`;
      const auth = this.opts.apiKey === undefined ? '' : `authorization: Bearer ${this.opts.apiKey}\r\n`;
      const head =
        `POST ${path} HTTP/1.1\r\nhost: ${this.url.host}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(payload)}\r\naccept: text/event-stream\r\n${auth}\r\n`;
      // Handlers never run synchronously inside request(), so `exchange` is set before drop() can be called.
      const drop = (): void => exchange.abort();
      const exchange: Exchange = this.pool.request(head, payload, this.handlers(req.api, p, { finish, drop }, hooks));
      const timer = setTimeout(() => {
        finish('timeout', `no complete response within ${this.opts.timeoutMs} ms`);
        drop();
      }, this.opts.timeoutMs);
      const onAbort = (): void => {
        finish('cancelled', 'load stopped');
        drop();
      };
      const unlisten = signal === undefined ? (): void => undefined : onAbortOf(signal, onAbort);
      if (signal?.aborted === true) onAbort();
    });
  }

  /**
   * The response, read as its bytes arrive: every SSE event of one socket read is timed at the moment
   * that read reached JS, before any of it is decoded or parsed.
   */
  private handlers(
    api: ApiKind,
    p: Progress,
    end: { finish: (c?: ErrorClass, e?: string) => void; drop: () => void },
    hooks?: RequestHooks,
  ): ExchangeHandlers {
    const { finish, drop } = end;
    let status = 0;
    const parser = new SseParser();
    let arrivedMs = 0;
    const onData = (buf: Buffer, from: number, to: number): void => {
      const first = p.firstMs === null;
      p.readMs = arrivedMs;
      this.onEvent(api, buf, from, to, p);
      if (first && p.firstMs !== null) hooks?.onFirstToken?.();
    };
    return {
      onHead: (s) => void (status = s),
      onBody: (buf, from, to, at) => {
        if (status >= 400) return;
        arrivedMs = at;
        try {
          parser.pushBytes(buf, onData, from, to);
        } catch (err) {
          finish('bad_response', `unparsable stream chunk: ${(err as Error).message}`);
          drop();
        }
      },
      onEnd: () => {
        if (status >= 400) finish(status >= 500 ? 'http_5xx' : 'http_4xx', `HTTP ${status}`);
        else if (p.serverError !== null) finish('server_error', p.serverError);
        else if (p.done || p.finished) finish();
        else finish('stream_cut', 'stream ended before [DONE]');
      },
      // Before any response it is a connection failure; after the headers, a cut stream.
      onError: (code, afterHead) =>
        afterHead ? finish('stream_cut', `connection closed mid-stream (${code})`) : finish('connect', code),
    };
  }

  /**
   * One SSE event's data, `buf[from, to)`. After the first token most chunks are read by scanChunk
   * without JSON.parse or decoding (no garbage per token, so fewer GC pauses on the reading loop); the
   * first token (it carries the server's stamps), errors, usage and anything unusual go through JSON.parse.
   */
  private onEvent(api: ApiKind, buf: Buffer, from: number, to: number, p: Progress): void {
    const now = p.readMs;
    if (isDone(buf, from, to)) {
      p.done = true;
      p.lastMs = now;
      return;
    }
    // A request that keeps its text (a conversation turn) parses every chunk: the scanner reads no content.
    let facts = p.firstMs === null || p.text !== null ? SCAN_FALLBACK : scanChunk(buf, from, to, api === 'chat');
    let chunk: Chunk | null = null;
    if (facts === SCAN_FALLBACK) {
      chunk = JSON.parse(buf.toString('utf8', from, to)) as Chunk;
      facts = this.parsedFacts(api, chunk, p);
    }
    if ((facts & SCAN_FINISHED) !== 0) p.finished = true;
    if ((facts & SCAN_TEXT) === 0) return;
    if (p.firstMs === null) {
      p.firstMs = now;
      const server = chunk?.llem_server;
      if (typeof server?.received_ms === 'number' && typeof server.first_token_ms === 'number') {
        p.serverTtftMs = server.first_token_ms - server.received_ms;
        p.serverStamps = { receivedMs: server.received_ms, firstTokenMs: server.first_token_ms };
      }
    } else {
      if (p.itlN === p.itl.length) {
        const grown = new Float64Array(p.itl.length * 2);
        grown.set(p.itl);
        p.itl = grown;
      }
      p.itl[p.itlN++] = now - p.lastMs;
    }
    p.lastMs = now;
    p.chunks++;
    if (p.text !== null) p.text.push(chunkContent(api, chunk));
  }

  /** Usage and errors of a chunk read by JSON.parse, and its choice's facts. */
  private parsedFacts(api: ApiKind, chunk: Chunk, p: Progress): number {
    if (chunk.error !== undefined) p.serverError = chunk.error.message ?? 'error event in stream';
    if (chunk.usage) {
      p.usageIn = chunk.usage.prompt_tokens ?? null;
      p.usageOut = chunk.usage.completion_tokens ?? null;
    }
    return chunkFacts(api, chunk);
  }

  private result(
    req: StreamRequest,
    p: Progress,
    startMs: number,
    errorClass?: ErrorClass,
    error?: string,
  ): RequestResult {
    const endMs = performance.now();
    const outputTokens = p.usageOut ?? p.chunks;
    const ttftMs = p.firstMs === null ? null : p.firstMs - startMs;
    const e2eMs = (p.done ? p.lastMs : endMs) - startMs;
    const base = {
      ok: errorClass === undefined,
      startMs,
      endMs,
      ttftMs,
      itlMs: p.itl.subarray(0, p.itlN),
      e2eMs,
      tpotMs: ttftMs !== null && outputTokens > 1 ? (e2eMs - ttftMs) / (outputTokens - 1) : null,
      inputTokens: p.usageIn ?? req.promptTokens,
      outputTokens,
      ...(p.serverTtftMs === null ? {} : { serverTtftMs: p.serverTtftMs }),
      ...(p.text === null ? {} : { text: p.text.join('') }),
      ...(p.serverStamps === null ? {} : { serverStamps: p.serverStamps }),
    };
    return errorClass === undefined ? base : { ...base, errorClass, error: error ?? errorClass };
  }

  /**
   * Open `connections` keep-alive connections at once, each used by one GET of `path` (the readiness
   * path: no engine work), and leave them in the pool, so the measured window pays no connection
   * set-up. Resolves with how many came back usable.
   */
  async warm(connections: number, path: string): Promise<number> {
    const url = new URL(path, this.url);
    const head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${this.url.host}\r\n\r\n`;
    const one = (): Promise<boolean> =>
      new Promise((resolve) => {
        let status = 0;
        const exchange = this.pool.request(head, '', {
          onHead: (s) => void (status = s),
          onBody: () => undefined,
          onEnd: () => {
            clearTimeout(timer);
            resolve(status < 500);
          },
          onError: () => {
            clearTimeout(timer);
            resolve(false);
          },
        });
        const timer = setTimeout(() => {
          exchange.abort();
          resolve(false);
        }, this.opts.timeoutMs);
      });
    const ok = await Promise.all(Array.from({ length: Math.max(0, connections) }, one));
    return ok.filter(Boolean).length;
  }

  close(): void {
    this.pool.close();
  }
}
