// Incremental Server-Sent Events parser: yields each `data:` payload as soon as its event ends.
// Only `data` fields matter for OpenAI-compatible streams; comments and other fields are skipped.

export class SseParser {
  private buffer = '';
  private data: string[] = [];

  /** Feed decoded text; calls `onData` once per complete event, in order. */
  push(text: string, onData: (data: string) => void): void {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf('\n', start);
      if (nl < 0) break;
      let line = this.buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line, onData);
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string, onData: (data: string) => void): void {
    if (line === '') {
      if (this.data.length > 0) onData(this.data.join('\n'));
      this.data = [];
    } else if (line.startsWith('data:')) {
      this.data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
    }
  }
}
