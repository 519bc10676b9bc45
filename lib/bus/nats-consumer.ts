// One durable pull consumer per experiment, driven strictly in stream order.
//
// Ordering and exactly-once application rest on three rules:
// 1. The checkpoint is the truth: each session (re)creates the durable at lastApplied + 1, so a
//    restarted aggregator neither skips nor re-applies, and stale pending acks vanish with the old
//    consumer instead of being redelivered 30 s later.
// 2. Any disconnect ends the session. Within one connection first deliveries arrive in stream order,
//    so `seq <= lastApplied` can only be a redelivery of something already applied: ack and skip.
//    A gap in the consumer's delivery sequence also ends the session, for the same reason.
// 3. A handler that throws is retried in place (with backoff) before anything later is delivered,
//    which is "redelivery" as the handler sees it, without breaking order.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  DeliverPolicy,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Logger } from '../log.ts';
import type { NatsBusOptions } from './nats-options.ts';
import type { ConsumeOptions, Consumption } from './types.ts';
import { traceHeadersOf } from './nats-trace-headers.ts';

const NANOS_PER_SECOND = 1_000_000_000;
const IDLE_POLL_MS = 20;
const IDLE_FALLBACK_MS = 2000;
/**
 * Acks are cumulative (AckPolicy.All): one ack covers every earlier delivery, so the consumer acks
 * after this many applied messages, when nothing more is pending, or after ACK_DELAY_MS, instead of
 * one ack message (and one socket write) per message. Order and exactly-once never rested on acks:
 * each session restarts at lastApplied + 1 (rule 1).
 */
const ACK_EVERY = 64;
const ACK_DELAY_MS = 100;

export interface ConsumerContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  streamName: string;
  settings: NatsBusOptions['consumer'];
  log: Logger;
  /** Move one message to the dead-letter stream; throws if it could not be stored. */
  deadLetter(m: JsMsg): Promise<void>;
}

export class NatsConsumption implements Consumption {
  readonly #ctx: ConsumerContext;
  readonly #opts: ConsumeOptions;
  readonly #abort = new AbortController();
  #lastApplied: number;
  #handling = false;
  /** `pending` of the last applied delivery: matching messages the server had not yet sent. */
  #pendingBehindLast = -1;
  #messages: ConsumerMessages | null = null;
  #loop: Promise<void> = Promise.resolve();

  constructor(ctx: ConsumerContext, opts: ConsumeOptions) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.#lastApplied = opts.afterStreamSeq;
  }

  get durable(): string {
    return this.#opts.durable;
  }

  /** Creates the durable once (so errors such as missing permissions reach the caller), then runs. */
  async start(): Promise<void> {
    await this.#recreateConsumer();
    this.#loop = this.#run(true);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    // stop(), not close(): close() resolves only once the for-await loop has drained the iterator.
    this.#messages?.stop();
    await this.#loop;
  }

  /**
   * Consumer info is expensive on the server (nats-server 2.9 computes num_pending by scanning), and
   * polling it stalls deliveries: ask only when the last applied message said nothing was pending
   * behind it, on the first call, and every 2 s as a fallback.
   */
  async idle(): Promise<void> {
    const { jsm, streamName } = this.#ctx;
    let lastAskedMs = 0;
    while (!this.#abort.signal.aborted) {
      const maybeIdle = !this.#handling && this.#pendingBehindLast === 0;
      if (maybeIdle || Date.now() - lastAskedMs >= IDLE_FALLBACK_MS) {
        lastAskedMs = Date.now();
        try {
          const info = await jsm.consumers.info(streamName, this.#opts.durable);
          if (info.num_pending === 0 && info.num_ack_pending === 0 && !this.#handling) return;
        } catch {
          // Between sessions (reconnect, re-creation) the consumer may be briefly missing: keep asking.
        }
      }
      await this.#pause(IDLE_POLL_MS);
    }
  }

  async #run(created: boolean): Promise<void> {
    const { retryInitialMs, retryMaxMs } = this.#ctx.settings;
    let backoffMs = retryInitialMs;
    let fresh = created;
    while (!this.#abort.signal.aborted) {
      try {
        if (!fresh) await this.#recreateConsumer();
        fresh = false;
        await this.#session();
        backoffMs = retryInitialMs;
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        this.#ctx.log.warn({ err, durable: this.#opts.durable }, 'consumer session failed; retrying');
        await this.#pause(backoffMs);
        backoffMs = Math.min(backoffMs * 2, retryMaxMs);
      }
    }
  }

  async #recreateConsumer(): Promise<void> {
    const { jsm, streamName, settings } = this.#ctx;
    const durable = this.#opts.durable;
    await jsm.consumers.delete(streamName, durable).catch(() => false);
    const start = this.#lastApplied + 1;
    await jsm.consumers.add(streamName, {
      durable_name: durable,
      filter_subject: this.#opts.filterSubject,
      ack_policy: AckPolicy.All,
      ack_wait: settings.ackWaitSeconds * NANOS_PER_SECOND,
      max_ack_pending: settings.maxAckPending,
      max_deliver: -1,
      ...(start <= 1
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start }),
    });
  }

  async #session(): Promise<void> {
    const { js, streamName, settings } = this.#ctx;
    const consumer = await js.consumers.get(streamName, this.#opts.durable);
    const messages = await consumer.consume({ max_messages: settings.maxAckPending, expires: 5000 });
    this.#messages = messages;
    if (this.#abort.signal.aborted) messages.stop();
    let lastDeliverySeq = 0;
    const acks = new CumulativeAcks();
    try {
      for await (const m of messages) {
        if (this.#abort.signal.aborted) break;
        // The consumer numbers every delivery (redeliveries too) 1, 2, 3...: a jump means a delivery
        // never reached us, and what follows might overtake it. Start over from lastApplied.
        if (m.info.deliverySequence !== ++lastDeliverySeq) {
          this.#ctx.log.warn(
            { expected: lastDeliverySeq, got: m.info.deliverySequence },
            'delivery gap; re-creating the consumer',
          );
          break;
        }
        if (m.info.streamSequence > this.#lastApplied) await this.#apply(m);
        acks.done(m);
      }
    } finally {
      acks.flush();
      this.#messages = null;
      messages.stop();
    }
  }

  async #apply(m: JsMsg): Promise<void> {
    const { retryInitialMs, retryMaxMs } = this.#ctx.settings;
    this.#handling = true;
    try {
      for (let retries = 0; !this.#abort.signal.aborted || retries === 0; retries++) {
        try {
          await this.#deliver(m, retries);
          this.#lastApplied = m.info.streamSequence;
          this.#pendingBehindLast = m.info.pending;
          return;
        } catch (err) {
          this.#ctx.log.warn(
            { err, subject: m.subject, streamSeq: m.info.streamSequence, retries },
            'handler failed; will redeliver',
          );
          m.working();
          await this.#pause(Math.min(retryInitialMs * 2 ** retries, retryMaxMs));
        }
      }
    } finally {
      this.#handling = false;
    }
  }

  async #deliver(m: JsMsg, retries: number): Promise<void> {
    const disposition = await this.#opts.handler({
      subject: m.subject,
      data: m.data,
      streamSeq: m.info.streamSequence,
      deliveryCount: m.info.deliveryCount + retries,
      ...traceHeadersOf(m),
    });
    if (disposition === 'dead-letter') await this.#ctx.deadLetter(m);
  }

  /** Called by the bus on every disconnect: buffered deliveries from before it are not trusted for order. */
  interrupt(): void {
    this.#messages?.stop();
  }

  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#abort.signal }).catch(() => undefined);
  }
}

/**
 * Acks the last handled delivery every ACK_EVERY messages, at the end of the turn when nothing is pending,
 * or after ACK_DELAY_MS.
 */
class CumulativeAcks {
  #last: JsMsg | null = null;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;

  done(m: JsMsg): void {
    this.#last = m;
    if (++this.#count >= ACK_EVERY) this.flush();
    else if (m.info.pending === 0) {
      // Caught up: ack once the deliveries already read from the socket are handled (they arrive
      // together), one ack and one socket write for all of them instead of one per delivery.
      this.#immediate ??= setImmediate(() => this.flush());
    } else this.#timer ??= setTimeout(() => this.flush(), ACK_DELAY_MS);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearImmediate(this.#immediate);
    this.#immediate = undefined;
    this.#last?.ack();
    this.#last = null;
    this.#count = 0;
  }
}
