// Publishes this agent's wire messages in order, with contiguous per-publisher sequence numbers:
// seq 1, 2, 3 ... over all kinds, so the aggregator can prove it saw everything.
import {
  PROTOCOL_VERSION, dataSubject, encodeMessage, messageId,
  type MessageKind, type PublisherKey, type SummaryMessage, type WireMessage,
} from '../api/protocol.ts';
import { BusError } from '../lib/errors.ts';
import type { Bus } from '../lib/bus/types.ts';
import { natsTraceHeaders } from '../lib/telemetry/index.ts';

type Body<K extends MessageKind> = Omit<Extract<WireMessage, { kind: K }>, 'v' | 'kind' | 'seq' | 'sentAtMs' | 'simulated' | keyof PublisherKey>;

export type CountsByKind = SummaryMessage['countsByKind'];

export class Publisher {
  private seq = 0;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** After `summary` or `aborted` nothing more is sent: they are this publisher's last word. */
  private sealed = false;
  readonly counts: CountsByKind = { hello: 0, ready: 0, sketch: 0, telemetry: 0 };
  private readonly bus: Bus;
  private readonly key: PublisherKey;
  private readonly simulated: boolean;

  constructor(bus: Bus, key: PublisherKey, simulated: boolean) {
    this.bus = bus;
    this.key = key;
    this.simulated = simulated;
  }

  /** Messages handed to publish so far (the next one's seq is this + 1). */
  get sent(): number {
    return this.seq;
  }

  /**
   * Assign the next seq now (call order = seq order) and publish after every earlier message has
   * been acknowledged. Resolves when this message is stored.
   */
  publish<K extends MessageKind>(kind: K, body: Body<K>): Promise<void> {
    if (this.sealed) return Promise.resolve();
    if (kind === 'summary' || kind === 'aborted') this.sealed = true;
    this.seq++;
    if (kind in this.counts) this.counts[kind as keyof CountsByKind]++;
    const message = { v: PROTOCOL_VERSION, ...this.key, seq: this.seq, sentAtMs: Date.now(), simulated: this.simulated, kind, ...body } as WireMessage;
    // Captured now: the span active at the call, not whenever the chain gets to this message.
    const trace = natsTraceHeaders();
    const next = this.chain.then(async () => {
      if (this.failure !== undefined) throw this.failure;
      try {
        await this.bus.publish(dataSubject(this.key, kind), encodeMessage(message), { msgId: messageId(message), headers: trace });
      } catch (err) {
        this.failure = err instanceof BusError ? err : new BusError(`publishing ${kind} #${message.seq} failed: ${(err as Error).message}`, { cause: err });
        throw this.failure;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Resolves once everything handed over so far is stored; throws the first publish failure. */
  async drain(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }
}
