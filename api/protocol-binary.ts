// The binary batch envelope (ADR 0033): one publisher's wire messages in one bus message without
// base64 and without repeating the publisher's identity in every member.
//
//   magic 'L' 'L' 'B' 0x01 (format 1; JSON starts with '{' or '[', so the forms never collide)
//   varint n, n bytes: JSON of the fields every member shares (v, namespace, experimentUid, runId,
//                      attempt, replica, simulated): exactly those, nothing else
//   varint count (1..MAX_BATCH_MESSAGES), then per member:
//     varint n, n bytes: JSON object of the member's other fields, without `sketches`
//     1 byte: which sketches follow (bit 0 ttftMs, 1 itlMs, 2 e2eMs, 3 tpotMs; only a sketch has any)
//     per sketch, in bit order: varint n (<= SKETCH_FORMAT.maxBytes), n bytes of LogHistogram.serialize()
//   nothing after the last member
//
// The decoder faces hostile tenants: every length is checked against the bytes left before anything
// is sliced or allocated, varints stop at 4 bytes, and any inconsistency is a clean refusal (a string),
// never a throw. It rebuilds the members as the JSON form carries them, except that each sketch is its
// bytes (a view of the bus message, no copy), not base64: the Aggregator decodes bytes either way, so
// turning them into base64 here and back there only cost CPU (ADR 0036, amended). The caller validates
// every member exactly as it validates a JSON message (the wire schema takes bytes or base64).
import { MAX_BATCH_MESSAGES, SKETCH_FORMAT } from './protocol.ts';

export const BINARY_BATCH_MAGIC = Uint8Array.of(0x4c, 0x4c, 0x42, 0x01);
/** The fields the batch's header carries once, for every member. */
export const SHARED_FIELDS = ['v', 'namespace', 'experimentUid', 'runId', 'attempt', 'replica', 'simulated'] as const;
const SHARED = new Set<string>(SHARED_FIELDS);
const SKETCH_KEYS = ['ttftMs', 'itlMs', 'e2eMs', 'tpotMs'] as const;
/** A varint of at most 4 bytes: 2^28 - 1, far above any length a bus message (<= 1 MiB by default) holds. */
const MAX_VARINT_BYTES = 4;

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

type Fields = Record<string, unknown>;

const isSketch = (x: unknown): x is string | Uint8Array => typeof x === 'string' || x instanceof Uint8Array;

/** Whether `data` claims to be a binary batch (its magic's first three bytes; the fourth is the format). */
export function isBinaryBatch(data: Uint8Array): boolean {
  return data.length >= 3 && data[0] === 0x4c && data[1] === 0x4c && data[2] === 0x42;
}

function varintLength(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  let v = n;
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[at++] = v;
  return at;
}

/** Bytes a base64 string decodes to (it is the publisher's own, so well formed). */
function base64Bytes(b64: string): number {
  const pad = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length >>> 2) * 3 - pad;
}

/** A sketch's length on the wire: base64 (the agent's JSON form) decoded, or bytes as they are. */
function sketchLength(sketch: string | Uint8Array): number {
  return typeof sketch === 'string' ? base64Bytes(sketch) : sketch.length;
}

/**
 * One member's bytes (everything after the count), ready to be concatenated by encodeBinaryBatch. On
 * the agent's hot path: one JSON string and one buffer, the sketches decoded straight into it.
 */
export function encodeBinaryMember(message: object): Uint8Array {
  const rest: Fields = {};
  const m = message as Fields;
  for (const k in m) if (!SHARED.has(k) && k !== 'sketches') rest[k] = m[k];
  const json = JSON.stringify(rest);
  const jsonBytes = Buffer.byteLength(json);
  const sketches = (m['sketches'] ?? {}) as Fields;
  let mask = 0;
  let bytes = varintLength(jsonBytes) + jsonBytes + 1;
  for (const [bit, key] of SKETCH_KEYS.entries()) {
    const sketch = sketches[key];
    if (!isSketch(sketch)) continue;
    mask |= 1 << bit;
    const n = sketchLength(sketch);
    bytes += varintLength(n) + n;
  }
  const out = Buffer.allocUnsafe(bytes);
  let at = writeVarint(out, 0, jsonBytes);
  at += out.write(json, at, 'utf8');
  out[at++] = mask;
  for (const key of SKETCH_KEYS) {
    const sketch = sketches[key];
    if (!isSketch(sketch)) continue;
    at = writeVarint(out, at, sketchLength(sketch));
    if (typeof sketch === 'string') at += out.write(sketch, at, 'base64');
    else {
      out.set(sketch, at);
      at += sketch.length;
    }
  }
  if (at !== bytes) throw new RangeError(`binary member: wrote ${at} of ${bytes} bytes (a sketch is not base64)`);
  return out;
}

/** A batch of members (encodeBinaryMember) sharing `shared` (the SHARED_FIELDS of every member). */
export function encodeBinaryBatch(
  shared: Readonly<Record<(typeof SHARED_FIELDS)[number], unknown>>,
  members: readonly Uint8Array[],
): Uint8Array {
  const header = encoder.encode(JSON.stringify(Object.fromEntries(SHARED_FIELDS.map((k) => [k, shared[k]]))));
  let bytes = BINARY_BATCH_MAGIC.length + varintLength(header.length) + header.length + varintLength(members.length);
  for (const m of members) bytes += m.length;
  const out = new Uint8Array(bytes);
  out.set(BINARY_BATCH_MAGIC, 0);
  let at = writeVarint(out, BINARY_BATCH_MAGIC.length, header.length);
  out.set(header, at);
  at = writeVarint(out, at + header.length, members.length);
  for (const m of members) {
    out.set(m, at);
    at += m.length;
  }
  return out;
}

/** Why the bytes are refused: the caller's error text (ProtocolError-worthy, like a JSON refusal). */
class Refusal {
  constructor(readonly error: string) {}
}

class Reader {
  at: number;
  constructor(
    readonly data: Uint8Array,
    at: number,
  ) {
    this.at = at;
  }

  varint(what: string): number {
    let n = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.at >= this.data.length) throw new Refusal(`binary batch: truncated in ${what}`);
      const b = this.data[this.at++] as number;
      n += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) return n;
    }
    throw new Refusal(`binary batch: ${what} is longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /** `n` bytes, checked against what is left before anything is copied (a view, never a new buffer). */
  bytes(n: number, what: string): Uint8Array {
    if (n > this.data.length - this.at) {
      throw new Refusal(`binary batch: ${what} says ${n} bytes, ${this.data.length - this.at} are left`);
    }
    const out = this.data.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  json(what: string): Fields {
    const raw = this.bytes(this.varint(`${what}'s length`), what);
    let parsed: unknown;
    try {
      parsed = JSON.parse(utf8.decode(raw));
    } catch (err) {
      throw new Refusal(`binary batch: ${what} is not JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Refusal(`binary batch: ${what} is not a JSON object`);
    }
    return parsed as Fields;
  }
}

/** The shared header: exactly the SHARED_FIELDS (their values are checked with each member). */
function readShared(r: Reader): Fields {
  const shared = r.json('the shared header');
  const keys = Object.keys(shared);
  if (keys.length !== SHARED_FIELDS.length || !SHARED_FIELDS.every((k) => Object.hasOwn(shared, k))) {
    throw new Refusal(`binary batch: the shared header must hold exactly ${SHARED_FIELDS.join(', ')}`);
  }
  return shared;
}

function readMember(r: Reader, shared: Fields, i: number): Fields {
  const what = `member ${i}`;
  const own = r.json(what);
  for (const k of [...SHARED_FIELDS, 'sketches', '__proto__']) {
    if (Object.hasOwn(own, k)) throw new Refusal(`binary batch: ${what} carries ${k}, which it must not`);
  }
  const mask = r.bytes(1, `${what}'s sketch mask`)[0] as number;
  if (mask > 0x0f) throw new Refusal(`binary batch: ${what}'s sketch mask ${mask} names unknown sketches`);
  // `own` is JSON.parse's fresh object with none of the shared keys: completing it costs less than a copy.
  const message = own;
  for (const k of SHARED_FIELDS) message[k] = shared[k];
  if (own['kind'] !== 'sketch') {
    if (mask !== 0) throw new Refusal(`binary batch: ${what} is not a sketch message but carries sketches`);
    return message;
  }
  const sketches: Fields = {};
  for (const [bit, key] of SKETCH_KEYS.entries()) {
    if ((mask & (1 << bit)) === 0) continue;
    const n = r.varint(`${what}'s ${key} length`);
    if (n > SKETCH_FORMAT.maxBytes) {
      throw new Refusal(`binary batch: ${what}'s ${key} is ${n} bytes, at most ${SKETCH_FORMAT.maxBytes} allowed`);
    }
    // A view of the bus message's memory, no copy; the Aggregator decodes and checks it before it keeps anything.
    sketches[key] = r.bytes(n, `${what}'s ${key}`);
  }
  message['sketches'] = sketches;
  return message;
}

/**
 * The members of a binary batch as the JSON form would carry them (not yet validated), or why the
 * bytes are refused. Never throws; allocates at most in proportion to `data`.
 */
export function parseBinaryBatch(data: Uint8Array): { ok: true; members: Fields[] } | { ok: false; error: string } {
  try {
    if (data.length < BINARY_BATCH_MAGIC.length || data[3] !== BINARY_BATCH_MAGIC[3]) {
      return { ok: false, error: `binary batch: format ${data[3] ?? 'missing'} is not one this consumer reads (1)` };
    }
    const r = new Reader(data, BINARY_BATCH_MAGIC.length);
    const shared = readShared(r);
    const count = r.varint('the member count');
    if (count < 1 || count > MAX_BATCH_MESSAGES) {
      return { ok: false, error: `a batch holds 1 to ${MAX_BATCH_MESSAGES} messages, this one ${count}` };
    }
    // Each member takes at least 2 bytes: a count the bytes cannot hold is refused before the loop.
    if (count * 2 > data.length - r.at) {
      return { ok: false, error: `binary batch: ${count} members cannot fit in ${data.length - r.at} bytes` };
    }
    const members: Fields[] = [];
    for (let i = 0; i < count; i++) members.push(readMember(r, shared, i));
    if (r.at !== data.length) {
      return { ok: false, error: `binary batch: ${data.length - r.at} bytes after the last member` };
    }
    return { ok: true, members };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, error: err.error };
    throw err;
  }
}
