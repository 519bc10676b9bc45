// Pipelined JetStream publishing (issue #16 item 7). A JetStream publish is a core publish with a
// reply subject; the stream's ack comes back there. nats.js's request() pays, per message, an Error
// built for its stack, a timer and a mux lookup, which here cost more CPU than the message itself.
// This sends each publish with its own reply token under one subscription and matches the acks;
// one sweep timer expires the acks that never came. Exactly-once is unchanged: every publish carries
// its Nats-Msg-Id, so a retry after a lost ack is answered as a duplicate.
import {
  createInbox,
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { BusError } from '../errors.ts';

/** The stream refused the message (its limits, a bad subject, no permission): a retry cannot fix it. */
export class PublishRefusedError extends BusError {
  override name = 'PublishRefusedError';
}

/** No ack within the publish timeout, or no stream listening: the same msgId may be sent again. */
export class PublishAckTimeoutError extends BusError {
  override name = 'PublishAckTimeoutError';
}

export interface JsAck {
  seq: number;
  duplicate: boolean;
}

interface Pending {
  subject: string;
  deadlineMs: number;
  resolve: (ack: JsAck) => void;
  reject: (err: Error) => void;
}

const SWEEP_MS = 50;

export class JetStreamPublisher {
  readonly #nc: NatsConnection;
  readonly #inboxPrefix: string | undefined;
  #prefix = '';
  #sub: Subscription | null = null;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection, inboxPrefix?: string) {
    this.#nc = nc;
    this.#inboxPrefix = inboxPrefix;
  }

  /** Publishes `data` with its Nats-Msg-Id and resolves with the stream's ack. */
  publish(subject: string, data: Uint8Array, msgId: string, timeoutMs: number, hdrs?: MsgHdrs): Promise<JsAck> {
    this.#listen();
    const token = (++this.#next).toString(36);
    // A fresh header set takes append (set() first deletes, a measurable cost per message).
    const h = hdrs ?? natsHeaders();
    if (hdrs === undefined) h.append('Nats-Msg-Id', msgId);
    else h.set('Nats-Msg-Id', msgId);
    return new Promise<JsAck>((resolve, reject) => {
      this.#pending.set(token, { subject, deadlineMs: Date.now() + timeoutMs, resolve, reject });
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS).unref();
      try {
        this.#nc.publish(subject, data, { reply: `${this.#prefix}.${token}`, headers: h });
      } catch (err) {
        this.#pending.delete(token);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** The server refused a publish to `subject` (permissions): every pending one to it fails now. */
  refuse(subject: string, err: Error): void {
    for (const [token, p] of this.#pending) {
      if (p.subject !== subject) continue;
      this.#pending.delete(token);
      p.reject(new PublishRefusedError(`publish to ${subject} refused: ${err.message}`, { cause: err }));
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#sub?.unsubscribe();
    this.#sub = null;
    for (const p of this.#pending.values()) p.reject(new PublishAckTimeoutError('connection closed before the ack'));
    this.#pending.clear();
  }

  #listen(): void {
    if (this.#sub !== null && !this.#sub.isClosed()) return;
    this.#prefix = createInbox(this.#inboxPrefix);
    this.#sub = this.#nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, msg) => (err === null ? this.#onAck(msg) : undefined),
    });
  }

  #onAck(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length + 1);
    const p = this.#pending.get(token);
    if (p === undefined) return; // late ack of a publish that already timed out (its retry dedupes)
    this.#pending.delete(token);
    if (msg.headers?.hasError === true) {
      // 503 no responders: no stream captured the subject (yet); a retry may find one.
      p.reject(
        new PublishAckTimeoutError(
          `no stream answered for ${p.subject} (${msg.headers.code} ${msg.headers.description})`,
        ),
      );
      return;
    }
    let body: { seq?: number; duplicate?: boolean; error?: { code?: number; description?: string } };
    try {
      body = msg.json();
    } catch (err) {
      p.reject(new PublishRefusedError(`unreadable ack for ${p.subject}`, { cause: err }));
      return;
    }
    if (body.error !== undefined || typeof body.seq !== 'number') {
      p.reject(
        new PublishRefusedError(
          `stream refused ${p.subject}: ${body.error?.description ?? 'no sequence in the ack'} (${body.error?.code ?? '?'})`,
        ),
      );
      return;
    }
    p.resolve({ seq: body.seq, duplicate: body.duplicate === true });
  }

  #sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.#pending) {
      // Insertion order is deadline order (one timeout per bus): the first one not due ends the sweep.
      if (p.deadlineMs > now) break;
      this.#pending.delete(token);
      p.reject(new PublishAckTimeoutError(`no ack for ${p.subject} within the publish timeout`));
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}
