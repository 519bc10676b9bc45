// Incremental Server-Sent Events parser: yields each `data:` payload as soon as its event ends.
// Only `data` fields matter for OpenAI-compatible streams; comments and other fields are skipped.
// It reads bytes: events end at ASCII newlines, so a UTF-8 character split across two reads is never
// cut, and an event whose data arrived in one read is handed over as a range of that read's bytes:
// nothing is copied or decoded unless the caller does it.

const DATA = Buffer.from('data:');
const NEWLINE = Buffer.from('\n');
const LF = 10;
const CR = 13;
const SPACE = 32;

/** Whether `buf` holds `data:` at `at` (compared in JS: a native compare per line costs more than 5 bytes). */
function startsWithData(buf: Buffer, at: number): boolean {
  for (let k = 0; k < DATA.length; k++) if (buf[at + k] !== DATA[k]) return false;
  return true;
}

export type SseEventHandler = (buf: Buffer, from: number, to: number) => void;

export class SseParser {
  /** An unfinished line, copied: the bytes given to push() may be a read buffer that is reused. */
  private rest: Buffer | null = null;
  /** Data lines of the current event from earlier lines or reads, copied out. */
  private readonly data: Buffer[] = [];
  /** The latest data line of the current event, as a range of the buffer being pushed; -1: none. */
  private dataFrom = -1;
  private dataTo = -1;

  /** Feed the stream's bytes (or text); calls `onData` once per complete event, in order. */
  push(chunk: Buffer | string, onData: (data: string) => void): void {
    this.pushBytes(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, (b, from, to) =>
      onData(b.toString('utf8', from, to)),
    );
  }

  /**
   * Feed the stream's bytes `chunk[from, to)` (default: all of it); calls `onEvent` once per complete
   * event, in order, with the event's data as `buf[from, to)`, valid only during the call (a caller that
   * needs a few facts from the payload decodes nothing). Nothing is allocated unless an event or a line
   * spans two reads: the bytes are walked in JS, not with indexOf (the chunk may be a view into a larger
   * arena, whose bytes past `to` are stale).
   */
  pushBytes(chunk: Buffer, onEvent: SseEventHandler, from = 0, to = chunk.length): void {
    let buf = chunk;
    let start = from;
    let stop = to;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk.subarray(from, to)]);
      this.rest = null;
      start = 0;
      stop = buf.length;
    }
    for (let i = start; i < stop; i++) {
      if (buf[i] !== LF) continue;
      this.line(buf, start, i > start && buf[i - 1] === CR ? i - 1 : i, onEvent);
      start = i + 1;
    }
    if (start < stop) this.rest = Buffer.from(buf.subarray(start, stop));
    this.holdPending(buf); // the event goes on in a later read: its range of this buffer will not last
  }

  private holdPending(buf: Buffer): void {
    if (this.dataFrom < 0) return;
    this.data.push(Buffer.from(buf.subarray(this.dataFrom, this.dataTo)));
    this.dataFrom = -1;
  }

  private line(buf: Buffer, start: number, end: number, onEvent: SseEventHandler): void {
    if (end === start) {
      if (this.data.length === 0) {
        if (this.dataFrom < 0) return;
        const from = this.dataFrom;
        this.dataFrom = -1;
        onEvent(buf, from, this.dataTo);
        return;
      }
      // Data from several lines (joined with LF, as the SSE spec says) or reads: rare, so a copy is fine.
      this.holdPending(buf);
      const parts: Buffer[] = [];
      for (const d of this.data) parts.push(...(parts.length === 0 ? [d] : [NEWLINE, d]));
      this.data.length = 0;
      const joined = Buffer.concat(parts);
      onEvent(joined, 0, joined.length);
    } else if (end - start >= DATA.length && startsWithData(buf, start)) {
      this.holdPending(buf);
      const from = start + DATA.length;
      this.dataFrom = from < end && buf[from] === SPACE ? from + 1 : from;
      this.dataTo = end;
    }
  }
}
