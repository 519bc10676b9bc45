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
  /**
   * Body bytes `buf[from, to)` (chunked framing removed), and performance.now() when the read holding them
   * reached JS. The range is valid only during the call (it may be the pool's read arena): copy what is kept.
   */
  onBody(buf: Buffer, from: number, to: number, arrivedMs: number): void;
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

/** Reads copied into one pool's arena before it starts a fresh buffer per read (the queue is rarely this deep). */
const ARENA_BYTES = 1 << 20;

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
    private readonly pool: {
      release(c: Connection, reusable: boolean): void;
      deliver(c: Connection, buf: Buffer, from: number, to: number, arrivedMs: number): void;
      deliverFailure(c: Connection, failure: string): void;
    },
    dataEvents: boolean,
  ) {
    this.socket = socket;
    if (dataEvents) socket.on('data', (b: Buffer) => pool.deliver(this, b, 0, b.length, performance.now()));
    // Through the same queue as the data, so a close never overtakes the last bytes read before it.
    socket.on('error', (e: NodeJS.ErrnoException) => pool.deliverFailure(this, e.code ?? e.message));
    socket.on('close', () => pool.deliverFailure(this, 'connection closed'));
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

  /** Bytes `b[from, to)` read from the socket, parsed now. */
  onData(b: Buffer, from: number, to: number, arrivedMs: number): void {
    if (this.handlers === null) {
      this.socket.destroy(); // bytes nobody asked for: the connection's framing is lost
      return;
    }
    let at = from;
    if (this.inHead) {
      // Once per response: a view (an object) is fine here, unlike per streamed chunk.
      const h = this.readHead(b.subarray(from, to));
      if (h < 0) return;
      at = from + h;
    }
    this.readBody(b, at, to, arrivedMs);
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

  private readBody(b: Buffer, from: number, to: number, arrivedMs: number): void {
    let at = from;
    while (this.handlers !== null && (at < to || (this.body === 'length' && this.left === 0))) {
      if (this.body === 'data' || this.body === 'length' || this.body === 'untilClose') {
        const n = this.body === 'untilClose' ? to - at : Math.min(this.left, to - at);
        if (n > 0) this.handlers.onBody(b, at, at + n, arrivedMs);
        at += n;
        this.left -= n;
        if (this.body === 'data' && this.left === 0) this.body = 'dataEnd';
        else if (this.body === 'length' && this.left === 0) this.done();
      } else {
        at = this.readLine(b, at, to);
      }
    }
  }

  /**
   * Chunk-size lines, the CRLF after each chunk, and trailers, read byte by byte (a few bytes per
   * chunk; no string is made): the size's hex digits are summed as they come.
   */
  private readLine(b: Buffer, at: number, to: number): number {
    let i = at;
    while (i < to) {
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
  /**
   * Reads (and failures) waiting to be parsed, as parallel arrays from `head` to `tail` whose slots are
   * reused: queueing a read allocates nothing (no object per read, so fewer young-generation GCs, each a
   * pause that holds every first token the kernel has ready). A failure has `buf` null and its phrase.
   */
  private readonly qConn: Array<Connection | null> = [];
  private readonly qBuf: Array<Buffer | null> = [];
  private readonly qFrom: number[] = [];
  private readonly qTo: number[] = [];
  private readonly qAt: number[] = [];
  private readonly qFailure: string[] = [];
  private head = 0;
  private tail = 0;
  /** A drain is queued for the check phase (it re-queues itself while reads are left). */
  private drainQueued = false;
  private readonly readBuffer = Buffer.allocUnsafe(64 * 1024);
  /** Queued reads' bytes, back to back from 0; reused from 0 whenever the queue is empty. */
  private readonly arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private arenaAt = 0;

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
      // no stream machinery; the read's time is taken first, and its bytes copied into the queue's arena.
      const onread = {
        buffer: this.readBuffer,
        callback: (n: number, b: Buffer): boolean => {
          const arrivedMs = performance.now();
          if (this.arenaAt + n <= ARENA_BYTES) {
            const from = this.arenaAt;
            b.copy(this.arena, from, 0, n);
            this.arenaAt += n;
            this.deliver(conn, this.arena, from, from + n, arrivedMs);
          } else {
            const bytes = Buffer.allocUnsafe(n); // the arena is full of unparsed reads: this one gets its own
            b.copy(bytes, 0, 0, n);
            this.deliver(conn, bytes, 0, n, arrivedMs);
          }
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
  deliver(c: Connection, buf: Buffer, from: number, to: number, arrivedMs: number): void {
    this.qFailure[this.enqueue(c, buf, from, to, arrivedMs)] = '';
  }

  /** A socket's error or close, queued behind the bytes it read before. */
  deliverFailure(c: Connection, failure: string): void {
    this.qFailure[this.enqueue(c, null, 0, 0, 0)] = failure;
  }

  /** Fills the queue's next slot (its failure phrase is the caller's to set); returns the slot. */
  private enqueue(c: Connection, buf: Buffer | null, from: number, to: number, at: number): number {
    const i = this.tail++;
    this.qConn[i] = c;
    this.qBuf[i] = buf;
    this.qFrom[i] = from;
    this.qTo[i] = to;
    this.qAt[i] = at;
    if (!this.drainQueued) {
      this.drainQueued = true;
      setImmediate(this.drain);
    }
    return i;
  }

  /**
   * Parse what the poll read, for at most DRAIN_BUDGET_MS; the rest waits for the next check phase,
   * after another poll phase has read and timed whatever arrived meanwhile. Hundreds of streams'
   * chunks of one engine step take several ms to parse, and a first token the kernel had ready
   * while they were parsed was read (and timed) only after all of them.
   */
  private readonly drain = (): void => {
    const startMs = performance.now();
    while (this.head < this.tail) {
      const i = this.head++;
      const c = this.qConn[i] as Connection;
      const buf = this.qBuf[i] as Buffer | null;
      this.qConn[i] = null;
      this.qBuf[i] = null;
      if (buf === null) c.fail(this.qFailure[i] as string);
      else c.onData(buf, this.qFrom[i] as number, this.qTo[i] as number, this.qAt[i] as number);
      if (performance.now() - startMs > DRAIN_BUDGET_MS) break;
    }
    // Leftovers stay at the head: they were read before anything queued since (a connection's order holds).
    if (this.head < this.tail) {
      setImmediate(this.drain);
      return;
    }
    this.head = 0;
    this.tail = 0;
    this.arenaAt = 0;
    this.drainQueued = false;
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
