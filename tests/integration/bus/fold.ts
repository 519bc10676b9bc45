// A deterministic stand-in for the aggregator: folds wire messages in stream order into a small
// state that proves exactly-once application (per-publisher contiguous seqs) and order (hash chain).
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeMessage, encodeMessage, messageId, dataSubject, type PublisherKey } from '../../../api/protocol.ts';
import type { Bus, DeliveredMessage, Disposition } from '../../../lib/bus/types.ts';

interface FoldState {
  applied: number;
  duplicates: number;
  gaps: number;
  /** FNV-1a over every applied message's bytes, in application order. */
  hash: number;
  lastSeq: Record<string, number>;
}

export class DeterministicFold {
  state: FoldState = { applied: 0, duplicates: 0, gaps: 0, hash: 0x811c9dc5, lastSeq: {} };

  static restore(bytes: Uint8Array): DeterministicFold {
    const f = new DeterministicFold();
    f.state = JSON.parse(new TextDecoder().decode(bytes)) as FoldState;
    return f;
  }

  serialize(): Uint8Array {
    const sorted = Object.fromEntries(Object.entries(this.state.lastSeq).sort(([a], [b]) => a.localeCompare(b)));
    return new TextEncoder().encode(JSON.stringify({ ...this.state, lastSeq: sorted }));
  }

  /** The consumer handler: malformed or wrong-schema messages go to the dead letters. */
  handle = async (m: DeliveredMessage): Promise<Disposition> => {
    const decoded = decodeMessage(m.data);
    if (!decoded.ok) return 'dead-letter';
    const msg = decoded.message;
    const publisher = `${msg.runId}/${msg.attempt}/${msg.replica}`;
    const last = this.state.lastSeq[publisher] ?? 0;
    if (msg.seq <= last) {
      this.state.duplicates++;
      return 'ack';
    }
    if (msg.seq !== last + 1) this.state.gaps++;
    this.state.lastSeq[publisher] = msg.seq;
    this.state.applied++;
    let h = this.state.hash;
    for (const byte of m.data) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    this.state.hash = h;
    return 'ack';
  };
}

export function publisherKey(namespace: string, experimentUid: string, index: number): PublisherKey {
  return { namespace, experimentUid, runId: `run-${index}`, attempt: 0, replica: 0 };
}

/** One agent: `count` ready messages with seq 1..count, each with its protocol msgId. */
export async function publishAll(bus: Bus, key: PublisherKey, count: number, onEach?: () => void): Promise<void> {
  for (let seq = 1; seq <= count; seq++) {
    const msg = { v: 1 as const, ...key, seq, sentAtMs: 0, simulated: true, kind: 'ready' as const };
    await bus.publish(dataSubject(key, 'ready'), encodeMessage(msg), { msgId: messageId(msg) });
    onEach?.();
  }
}

export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
