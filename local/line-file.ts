// Newline-delimited JSON files read and appended without holding the whole file (ADR 0025): the per-run
// log (runs.ndjson), the final run results (run-results.ndjson) and the state journal all use them.
import { closeSync, fsyncSync, openSync, readSync, statSync, truncateSync, writeSync } from 'node:fs';

const CHUNK_BYTES = 1 << 16;

export interface Line {
  text: string;
  /** Byte offset of the line's first byte, and its length without the newline. */
  offset: number;
  length: number;
  /** False for a last line with no newline: an append cut short by a crash. */
  terminated: boolean;
}

/** Calls `each` for every line, in order (memory: one line plus one 64 KiB chunk). */
export function forEachLine(path: string, each: (line: Line) => void): void {
  for (const line of readLines(path)) each(line);
}

/** Every line, in order, read 64 KiB at a time; the file stays open until the generator finishes. */
export function* readLines(path: string): Generator<Line> {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let lineStart = 0;
    let position = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, CHUNK_BYTES, position);
      if (n === 0) break;
      let from = 0;
      for (let nl = chunk.indexOf(10, from); nl !== -1 && nl < n; nl = chunk.indexOf(10, from)) {
        const piece = chunk.subarray(from, nl);
        const bytes = pendingBytes === 0 ? piece : Buffer.concat([...pending, piece]);
        const line = { text: bytes.toString('utf8'), offset: lineStart, length: bytes.length, terminated: true };
        lineStart += bytes.length + 1;
        pending = [];
        pendingBytes = 0;
        from = nl + 1;
        yield line;
      }
      if (from < n) {
        pending.push(Buffer.from(chunk.subarray(from, n)));
        pendingBytes += n - from;
      }
      position += n;
    }
    if (pendingBytes > 0) {
      const bytes = Buffer.concat(pending);
      yield { text: bytes.toString('utf8'), offset: lineStart, length: bytes.length, terminated: false };
    }
  } finally {
    closeSync(fd);
  }
}

/** Reads `length` bytes at `offset` (one line found by an earlier scan). */
export function readLineAt(path: string, offset: number, length: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Appends whole lines and fsyncs them. A crash mid-append leaves at most one unterminated last line,
 * which readers skip and a writer cuts off (truncateTornTail) before its first append.
 */
export function appendLines(path: string, lines: string[]): void {
  const text = lines.map((l) => l + '\n').join('');
  const bytes = Buffer.from(text, 'utf8');
  const fd = openSync(path, 'a', 0o644);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** True when the file's last byte is not a newline: an append cut short. */
export function endsTorn(path: string, size: number): boolean {
  if (size === 0) return false;
  return readLineAt(path, size - 1, 1) !== '\n';
}

/** Cuts off an unterminated last line (a crash mid-append); returns the file's size after. */
export function truncateTornTail(path: string): number {
  const size = statSync(path).size;
  if (!endsTorn(path, size)) return size;
  let keep = 0;
  for (const line of readLines(path)) if (line.terminated) keep = line.offset + line.length + 1;
  truncateSync(path, keep);
  return keep;
}
