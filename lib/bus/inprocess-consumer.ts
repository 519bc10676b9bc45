// In-order delivery for the in-process bus: one message at a time, retried in place when the
// handler throws, resuming right after the checkpointed stream sequence.
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.ts';
import type { ConsumeOptions } from './types.ts';

export interface StoredMessage {
  subject: string;
  data: Uint8Array;
  streamSeq: number;
  headers?: Record<string, string>;
}

/** Deliveries between yields to the event loop, so publishers keep running beside a busy consumer. */
const YIELD_EVERY = 64;

export interface ConsumptionDeps {
  next(filter: string, afterSeq: number): StoredMessage | undefined;
  waitForPublish(signal: AbortSignal): Promise<void>;
  deadLetter(m: StoredMessage): void;
  retryInitialMs: number;
  retryMaxMs: number;
  log: Logger;
}

export class InProcessConsumption {
  readonly #opts: ConsumeOptions;
  readonly #deps: ConsumptionDeps;
  readonly #abort = new AbortController();
  #lastApplied: number;
  #handling = false;
  #loop: Promise<void> = Promise.resolve();

  constructor(opts: ConsumeOptions, deps: ConsumptionDeps) {
    this.#opts = opts;
    this.#deps = deps;
    // The checkpoint is the truth, as with the NATS bus: the durable restarts right after it.
    this.#lastApplied = opts.afterStreamSeq;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async idle(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      if (!this.#handling && this.#deps.next(this.#opts.filterSubject, this.#lastApplied) === undefined) return;
      await sleep(1);
    }
  }

  async #run(): Promise<void> {
    for (let delivered = 0; !this.#abort.signal.aborted; delivered++) {
      const m = this.#deps.next(this.#opts.filterSubject, this.#lastApplied);
      if (m === undefined) {
        await this.#deps.waitForPublish(this.#abort.signal);
        continue;
      }
      await this.#apply(m);
      if (delivered % YIELD_EVERY === YIELD_EVERY - 1) await nextTurn();
    }
  }

  async #apply(m: StoredMessage): Promise<void> {
    this.#handling = true;
    try {
      for (let deliveryCount = 1; !this.#abort.signal.aborted || deliveryCount === 1; deliveryCount++) {
        try {
          const disposition = await this.#opts.handler({
            subject: m.subject,
            data: m.data,
            streamSeq: m.streamSeq,
            deliveryCount,
            ...(m.headers === undefined ? {} : { headers: m.headers }),
          });
          if (disposition === 'dead-letter') this.#deps.deadLetter(m);
          this.#lastApplied = m.streamSeq;
          return;
        } catch (err) {
          this.#deps.log.warn(
            { err, subject: m.subject, streamSeq: m.streamSeq, deliveryCount },
            'handler failed; will redeliver',
          );
          const pauseMs = Math.min(this.#deps.retryInitialMs * 2 ** (deliveryCount - 1), this.#deps.retryMaxMs);
          await sleep(pauseMs, undefined, { signal: this.#abort.signal }).catch(() => undefined);
        }
      }
    } finally {
      this.#handling = false;
    }
  }
}
