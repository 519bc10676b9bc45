// A non-allocating reader of one streamed completion chunk (an SSE `data:` payload, as bytes): says
// whether choices[0] carries text and whether it has a finish_reason, which is all the client needs
// from most chunks. JSON.parse of every chunk made ~10 short-lived objects per token and so most of the
// client's garbage (and its GC pauses, which land on whichever first token is being read). The scan
// validates the whole payload as JSON and answers only for the plain shape; anything else (an error,
// usage, a key written with escapes, an unusual type, nesting over MAX_DEPTH, invalid JSON) returns
// SCAN_FALLBACK and the caller parses the payload with JSON.parse exactly as before.

/** choices[0] has non-empty text (completions: `text`, chat: `delta.content`). */
export const SCAN_TEXT = 1;
/** choices[0].finish_reason is present and not null. */
export const SCAN_FINISHED = 2;
/** Not the plain shape (or not valid JSON): parse it with JSON.parse. */
export const SCAN_FALLBACK = -1;

const MAX_DEPTH = 32;
const QUOTE = 34;
const BACKSLASH = 92;

// Value kinds the scanner reports.
const INVALID = -1;
const STR_EMPTY = 0;
const STR = 1;
const NULL = 2;
const OTHER = 3; // number, true, false
const OBJ = 4;
const ARR = 5;

// Keys the scanner watches, as bytes.
const K_CHOICES = Buffer.from('choices');
const K_USAGE = Buffer.from('usage');
const K_ERROR = Buffer.from('error');
const K_TEXT = Buffer.from('text');
const K_DELTA = Buffer.from('delta');
const K_CONTENT = Buffer.from('content');
const K_FINISH = Buffer.from('finish_reason');

// Scanner state: module-level so a scan allocates nothing (one scan runs at a time: no re-entry).
let b: Buffer = Buffer.alloc(0);
let i = 0;
let end = 0;
/** A key with a backslash was seen: its decoded name is unknown here. */
let escapedKey = false;
/** Something outside the plain shape: the caller must JSON.parse. */
let fallback = false;

/** The byte at `k`, or -1 past the payload's end (the buffer may hold the next event after it). */
function at(k: number): number {
  return k < end ? (b[k] as number) : -1;
}

function ws(): void {
  while (i < end) {
    const c = b[i] as number;
    if (c === 32 || c === 9 || c === 10 || c === 13) i++;
    else return;
  }
}

/** The last string skipped had an escape sequence. */
let lastStrEscaped = false;
/** At an opening quote: skip the string; STR_EMPTY, STR or INVALID. */
function str(): number {
  i++; // opening quote
  const from = i;
  lastStrEscaped = false;
  while (i < end) {
    const c = b[i] as number;
    if (c === QUOTE) {
      i++;
      return i - 1 === from ? STR_EMPTY : STR;
    }
    if (c < 0x20) return INVALID; // JSON.parse rejects raw control characters in strings
    if (c === BACKSLASH) {
      lastStrEscaped = true;
      if (!escape()) return INVALID;
      continue;
    }
    i++;
  }
  return INVALID;
}

/** At a backslash in a string: skip the escape sequence; false if JSON has no such escape. */
function escape(): boolean {
  const e = at(i + 1);
  if (e === 117) {
    // \uXXXX
    for (let k = 2; k < 6; k++) if (!isHex(at(i + k))) return false;
    i += 6;
    return true;
  }
  i += 2;
  return e === 34 || e === 92 || e === 47 || e === 98 || e === 102 || e === 110 || e === 114 || e === 116;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

function digits(): number {
  const from = i;
  while (i < end && (b[i] as number) >= 48 && (b[i] as number) <= 57) i++;
  return i - from;
}

function num(): number {
  if (at(i) === 45) i++; // -
  if (at(i) === 48) i++;
  else if (digits() === 0) return INVALID;
  if (at(i) === 46) {
    i++;
    if (digits() === 0) return INVALID;
  }
  if (at(i) === 101 || at(i) === 69) {
    i++;
    if (at(i) === 43 || at(i) === 45) i++;
    if (digits() === 0) return INVALID;
  }
  return OTHER;
}

function word(w: string, kind: number): number {
  for (let k = 0; k < w.length; k++) if (at(i + k) !== w.charCodeAt(k)) return INVALID;
  i += w.length;
  return kind;
}

/**
 * Skip one value (after whitespace). `role` says what is being watched inside it: 0 nothing, 1 the
 * top-level chunk, 2 the choices array, 3 choices[0], 4 choices[0].delta.
 */
function value(depth: number, role: number): number {
  ws();
  if (i >= end) return INVALID;
  const c = at(i);
  if (c === QUOTE) return str();
  if (c === 123) return obj(depth + 1, role);
  if (c === 91) return arr(depth + 1, role);
  if (c === 116) return word('true', OTHER);
  if (c === 102) return word('false', OTHER);
  if (c === 110) return word('null', NULL);
  if (c === 45 || (c >= 48 && c <= 57)) return num();
  return INVALID;
}

let text = false;
let finished = false;
let apiChat = false;

function keyIs(k: Buffer, from: number, to: number): boolean {
  // A JS loop: Buffer.compare is a native call, several times dearer than these few bytes.
  if (to - from !== k.length) return false;
  for (let j = 0; j < k.length; j++) if (b[from + j] !== k[j]) return false;
  return true;
}

function obj(depth: number, role: number): number {
  if (depth > MAX_DEPTH) return INVALID;
  i++; // {
  ws();
  if (at(i) === 125) {
    i++;
    return OBJ;
  }
  for (;;) {
    ws();
    if (at(i) !== QUOTE) return INVALID;
    const kFrom = i + 1;
    if (str() === INVALID) return INVALID;
    const kTo = i - 1;
    if (lastStrEscaped) escapedKey = true;
    ws();
    if (at(i) !== 58) return INVALID; // :
    i++;
    if (!member(depth, role, kFrom, kTo)) return INVALID;
    ws();
    if (at(i) === 44) {
      i++;
      continue;
    }
    if (at(i) === 125) {
      i++;
      return OBJ;
    }
    return INVALID;
  }
}

/** One member's value, watched when it is one the client reads. False: invalid JSON. */
function member(depth: number, role: number, kFrom: number, kTo: number): boolean {
  if (role === 1) return topMember(depth, kFrom, kTo);
  if (role === 3) return choiceMember(depth, kFrom, kTo);
  if (role === 4 && keyIs(K_CONTENT, kFrom, kTo)) return textValue(value(depth, 0));
  return value(depth, 0) !== INVALID;
}

/** A member of the chunk itself. */
function topMember(depth: number, kFrom: number, kTo: number): boolean {
  if (keyIs(K_ERROR, kFrom, kTo)) fallback = true;
  if (keyIs(K_CHOICES, kFrom, kTo)) {
    text = false; // a repeated key: JSON.parse keeps the last
    finished = false;
    const k = value(depth, 2);
    if (k !== ARR) fallback = true;
    return k !== INVALID;
  }
  if (keyIs(K_USAGE, kFrom, kTo)) {
    const k = value(depth, 0);
    if (k !== NULL) fallback = true;
    return k !== INVALID;
  }
  return value(depth, 0) !== INVALID;
}

/** A member of choices[0]. */
function choiceMember(depth: number, kFrom: number, kTo: number): boolean {
  if (keyIs(K_FINISH, kFrom, kTo)) {
    const k = value(depth, 0);
    finished = k !== NULL;
    return k !== INVALID;
  }
  if (!apiChat && keyIs(K_TEXT, kFrom, kTo)) return textValue(value(depth, 0));
  if (apiChat && keyIs(K_DELTA, kFrom, kTo)) {
    text = false;
    const k = value(depth, 4);
    if (k !== OBJ) fallback = true;
    return k !== INVALID;
  }
  return value(depth, 0) !== INVALID;
}

function textValue(k: number): boolean {
  if (k === STR) text = true;
  else if (k === STR_EMPTY || k === NULL) text = false;
  else fallback = true;
  return k !== INVALID;
}

function arr(depth: number, role: number): number {
  if (depth > MAX_DEPTH) return INVALID;
  i++; // [
  ws();
  if (at(i) === 93) {
    i++;
    return ARR;
  }
  for (let n = 0; ; n++) {
    const k = value(depth, role === 2 && n === 0 ? 3 : 0);
    if (k === INVALID) return INVALID;
    if (role === 2 && n === 0 && k !== OBJ) fallback = true;
    ws();
    if (at(i) === 44) {
      i++;
      continue;
    }
    if (at(i) === 93) {
      i++;
      return ARR;
    }
    return INVALID;
  }
}

/**
 * What choices[0] of the chunk in `buf[start, end)` carries: SCAN_TEXT | SCAN_FINISHED bits, or
 * SCAN_FALLBACK when JSON.parse must read it (the answer then is whatever JSON.parse's reading gives).
 */
export function scanChunk(buf: Buffer, start: number, stop: number, chat: boolean): number {
  b = buf;
  i = start;
  end = stop;
  escapedKey = false;
  fallback = false;
  text = false;
  finished = false;
  apiChat = chat;
  ws();
  const top = at(i) === 123 ? obj(1, 1) : INVALID;
  ws();
  const ok = top === OBJ && i === end && !escapedKey && !fallback;
  b = EMPTY; // hold no reference to the caller's buffer
  if (!ok) return SCAN_FALLBACK;
  return (text ? SCAN_TEXT : 0) | (finished ? SCAN_FINISHED : 0);
}

const EMPTY = Buffer.alloc(0);
