// The consumer's hot path (ADR 0027): a sketch slice checked field by field without the schema
// library, which cost as much as decoding the slice's sketches. It accepts a message only when it
// has exactly the fields of SketchMessageSchema and passes every one of the schema's checks, and then
// the message is what the schema would return (the same fields and values). Anything else, well
// formed or not, returns null and goes through the schema, whose error names the field. Property
// tested against the schema (tests/unit/api/protocol-fast.test.ts).
import { MAP_KEY_PATTERN, PROTOCOL_VERSION, type SketchMessage } from './protocol.ts';

/** The fields of a sketch message, the schema's: a message with any other is left to the schema (which drops it). */
const SKETCH_FIELDS = [
  'v',
  'namespace',
  'experimentUid',
  'runId',
  'attempt',
  'replica',
  'seq',
  'sentAtMs',
  'simulated',
  'kind',
  'slice',
  'sliceStartMs',
  'sliceEndMs',
  'requestsOk',
  'requestsFailed',
  'errorClasses',
  'inputTokens',
  'outputTokens',
  'sketches',
] as const;
const SKETCH_METRICS = new Set(['ttftMs', 'itlMs', 'e2eMs', 'tpotMs']);
const TIME_MAX_MS = 1e15;
const MAX_ERROR_CLASSES = 64;

type Fields = Record<string, unknown>;

const isObject = (x: unknown): x is Fields => typeof x === 'object' && x !== null && !Array.isArray(x);
const isName = (x: unknown): boolean => typeof x === 'string' && x.length > 0;
const isCount = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 0;
const isTime = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x <= TIME_MAX_MS;

function ownFieldCount(o: Fields): number {
  let n = 0;
  for (const k in o) if (Object.hasOwn(o, k)) n++;
  return n;
}

function envelopeOk(m: Fields): boolean {
  if (m['v'] !== PROTOCOL_VERSION || m['kind'] !== 'sketch' || typeof m['simulated'] !== 'boolean') return false;
  if (!isName(m['namespace']) || !isName(m['experimentUid']) || !isName(m['runId'])) return false;
  if (!isCount(m['attempt']) || !isCount(m['replica']) || !isCount(m['seq']) || (m['seq'] as number) < 1) return false;
  return isTime(m['sentAtMs']);
}

function countsOk(m: Fields): boolean {
  if (!isCount(m['slice']) || !isCount(m['requestsOk']) || !isCount(m['requestsFailed'])) return false;
  if (!isCount(m['inputTokens']) || !isCount(m['outputTokens'])) return false;
  const start = m['sliceStartMs'];
  const end = m['sliceEndMs'];
  return isTime(start) && isTime(end) && (end as number) >= (start as number);
}

/** Error classes by name: the schema's key pattern and counts, at most 64, and never a `__proto__` key. */
function errorClassesOk(e: unknown): boolean {
  if (!isObject(e) || Object.getPrototypeOf(e) !== Object.prototype || Object.hasOwn(e, '__proto__')) return false;
  let n = 0;
  for (const k in e) {
    if (!Object.hasOwn(e, k)) return false;
    if (++n > MAX_ERROR_CLASSES || !MAP_KEY_PATTERN.test(k) || !isCount(e[k])) return false;
  }
  return true;
}

/** base64 (JSON) or the bytes a binary batch carried: the schema's two forms. */
const isWireSketch = (x: unknown): boolean => typeof x === 'string' || x instanceof Uint8Array;

/** Only the four metrics, each a string or bytes when present. */
function sketchesOk(s: unknown): boolean {
  if (!isObject(s) || Object.getPrototypeOf(s) !== Object.prototype) return false;
  for (const k in s) {
    if (!Object.hasOwn(s, k) || !SKETCH_METRICS.has(k) || !isWireSketch(s[k])) return false;
  }
  return true;
}

/** `raw` as a SketchMessage when it is one exactly as the schema accepts it; null: ask the schema. */
export function fastSketchMessage(raw: unknown): SketchMessage | null {
  if (!isObject(raw) || raw['kind'] !== 'sketch' || Object.getPrototypeOf(raw) !== Object.prototype) return null;
  if (ownFieldCount(raw) !== SKETCH_FIELDS.length) return null;
  for (const f of SKETCH_FIELDS) if (!Object.hasOwn(raw, f)) return null;
  if (!envelopeOk(raw) || !countsOk(raw)) return null;
  return errorClassesOk(raw['errorClasses']) && sketchesOk(raw['sketches']) ? (raw as SketchMessage) : null;
}
