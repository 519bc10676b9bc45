// Incremental Server-Sent Events parser: yields each `data:` payload as soon as its event ends.
// Only `data` fields matter for OpenAI-compatible streams; comments and other fields are skipped.
// It reads bytes: events end at ASCII newlines, so each line is decoded whole (a UTF-8 character
// split across two reads is never cut) and nothing decodes the framing around the payload.

const DATA = Buffer.from('data:');
const LF = 10;
const CR = 13;
const SPACE = 32;

export class SseParser {
  /** An unfinished line, copied: the bytes given to push() may be a read buffer that is reused. */
  private rest: Buffer | null = null;
  private readonly data: string[] = [];

  /** Feed the stream's bytes (or text); calls `onData` once per complete event, in order. */
  push(chunk: Buffer | string, onData: (data: string) => void): void {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, buf]);
      this.rest = null;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(LF, start);
      if (nl < 0) break;
      this.line(buf, start, nl > start && buf[nl - 1] === CR ? nl - 1 : nl, onData);
      start = nl + 1;
    }
    if (start < buf.length) this.rest = Buffer.from(buf.subarray(start));
  }

  private line(buf: Buffer, start: number, end: number, onData: (data: string) => void): void {
    if (end === start) {
      if (this.data.length === 0) return;
      const data = this.data.length === 1 ? (this.data[0] as string) : this.data.join('\n');
      this.data.length = 0;
      onData(data);
    } else if (end - start >= DATA.length && buf.compare(DATA, 0, DATA.length, start, start + DATA.length) === 0) {
      const from = start + DATA.length;
      this.data.push(buf.toString('utf8', from < end && buf[from] === SPACE ? from + 1 : from, end));
    }
  }
}
