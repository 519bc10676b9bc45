// A write-only Bus for running the agent without a broker (no LLEM_NATS_URL): every wire message
// becomes one JSON line on a stream. Enough for `llem agent` on a single GPU box with start.mode
// "immediate"; everything else in the Bus interface belongs to a real bus and says so.
import type { Writable } from 'node:stream';
import { dataSubject, messageId, type WireMessage } from '../api/protocol.ts';
import type { Bus, CheckpointRecord, Consumption, ControlSubscription, PublishAck } from '../lib/bus/types.ts';
import { BusError } from '../lib/errors.ts';
import { isBinaryBatch, parseBinaryBatch } from '../api/protocol-binary.ts';

export class JsonLinesBus implements Bus {
  private seq = 0;
  private readonly out: Writable;

  constructor(out: Writable) {
    this.out = out;
  }

  async ensureLayout(): Promise<void> {}

  async publish(subject: string, data: Uint8Array, opts: { msgId: string }): Promise<PublishAck> {
    if (isBinaryBatch(data)) return this.writeBinaryBatch(data);
    const message: unknown = JSON.parse(Buffer.from(data).toString('utf8'));
    if (!Array.isArray(message)) {
      this.out.write(JSON.stringify({ subject, msgId: opts.msgId, message }) + '\n');
      return { streamSeq: ++this.seq, duplicate: false };
    }
    // A JSON batch (ADR 0021) is still one line per wire message, each under its own kind's subject and id.
    for (const m of message as WireMessage[]) {
      this.out.write(JSON.stringify({ subject: dataSubject(m, m.kind), msgId: messageId(m), message: m }) + '\n');
    }
    return { streamSeq: ++this.seq, duplicate: false };
  }

  /** A binary batch (ADR 0033) is one line per wire message too, its fields in the Publisher's order. */
  private writeBinaryBatch(data: Uint8Array): PublishAck {
    const parsed = parseBinaryBatch(data);
    if (!parsed.ok) throw new BusError(`the publisher's batch does not decode: ${parsed.error}`);
    for (const member of parsed.members) {
      const { v, namespace, experimentUid, runId, attempt, replica, seq, sentAtMs, simulated, kind, ...body } = member;
      const m = { v, namespace, experimentUid, runId, attempt, replica, seq, sentAtMs, simulated, kind, ...body };
      const wire = m as unknown as WireMessage;
      this.out.write(
        JSON.stringify({ subject: dataSubject(wire, wire.kind), msgId: messageId(wire), message: m }) + '\n',
      );
    }
    return { streamSeq: ++this.seq, duplicate: false };
  }

  async subscribeControl(_subject: string, _handler: (data: Uint8Array) => void): Promise<ControlSubscription> {
    return { unsubscribe: async () => undefined };
  }

  private unsupported(what: string): never {
    throw new BusError(`${what} needs a real bus (set LLEM_NATS_URL); the JSON-lines bus only publishes`);
  }

  consume(): Promise<Consumption> {
    return this.unsupported('consume');
  }
  publishControl(): Promise<void> {
    return this.unsupported('publishControl');
  }
  putCheckpoint(_key: string, _record: CheckpointRecord): Promise<void> {
    return this.unsupported('putCheckpoint');
  }
  getCheckpoint(): Promise<CheckpointRecord | null> {
    return this.unsupported('getCheckpoint');
  }
  putArtifact(): Promise<void> {
    return this.unsupported('putArtifact');
  }
  getArtifact(): Promise<Uint8Array | null> {
    return this.unsupported('getArtifact');
  }
  deleteExperiment(): Promise<void> {
    return this.unsupported('deleteExperiment');
  }
  deadLettered(): number {
    return 0;
  }
  async close(): Promise<void> {}
}
