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
    throw new CheckpointError(`checkpoint ${key}: unknown format (version byte ${String(bytes[0])}, ${bytes.length} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { lastStreamSeq: Number(view.getBigUint64(1)), state: bytes.slice(HEADER_BYTES) };
}
