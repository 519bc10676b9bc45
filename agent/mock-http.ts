// The mock server's HTTP/1.1, on a raw `net` server (ADR 0037). node:http made an IncomingMessage, a
// ServerResponse, header objects and stream state per request, and queued a streamed token as several
// writes: garbage in the process whose GC pauses leave requests unread and tokens unsent, which a
// benchmark then charges to the client it measures. Here a request is parsed from the socket's bytes
// (keep-alive, pipelining, Content-Length or chunked bodies, Expect: 100-continue), malformed ones are
// answered 400 and the connection closed, and a response is framed here: JSON with Content-Length, or a
// stream in chunked framing (close-delimited for HTTP/1.0), its head sent with the first chunk.
import net from 'node:net';
import { wallClockMs } from './mock-engine.ts';

/** A request head longer than this is refused (431), as node:http's default limit does. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** A request body longer than this is refused (413): a completion request is a prompt, not an upload. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface MockRequest {
  method: string;
  path: string;
  /** The target's query string without the '?', '' if none. */
  query: string;
  /** Header names lower-case; a repeated header's values joined with ', '. */
  headers: ReadonlyMap<string, string>;
  body: Buffer;
  /** Wall clock (ms, sub-ms) when the read that completed the request head reached JS, before parsing. */
  receivedMs: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/;
const STATUS_TEXT: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

let dateSecond = -1;
let dateText = '';
/** The Date header's value, formatted at most once a second. */
function httpDate(): string {
  const s = Math.floor(Date.now() / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(s * 1000).toUTCString();
  }
  return dateText;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** One response on a connection. Writes after the connection closed are dropped. */
export class MockResponse {
  private headSent = false;
  private head = '';
  private ended = false;
  private destroyedHere = false;
  /** Chunked framing (HTTP/1.1) or bytes until close (HTTP/1.0). */
  private readonly chunked: boolean;
  /** Called once if the connection closes before this response ended. */
  onClose: (() => void) | null = null;

  constructor(
    private readonly conn: MockConnection,
    readonly http11: boolean,
    private readonly keepAlive: boolean,
    private readonly headOnly: boolean,
  ) {
    this.chunked = http11;
  }

  get destroyed(): boolean {
    return this.destroyedHere || this.conn.closed;
  }

  private headLines(status: number, headers: string): string {
    const connection = this.keepAlive
      ? `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(this.conn.keepAliveTimeoutMs / 1000)}\r\n`
      : 'connection: close\r\n';
    return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Unknown'}\r\ndate: ${httpDate()}\r\n${connection}${headers}`;
  }

  /** A whole JSON response (Content-Length framing). */
  json(status: number, body: unknown, headers = ''): void {
    if (this.ended || this.headSent) return;
    const text = JSON.stringify(body);
    const len = Buffer.byteLength(text);
    const head = this.headLines(status, `content-type: application/json\r\ncontent-length: ${len}\r\n${headers}\r\n`);
    this.headSent = true;
    this.conn.write(this.headOnly ? head : head + text);
    this.finish();
  }

  /** A streamed response's status and headers (each line ending CRLF): sent with the first chunk. */
  stream(status: number, headers: string): void {
    const framing = this.chunked ? 'transfer-encoding: chunked\r\n' : '';
    this.head = this.headLines(status, `${headers}${framing}\r\n`);
  }

  /** True once the head went out: a frame from frame() may then be written alone with writeFramed(). */
  get started(): boolean {
    return this.headSent;
  }

  /** `data` framed as this response's body framing wants (built once by a caller that reuses it). */
  frame(data: Buffer): Buffer {
    if (!this.chunked) return data;
    return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
  }

  /** One body chunk, as one socket write (with the head, if not yet sent). */
  write(data: string): void {
    if (this.ended) return;
    const framed = this.chunked ? `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n` : data;
    this.conn.write(this.takeHead() + framed);
  }

  /** Bytes already framed by frame(), written as they are (after the head). */
  writeFramed(frame: Buffer): void {
    if (this.ended) return;
    if (!this.headSent) this.conn.write(this.takeHead());
    this.conn.write(frame);
  }

  /** The last chunks (each its own chunk, as separate write() calls would make) and the body's end, as one write. */
  end(...chunks: string[]): void {
    if (this.ended) return;
    let out = this.takeHead();
    for (const c of chunks) out += this.chunked ? `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n` : c;
    this.conn.write(this.chunked ? `${out}0\r\n\r\n` : out);
    this.finish();
  }

  destroy(): void {
    this.ended = true;
    this.destroyedHere = true;
    this.conn.destroy();
  }

  private takeHead(): string {
    if (this.headSent) return '';
    this.headSent = true;
    return this.head;
  }

  private finish(): void {
    this.ended = true;
    this.onClose = null;
    if (!this.chunked || !this.keepAlive) this.conn.endAfterWrite();
    else this.conn.responseDone();
  }

  /** The connection closed under this response. */
  closed(): void {
    const cb = this.onClose;
    this.onClose = null;
    if (!this.ended) cb?.();
  }
}

export type MockRequestHandler = (req: MockRequest, res: MockResponse) => void;

/** One accepted connection: requests parsed in order, one response at a time (pipelined ones wait). */
class MockConnection {
  closed = false;
  private pending: Buffer | null = null;
  private response: MockResponse | null = null;
  private ending = false;
  private parsing = false;
  /** The head of a request whose body has not all arrived. */
  private head: RequestHead | null = null;
  private headMs = 0;
  /** When the last read reached JS: a pipelined request waiting in the buffer arrived no later than this. */
  private lastReadMs = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly handler: MockRequestHandler,
    readonly keepAliveTimeoutMs: number,
  ) {
    socket.setNoDelay(true);
    socket.setTimeout(keepAliveTimeoutMs, () => socket.destroy());
    socket.on('data', (b: Buffer) => this.onData(b, wallClockMs()));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
      this.response?.closed();
      this.response = null;
    });
  }

  write(data: string | Buffer): void {
    if (!this.closed && !this.ending) this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
  }

  endAfterWrite(): void {
    this.response = null;
    this.ending = true;
    this.socket.end();
  }

  /** A keep-alive response ended: idle again, and a pipelined request waiting in the buffer goes next. */
  responseDone(): void {
    this.response = null;
    this.socket.setTimeout(this.keepAliveTimeoutMs);
    // A response ended inside parse() (answered at once) lets parse()'s own loop take the next request.
    if (this.pending !== null && !this.parsing) this.parse(this.lastReadMs);
  }

  private onData(b: Buffer, arrivedMs: number): void {
    this.lastReadMs = arrivedMs;
    if (this.closed || this.ending) return;
    this.pending = this.pending === null ? b : Buffer.concat([this.pending, b]);
    if (this.response === null) this.parse(arrivedMs);
  }

  private parse(arrivedMs: number): void {
    this.parsing = true;
    try {
      while (this.pending !== null && this.response === null && !this.ending && !this.closed) {
        if (this.head === null && !this.readHead(arrivedMs)) return;
        const body = this.readBody();
        if (body === null) return;
        this.dispatch(body);
      }
    } catch (e) {
      if (!(e instanceof BadRequest)) throw e;
      this.reject(e.status, e.message);
    } finally {
      this.parsing = false;
    }
  }

  /** Parses a complete head off the buffer; false while it is incomplete. */
  private readHead(arrivedMs: number): boolean {
    let buf = this.pending as Buffer;
    // A server should ignore empty lines before a request line (RFC 9112 2.2).
    let start = 0;
    while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
    const end = buf.indexOf('\r\n\r\n', start);
    if (end < 0) {
      if (buf.length - start > MAX_HEAD_BYTES) throw new BadRequest(431, `request head over ${MAX_HEAD_BYTES} bytes`);
      return false;
    }
    if (end - start > MAX_HEAD_BYTES) throw new BadRequest(431, `request head over ${MAX_HEAD_BYTES} bytes`);
    const head = parseHead(buf.toString('latin1', start, end));
    buf = buf.subarray(end + 4);
    this.pending = buf.length === 0 ? null : buf;
    this.head = head;
    this.headMs = arrivedMs;
    // Idle timer off while a request is served: no timer refreshed by every streamed write.
    this.socket.setTimeout(0);
    if (head.http11 && /^100-continue$/i.test(head.headers.get('expect') ?? '')) {
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    }
    return true;
  }

  /** The body off the buffer once it has all arrived; null while it has not. */
  private readBody(): Buffer | null {
    const h = this.head as RequestHead;
    const te = h.headers.get('transfer-encoding');
    const cl = h.headers.get('content-length');
    if (te !== undefined) {
      if (cl !== undefined) throw new BadRequest(400, 'both Content-Length and Transfer-Encoding');
      if (te.toLowerCase() !== 'chunked') throw new BadRequest(501, `transfer coding "${te}" not supported`);
      return this.readChunked();
    }
    let length = 0;
    if (cl !== undefined) {
      const values = new Set(cl.split(',').map((v) => v.trim()));
      const v = [...values][0] ?? '';
      if (values.size !== 1 || !/^\d+$/.test(v)) throw new BadRequest(400, 'malformed Content-Length');
      length = Number(v);
      if (length > MAX_BODY_BYTES) throw new BadRequest(413, `request body over ${MAX_BODY_BYTES} bytes`);
    }
    const buf = this.pending ?? Buffer.alloc(0);
    if (buf.length < length) return null;
    this.pending = buf.length === length ? null : buf.subarray(length);
    return buf.subarray(0, length);
  }

  /** A chunked body, decoded once it has all arrived; null while it has not. */
  private readChunked(): Buffer | null {
    if (this.pending === null) return null;
    const r = decodeChunked(this.pending);
    if (r === null) return null;
    this.pending = r.end === this.pending.length ? null : this.pending.subarray(r.end);
    return r.body;
  }

  private dispatch(body: Buffer): void {
    const h = this.head as RequestHead;
    this.head = null;
    const conn = (h.headers.get('connection') ?? '').toLowerCase();
    const keepAlive = h.http11 ? !/\bclose\b/.test(conn) : /\bkeep-alive\b/.test(conn);
    const res = new MockResponse(this, h.http11, keepAlive, h.method === 'HEAD');
    this.response = res;
    const q = h.target.indexOf('?');
    const req: MockRequest = {
      method: h.method,
      path: q < 0 ? h.target : h.target.slice(0, q),
      query: q < 0 ? '' : h.target.slice(q + 1),
      headers: h.headers,
      body,
      receivedMs: this.headMs,
    };
    this.handler(req, res);
  }

  /** A malformed request: its status, and the connection closed (its framing can no longer be trusted). */
  private reject(status: number, message: string): void {
    this.pending = null;
    this.head = null;
    const body = JSON.stringify({ error: { message: `${message} (simulated mock server)`, type: 'invalid_request' } });
    this.socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Unknown'}\r\nconnection: close\r\n` +
        `content-type: application/json\r\nx-llem-simulated: true\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    this.ending = true;
  }
}

interface RequestHead {
  method: string;
  target: string;
  http11: boolean;
  headers: Map<string, string>;
}

/** The request line and header fields of a head (without its final CRLF CRLF); BadRequest if malformed. */
function parseHead(text: string): RequestHead {
  const lines = text.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0] ?? '');
  if (m === null) throw new BadRequest(400, 'malformed request line');
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    // No obsolete line folding, no whitespace before the colon (RFC 9112 5.1, 5.2).
    if (!TOKEN.test(name)) throw new BadRequest(400, 'malformed header line');
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new BadRequest(400, 'malformed header value');
    const key = name.toLowerCase();
    const prev = headers.get(key);
    headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }
  const http11 = m[3] === '1';
  if (http11 && !headers.has('host')) throw new BadRequest(400, 'HTTP/1.1 request without a Host header');
  return { method: m[1] as string, target: m[2] as string, http11, headers };
}

/** Where the line starting at `at` ends (its CRLF), or -1 while it is incomplete. */
const lineEnd = (buf: Buffer, at: number): number => buf.indexOf('\r\n', at);

/** A chunked body from the start of `buf` (trailers read and dropped), and where it ends; null while incomplete. */
function decodeChunked(buf: Buffer): { body: Buffer; end: number } | null {
  const parts: Buffer[] = [];
  let at = 0;
  let total = 0;
  for (;;) {
    const eol = lineEnd(buf, at);
    if (eol < 0) return null;
    const sizeText = buf.toString('latin1', at, eol).split(';')[0]?.trim() ?? '';
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new BadRequest(400, 'malformed chunk size');
    const size = parseInt(sizeText, 16);
    total += size;
    if (total > MAX_BODY_BYTES) throw new BadRequest(413, `request body over ${MAX_BODY_BYTES} bytes`);
    at = eol + 2;
    if (size === 0) break;
    if (buf.length < at + size + 2) return null;
    if (buf[at + size] !== 13 || buf[at + size + 1] !== 10) throw new BadRequest(400, 'chunk not ended by CRLF');
    parts.push(buf.subarray(at, at + size));
    at += size + 2;
  }
  // Trailer fields, up to an empty line.
  for (let eol = lineEnd(buf, at); eol !== at; eol = lineEnd(buf, at)) {
    if (eol < 0) return null;
    at = eol + 2;
  }
  return { body: Buffer.concat(parts), end: at + 2 };
}

export interface MockHttpServer {
  server: net.Server;
  /** TCP connections accepted since start. */
  readonly connections: number;
  /** Destroys every open connection. */
  closeAllConnections(): void;
}

export function createMockHttpServer(handler: MockRequestHandler, keepAliveTimeoutMs: number): MockHttpServer {
  const open = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    new MockConnection(socket, handler, keepAliveTimeoutMs);
  });
  server.maxConnections = 100_000;
  return {
    server,
    get connections() {
      return connections;
    },
    closeAllConnections: () => {
      for (const s of open) s.destroy();
    },
  };
}
