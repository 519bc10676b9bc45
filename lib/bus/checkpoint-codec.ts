// Checkpoint record on the wire (KV value): version byte, last stream sequence (u64 BE), state bytes.
import { CheckpointError } from '../errors.ts';
import type { CheckpointRecord } from './types.ts';

const VERSION = 1;
const HEADER_BYTES = 9;

export function encodeCheckpoint(record: CheckpointRecord): Uint8Array {
  if (!Number.isSafeInteger(record.lastStreamSeq) || record.lastStreamSeq < 0) {
    throw new CheckpointError(`lastStreamSeq must be a non-negative integer, got ${record.lastStreamSeq}`);
  }
  const out = new Uint8Array(HEADER_BYTES + record.state.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, VERSION);
  view.setBigUint64(1, BigInt(record.lastStreamSeq));
  out.set(record.state, HEADER_BYTES);
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array, key: string): CheckpointRecord {
  if (bytes.length < HEADER_BYTES || bytes[0] !== VERSION) {
    throw new CheckpointError(
      `checkpoint ${key}: unknown format (version byte ${String(bytes[0])}, ${bytes.length} bytes)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { lastStreamSeq: Number(view.getBigUint64(1)), state: bytes.slice(HEADER_BYTES) };
}

/**
 * A checkpoint too large for one NATS message lives in the object store; the KV value then holds
 * this pointer (version byte 2, then JSON) to the object with the encoded record, and its digest.
 */
export interface CheckpointPointer {
  object: string;
  bytes: number;
  sha256: string;
}

const POINTER_VERSION = 2;

export function encodeCheckpointPointer(p: CheckpointPointer): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(p));
  const out = new Uint8Array(1 + json.length);
  out[0] = POINTER_VERSION;
  out.set(json, 1);
  return out;
}

/** The pointer in a KV value, or null when the value is an inline record (version 1). */
export function decodeCheckpointPointer(bytes: Uint8Array, key: string): CheckpointPointer | null {
  if (bytes[0] !== POINTER_VERSION) return null;
  try {
    const p = JSON.parse(new TextDecoder().decode(bytes.subarray(1))) as Partial<CheckpointPointer>;
    if (typeof p.object === 'string' && typeof p.bytes === 'number' && typeof p.sha256 === 'string')
      return p as CheckpointPointer;
  } catch {
    // reported below
  }
  throw new CheckpointError(`checkpoint ${key}: unreadable object-store pointer (${bytes.length} bytes)`);
}
