// A minimal HTTP/1.1 keep-alive client for the load generator: one raw socket per stream slot, the
// response framed here (status line, headers, chunked or Content-Length body) straight from the
// socket's bytes. node:http's client costs ~15 µs per streamed chunk before the body reaches JS
// (llhttp callbacks, an IncomingMessage stream, a string decoder); with hundreds of streams the
// chunks of one engine step queue behind each other, so that cost lands on every later stream's
// timestamps. Here the time a read reached JS is taken first, in the socket's data event, and
// handed with the body bytes to whoever parses them.
import net from 'node:net';
import tls from 'node:tls';

export interface ExchangeHandlers {
  /** Status line and headers (names lower-case) arrived. */
  onHead(status: number, headers: ReadonlyMap<string, string>): void;
  /** Body bytes (chunked framing removed), and performance.now() when the read holding them reached JS. */
  onBody(bytes: Buffer, arrivedMs: number): void;
  /** The whole response arrived. */
  onEnd(): void;
  /** The connection failed or closed before the response was complete (`code`: errno code or a phrase). */
  onError(code: string, afterHead: boolean): void;
}

export interface Exchange {
  /** Drop the exchange and its connection; no handler is called after. */
  abort(): void;
}

/** How long one check phase parses queued reads before letting the loop poll (and time) new ones. */
export const DRAIN_BUDGET_MS = 1;
/** A response head longer than this is not an HTTP server's (node:http's limit is 16 KiB). */
const MAX_HEAD_BYTES = 64 * 1024;
const LF = 10;
const CR = 13;
const TAB = 9;
const SPACE = 32;
const SEMICOLON = 59;

/** The value of an ASCII hex digit, -1 for any other byte. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Bytes a socket read (and when the read reached JS), or its failure. */
type Delivery = { c: Connection; bytes: Buffer; arrivedMs: number } | { c: Connection; bytes: null; failure: string };

type BodyState = 'size' | 'data' | 'dataEnd' | 'trailers' | 'length' | 'untilClose';

/** One keep-alive connection and the response it is reading, if any. */
class Connection {
  readonly socket: net.Socket;
  handlers: ExchangeHandlers | null = null;
  private head: Buffer | null = null;
  private inHead = true;
  private body: BodyState = 'size';
  private left = 0;
  private lineBytes = 0;
  private size = 0;
  private sizeExtension = false;
  private sizeMalformed = false;
  private reusable = true;
  /** The server's Keep-Alive timeout hint less a second (as node:http does); null: none given. */
  idleLimitMs: number | null = null;

  constructor(
    socket: net.Socket,
    private readonly pool: { release(c: Connection, reusable: boolean): void; deliver(d: Delivery): void },
    dataEvents: boolean,
  ) {
    this.socket = socket;
    if (dataEvents) socket.on('data', (b: Buffer) => pool.deliver({ c: this, bytes: b, arrivedMs: performance.now() }));
    // Through the same queue as the data, so a close never overtakes the last bytes read before it.
    socket.on('error', (e: NodeJS.ErrnoException) =>
      pool.deliver({ c: this, bytes: null, failure: e.code ?? e.message }),
    );
    socket.on('close', () => pool.deliver({ c: this, bytes: null, failure: 'connection closed' }));
  }

  start(handlers: ExchangeHandlers, request: string): void {
    this.handlers = handlers;
    this.inHead = true;
    this.head = null;
    this.socket.write(request);
  }

  abort(): void {
    this.handlers = null;
    this.socket.destroy();
  }

  fail(code: string): void {
    const h = this.handlers;
    this.handlers = null;
    if (this.body === 'untilClose' && !this.inHead && h !== null && code === 'connection closed') h.onEnd();
    else h?.onError(code, !this.inHead);
    this.pool.release(this, false);
    this.socket.destroy();
  }

  /** Bytes read from the socket, parsed now. */
  onData(b: Buffer, arrivedMs: number): void {
    if (this.handlers === null) {
      this.socket.destroy(); // bytes nobody asked for: the connection's framing is lost
      return;
    }
    let at = 0;
    if (this.inHead) {
      at = this.readHead(b);
      if (at < 0) return;
    }
    this.readBody(b, at, arrivedMs);
  }

  /** Where the body starts in `b`, or -1 while the head is incomplete. */
  private readHead(b: Buffer): number {
    const buf = this.head === null ? b : Buffer.concat([this.head, b]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) this.fail(`response head over ${MAX_HEAD_BYTES} bytes`);
      else this.head = Buffer.from(buf);
      return -1;
    }
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const m = /^HTTP\/1\.(\d) (\d{3})/.exec(lines[0] ?? '');
    if (m === null) {
      this.fail('malformed HTTP status line');
      return -1;
    }
    const status = Number(m[2]);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const colon = l.indexOf(':');
      if (colon > 0) headers.set(l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim());
    }
    if (status >= 100 && status < 200) {
      this.head = null; // an interim response: the real one follows
      const rest = buf.subarray(end + 4);
      const r = this.readHead(rest);
      return r < 0 ? -1 : b.length - (rest.length - r);
    }
    this.inHead = false;
    this.head = null;
    this.frame(m[1] === '1', status, headers);
    this.handlers?.onHead(status, headers);
    return b.length - (buf.length - (end + 4));
  }

  private frame(http11: boolean, status: number, headers: Map<string, string>): void {
    const conn = headers.get('connection')?.toLowerCase() ?? '';
    this.reusable = http11 ? !conn.includes('close') : conn.includes('keep-alive');
    const hint = /timeout=(\d+)/.exec(headers.get('keep-alive') ?? '');
    this.idleLimitMs = hint?.[1] === undefined ? null : Number(hint[1]) * 1000 - 1000;
    if (this.idleLimitMs !== null && this.idleLimitMs <= 0) this.reusable = false;
    const length = headers.get('content-length');
    if (headers.get('transfer-encoding')?.toLowerCase().includes('chunked') === true) this.body = 'size';
    else if (status === 204 || status === 304) this.startLength(0);
    else if (length !== undefined && /^\d+$/.test(length)) this.startLength(Number(length));
    else {
      this.body = 'untilClose';
      this.reusable = false;
    }
    this.lineBytes = 0;
    this.size = 0;
  }

  private startLength(n: number): void {
    this.body = 'length';
    this.left = n;
  }

  private readBody(b: Buffer, from: number, arrivedMs: number): void {
    let at = from;
    while (this.handlers !== null && (at < b.length || (this.body === 'length' && this.left === 0))) {
      if (this.body === 'data' || this.body === 'length' || this.body === 'untilClose') {
        const n = this.body === 'untilClose' ? b.length - at : Math.min(this.left, b.length - at);
        if (n > 0) this.handlers.onBody(b.subarray(at, at + n), arrivedMs);
        at += n;
        this.left -= n;
        if (this.body === 'data' && this.left === 0) this.body = 'dataEnd';
        else if (this.body === 'length' && this.left === 0) this.done();
      } else {
        at = this.readLine(b, at);
      }
    }
  }

  /**
   * Chunk-size lines, the CRLF after each chunk, and trailers, read byte by byte (a few bytes per
   * chunk; no string is made): the size's hex digits are summed as they come.
   */
  private readLine(b: Buffer, at: number): number {
    let i = at;
    while (i < b.length) {
      const c = b[i++] as number;
      if (c === LF) {
        this.endLine();
        return i;
      }
      if (c === CR) continue;
      this.lineBytes++;
      if (this.body !== 'size' || this.sizeExtension) continue;
      const digit = hexValue(c);
      if (digit >= 0) this.size = this.size * 16 + digit;
      else if (c === SEMICOLON || c === SPACE || c === TAB) this.sizeExtension = true;
      else this.sizeMalformed = true;
    }
    return i;
  }

  private endLine(): void {
    const empty = this.lineBytes === 0;
    const { size, sizeMalformed } = this;
    this.lineBytes = 0;
    this.size = 0;
    this.sizeExtension = false;
    this.sizeMalformed = false;
    if (this.body === 'dataEnd') {
      this.body = 'size';
    } else if (this.body === 'trailers') {
      if (empty) this.done();
    } else if (sizeMalformed || empty) {
      this.fail('malformed chunk size');
    } else if (size === 0) {
      this.body = 'trailers';
    } else {
      this.body = 'data';
      this.left = size;
    }
  }

  private done(): void {
    const h = this.handlers;
    this.handlers = null;
    this.body = 'size';
    this.pool.release(this, this.reusable);
    h?.onEnd();
  }
}

export class Http1Pool {
  /** Idle connections, most recently used last (LIFO: the warmest socket goes out first). */
  private readonly free: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly idleTimers = new Map<Connection, NodeJS.Timeout>();
  private readonly host: string;
  private readonly port: number;
  private closed = false;
  private inbox: Delivery[] = [];
  /** A drain is queued for the check phase (it re-queues itself while reads are left). */
  private drainQueued = false;
  private readonly readBuffer = Buffer.allocUnsafe(64 * 1024);

  constructor(private readonly url: URL) {
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  }

  /** Connections open now, idle or busy. */
  get connections(): number {
    return this.all.size;
  }

  /** Send `head` + `body` (a whole request) on an idle connection, or a new one. */
  request(head: string, body: string, handlers: ExchangeHandlers): Exchange {
    const c = this.take();
    c.start(handlers, head + body);
    return { abort: () => (c.handlers === handlers ? c.abort() : undefined) };
  }

  private take(): Connection {
    for (let c = this.free.pop(); c !== undefined; c = this.free.pop()) {
      clearTimeout(this.idleTimers.get(c));
      this.idleTimers.delete(c);
      // A connection the server closed while idle (its close still queued) is never handed out.
      if (!c.socket.destroyed && c.socket.writable) return c;
      this.forget(c);
      c.socket.destroy();
    }
    const opts = { host: this.host, port: this.port, noDelay: true };
    let conn: Connection;
    if (this.url.protocol === 'https:') {
      const sni = net.isIP(this.host) === 0 ? { servername: this.host } : {};
      conn = new Connection(tls.connect({ ...opts, ...sni, ALPNProtocols: ['http/1.1'] }), this, true);
    } else {
      // Plain TCP reads straight into one buffer shared by every connection of this thread (`onread`):
      // no stream machinery; the read's time is taken first, and its bytes copied out for the queue.
      const onread = {
        buffer: this.readBuffer,
        callback: (n: number, b: Buffer): boolean => {
          const arrivedMs = performance.now();
          const bytes = Buffer.allocUnsafe(n); // one object per read (no view of the shared buffer first)
          b.copy(bytes, 0, 0, n);
          this.deliver({ c: conn, bytes, arrivedMs });
          return true;
        },
      };
      conn = new Connection(net.connect({ ...opts, onread }), this, false);
    }
    this.all.add(conn);
    return conn;
  }

  /**
   * Queue what a socket delivered; it is parsed in the check phase right after this poll phase. So
   * every read of one poll is timed before any of them is parsed: with hundreds of streams ready at
   * once, the last one's time is late only by the reads ahead of it, not by their parsing too.
   */
  deliver(d: Delivery): void {
    this.inbox.push(d);
    if (!this.drainQueued) {
      this.drainQueued = true;
      setImmediate(this.drain);
    }
  }

  /**
   * Parse what the poll read, for at most DRAIN_BUDGET_MS; the rest waits for the next check phase,
   * after another poll phase has read and timed whatever arrived meanwhile. Hundreds of streams'
   * chunks of one engine step take several ms to parse, and a first token the kernel had ready
   * while they were parsed was read (and timed) only after all of them.
   */
  private readonly drain = (): void => {
    const batch = this.inbox;
    this.inbox = [];
    const startMs = performance.now();
    let i = 0;
    while (i < batch.length) {
      const d = batch[i++] as Delivery;
      if (d.bytes === null) d.c.fail(d.failure);
      else d.c.onData(d.bytes, d.arrivedMs);
      if (performance.now() - startMs > DRAIN_BUDGET_MS) break;
    }
    // Leftovers go first: they were read before anything delivered since (a connection's order holds).
    if (i < batch.length) this.inbox = batch.slice(i).concat(this.inbox);
    if (this.inbox.length > 0) setImmediate(this.drain);
    else this.drainQueued = false;
  };

  release(c: Connection, reusable: boolean): void {
    if (!reusable || this.closed || c.socket.destroyed) {
      this.forget(c);
      c.socket.destroy();
      return;
    }
    this.free.push(c);
    if (c.idleLimitMs !== null) {
      const t = setTimeout(() => {
        this.forget(c);
        c.socket.destroy();
      }, c.idleLimitMs);
      t.unref();
      this.idleTimers.set(c, t);
    }
  }

  private forget(c: Connection): void {
    this.all.delete(c);
    clearTimeout(this.idleTimers.get(c));
    this.idleTimers.delete(c);
    const i = this.free.indexOf(c);
    if (i >= 0) this.free.splice(i, 1);
  }

  close(): void {
    this.closed = true;
    for (const c of [...this.all]) c.abort();
    this.all.clear();
    this.free.length = 0;
  }
}
