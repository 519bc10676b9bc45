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
   * Feed the stream's bytes; calls `onEvent` once per complete event, in order, with the event's data
   * as `buf[from, to)`, valid only during the call (a caller that needs a few facts from the payload
   * decodes nothing).
   */
  pushBytes(chunk: Buffer, onEvent: SseEventHandler): void {
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, buf]);
      this.rest = null;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(LF, start);
      if (nl < 0) break;
      this.line(buf, start, nl > start && buf[nl - 1] === CR ? nl - 1 : nl, onEvent);
      start = nl + 1;
    }
    if (start < buf.length) this.rest = Buffer.from(buf.subarray(start));
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
    } else if (end - start >= DATA.length && buf.compare(DATA, 0, DATA.length, start, start + DATA.length) === 0) {
      this.holdPending(buf);
      const from = start + DATA.length;
      this.dataFrom = from < end && buf[from] === SPACE ? from + 1 : from;
      this.dataTo = end;
    }
  }
}
