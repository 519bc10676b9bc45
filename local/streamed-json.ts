// Large results documents written piece by piece into a temporary file, then renamed (as writeFileAtomic):
// a 10^5-run experiment.json is ~200 MB, near V8's string limit if built as one string.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const FLUSH_BYTES = 1 << 20;

class AtomicWriter {
  private readonly tmp: string;
  private fd: number | null;
  private buffered: string[] = [];
  private bufferedChars = 0;

  constructor(readonly path: string) {
    this.tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
    this.fd = openSync(this.tmp, 'w', 0o644);
  }

  write(text: string): void {
    this.buffered.push(text);
    this.bufferedChars += text.length;
    if (this.bufferedChars >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.fd === null) return;
    const bytes = Buffer.from(this.buffered.join(''), 'utf8');
    this.buffered = [];
    this.bufferedChars = 0;
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }

  commit(): void {
    if (this.fd === null) return;
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    renameSync(this.tmp, this.path);
    const dirFd = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.tmp, { force: true });
  }
}

function atomically(path: string, body: (w: AtomicWriter) => void): void {
  const w = new AtomicWriter(path);
  try {
    body(w);
    w.commit();
  } catch (err) {
    w.abort();
    throw err;
  }
}

/** One JSON value a line. */
export function writeLinesAtomic(path: string, items: Iterable<unknown>): void {
  atomically(path, (w) => {
    for (const item of items) w.write(JSON.stringify(item) + '\n');
  });
}

const PLACEHOLDER = '__llem_streamed_array__';

/**
 * `doc` pretty-printed as JSON.stringify(doc, null, 2) would, except the array at `arrayPath` is written
 * element by element (each compact, on its own line); its value in `doc` is ignored.
 */
export function writeJsonStreamed(
  path: string,
  doc: Record<string, unknown>,
  arrayPath: readonly string[],
  items: readonly unknown[],
): void {
  const text = JSON.stringify(withPlaceholder(doc, arrayPath), null, 2) + '\n';
  const marker = JSON.stringify(PLACEHOLDER);
  const at = text.indexOf(marker);
  if (at === -1) throw new Error(`writeJsonStreamed: ${arrayPath.join('.')} is not an object path of the document`);
  atomically(path, (w) => {
    w.write(text.slice(0, at));
    w.write('[');
    items.forEach((item, i) => w.write((i === 0 ? '\n' : ',\n') + JSON.stringify(item)));
    w.write(items.length === 0 ? ']' : '\n]');
    w.write(text.slice(at + marker.length));
  });
}

function withPlaceholder(doc: Record<string, unknown>, path: readonly string[]): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined) return doc;
  const child = doc[head];
  return {
    ...doc,
    [head]:
      rest.length === 0
        ? PLACEHOLDER
        : withPlaceholder(typeof child === 'object' && child !== null ? (child as Record<string, unknown>) : {}, rest),
  };
}
