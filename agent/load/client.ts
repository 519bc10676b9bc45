// OpenAI-compatible streaming client: /v1/completions and /v1/chat/completions over SSE, one
// keep-alive agent, timings taken with performance.now() when each chunk reaches the event loop.
import http from 'node:http';
import https from 'node:https';
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
  /** Every gap between consecutive token-carrying chunks. */
  itlMs: number[];
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
}

export interface ClientOptions {
  baseUrl: string;
  timeoutMs: number;
  apiKey?: string | undefined;
}

interface Progress {
  firstMs: number | null;
  lastMs: number;
  itl: number[];
  chunks: number;
  usageIn: number | null;
  usageOut: number | null;
  finished: boolean;
  done: boolean;
  serverError: string | null;
  serverTtftMs: number | null;
}

function chunkText(
  api: ApiKind,
  chunk: { choices?: Array<{ text?: string; delta?: { content?: string | null }; finish_reason?: string | null }> },
): { text: string; finished: boolean } {
  const choice = chunk.choices?.[0];
  if (choice === undefined) return { text: '', finished: false };
  const text = (api === 'chat' ? choice.delta?.content : choice.text) ?? '';
  return { text, finished: choice.finish_reason !== null && choice.finish_reason !== undefined };
}

export class StreamingClient {
  private readonly agent: http.Agent;
  private readonly url: URL;
  private readonly opts: ClientOptions;
  private readonly transport: typeof http | typeof https;

  constructor(opts: ClientOptions) {
    this.opts = opts;
    this.url = new URL(opts.baseUrl);
    this.transport = this.url.protocol === 'https:' ? https : http;
    const AgentClass = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new AgentClass({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096, scheduling: 'lifo' });
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
      itl: [],
      chunks: 0,
      usageIn: null,
      usageOut: null,
      finished: false,
      done: false,
      serverError: null,
      serverTtftMs: null,
    };
    const payload = this.body(req);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (errorClass?: ErrorClass, error?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(this.result(req, p, startMs, errorClass, error));
      };
      const path = `${this.url.pathname.replace(/\/$/, '')}/v1/${req.api === 'chat' ? 'chat/completions' : 'completions'}`;
      const headers: http.OutgoingHttpHeaders = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        accept: 'text/event-stream',
      };
      if (this.opts.apiKey !== undefined) headers['authorization'] = `Bearer ${this.opts.apiKey}`;
      const httpReq = this.transport.request({
        host: this.url.hostname,
        port: this.url.port,
        path,
        method: 'POST',
        agent: this.agent,
        headers,
      });
      const timer = setTimeout(() => {
        finish('timeout', `no complete response within ${this.opts.timeoutMs} ms`);
        httpReq.destroy();
      }, this.opts.timeoutMs);
      const onAbort = (): void => {
        finish('cancelled', 'load stopped');
        httpReq.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let responded = false;
      // Before any response it is a connection failure; after the headers, a cut stream.
      httpReq.on('error', (err: NodeJS.ErrnoException) =>
        finish(responded ? 'stream_cut' : 'connect', err.code ?? err.message),
      );
      httpReq.on('response', (res) => {
        responded = true;
        this.onResponse(req.api, res, p, finish, hooks);
      });
      httpReq.end(payload);
    });
  }

  private onResponse(
    api: ApiKind,
    res: http.IncomingMessage,
    p: Progress,
    finish: (c?: ErrorClass, e?: string) => void,
    hooks?: RequestHooks,
  ): void {
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      res.resume();
      res.on('end', () => finish(status >= 500 ? 'http_5xx' : 'http_4xx', `HTTP ${status}`));
      return;
    }
    res.setEncoding('utf8');
    const parser = new SseParser();
    const onData = (data: string): void => {
      const first = p.firstMs === null;
      this.onEvent(api, data, p);
      if (first && p.firstMs !== null) hooks?.onFirstToken?.();
    };
    res.on('data', (text: string) => {
      try {
        parser.push(text, onData);
      } catch (err) {
        finish('bad_response', `unparsable stream chunk: ${(err as Error).message}`);
        res.destroy();
      }
    });
    res.on('end', () => {
      if (p.serverError !== null) finish('server_error', p.serverError);
      else if (p.done || p.finished) finish();
      else finish('stream_cut', 'stream ended before [DONE]');
    });
    res.on('aborted', () => finish('stream_cut', 'connection closed mid-stream'));
    res.on('error', () => finish('stream_cut', 'connection closed mid-stream'));
  }

  private onEvent(api: ApiKind, data: string, p: Progress): void {
    const now = performance.now();
    if (data === '[DONE]') {
      p.done = true;
      p.lastMs = now;
      return;
    }
    const chunk = JSON.parse(data) as {
      error?: { message?: string };
      usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
    };
    if (chunk.error !== undefined) p.serverError = chunk.error.message ?? 'error event in stream';
    if (chunk.usage) {
      p.usageIn = chunk.usage.prompt_tokens ?? null;
      p.usageOut = chunk.usage.completion_tokens ?? null;
    }
    const { text, finished } = chunkText(api, chunk as Parameters<typeof chunkText>[1]);
    if (finished) p.finished = true;
    if (text === '') return;
    if (p.firstMs === null) {
      p.firstMs = now;
      const server = (chunk as { llem_server?: { received_ms?: unknown; first_token_ms?: unknown } }).llem_server;
      if (typeof server?.received_ms === 'number' && typeof server.first_token_ms === 'number')
        p.serverTtftMs = server.first_token_ms - server.received_ms;
    } else p.itl.push(now - p.lastMs);
    p.lastMs = now;
    p.chunks++;
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
      itlMs: p.itl,
      e2eMs,
      tpotMs: ttftMs !== null && outputTokens > 1 ? (e2eMs - ttftMs) / (outputTokens - 1) : null,
      inputTokens: p.usageIn ?? req.promptTokens,
      outputTokens,
      ...(p.serverTtftMs === null ? {} : { serverTtftMs: p.serverTtftMs }),
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
    const one = (): Promise<boolean> =>
      new Promise((resolve) => {
        const req = this.transport.request({
          host: this.url.hostname,
          port: this.url.port,
          path: url.pathname + url.search,
          method: 'GET',
          agent: this.agent,
        });
        req.setTimeout(this.opts.timeoutMs, () => req.destroy());
        req.on('error', () => resolve(false));
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode !== undefined && res.statusCode < 500));
          res.on('error', () => resolve(false));
        });
        req.end();
      });
    const ok = await Promise.all(Array.from({ length: Math.max(0, connections) }, one));
    return ok.filter(Boolean).length;
  }

  close(): void {
    this.agent.destroy();
  }
}
