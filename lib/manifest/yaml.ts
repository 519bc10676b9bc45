// Hardened YAML parsing for files users hand to the CLI: bounded size, bounded alias expansion
// (billion laughs), duplicate keys are errors located by field path, unresolved tags are errors.
import { isAlias, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Document, type Node } from 'yaml';
import type { InputIssue } from '../errors.ts';
import { formatPath, type PathSegment } from '../../api/paths.ts';

export const DEFAULT_MAX_BYTES = 1024 * 1024;
/** yaml's measure: alias count x size of the aliased node. Real manifests stay far below this. */
export const DEFAULT_MAX_ALIAS_COUNT = 100;

export interface YamlLimits {
  maxBytes: number;
  maxAliasCount: number;
}

export const DEFAULT_YAML_LIMITS: YamlLimits = { maxBytes: DEFAULT_MAX_BYTES, maxAliasCount: DEFAULT_MAX_ALIAS_COUNT };

export interface YamlDocument {
  /** 0-based position in the file, counting only non-empty documents. */
  index: number;
  value: unknown;
}

export type YamlParseResult = { ok: true; documents: YamlDocument[] } | { ok: false; issues: InputIssue[] };

function where(e: { linePos?: [{ line: number; col: number }, ...unknown[]] }): string {
  const p = e.linePos?.[0];
  return p === undefined ? '' : `line ${p.line}, column ${p.col}: `;
}

/** Keys that would touch Object.prototype when the document becomes a JS object. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

/** Manifests are a handful of levels deep; anything far deeper is a mistake or an attack. */
export const MAX_NESTING_DEPTH = 64;
/** Parse errors reported per document; the first ones are the useful ones. */
const MAX_PARSE_ERRORS = 10;

/** Duplicate keys (reported at the path of the second occurrence), forbidden keys, nesting depth. */
function duplicateKeyIssues(node: Node | null | undefined, path: PathSegment[], file: string, out: InputIssue[]): void {
  if (node === null || node === undefined || isAlias(node)) return;
  if (path.length > MAX_NESTING_DEPTH) {
    out.push({ file, path: formatPath(path), message: `nested deeper than ${MAX_NESTING_DEPTH} levels` });
    return;
  }
  if (isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = keyText(pair.key);
      if (FORBIDDEN_KEYS.has(key))
        out.push({ file, path: formatPath([...path, key]), message: `key "${key}" is not allowed` });
      if (seen.has(key))
        out.push({
          file,
          path: formatPath([...path, key]),
          message: `duplicate key "${key}"; each key may appear once`,
        });
      seen.add(key);
      duplicateKeyIssues(pair.value as Node | null, [...path, key], file, out);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => duplicateKeyIssues(item as Node | null, [...path, i], file, out));
  }
}

const TOO_DEEP = `nested deeper than ${MAX_NESTING_DEPTH} levels; flatten the structure`;

/** The parser recurses per level: a very deep flow collection exhausts the stack before any check. */
function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError || (err instanceof Error && /maximum call stack/i.test(err.message));
}

/** Lexical state for flowDepthIssue: inside a quoted scalar, a comment, or the dashes that open a line. */
class DepthScanner {
  depth = 0;
  line = 1;
  private quote: string | null = null;
  private comment = false;
  private dashes = 0;
  private lineStart = true;

  constructor(private readonly text: string) {}

  /** Consumes text[i]; returns how many extra characters were consumed (an escape). */
  step(i: number): number {
    const c = this.text[i] ?? '';
    const prev = this.text[i - 1] ?? ' ';
    if (c === '\n') return this.newline();
    if (this.comment) return 0;
    if (this.quote !== null) return this.inQuote(c);
    if ((c === '"' || c === "'") && /[\s[{,:]/.test(prev)) this.quote = c;
    else if (c === '#' && /\s/.test(prev)) this.comment = true;
    else this.structural(c, this.text[i + 1] ?? '');
    return 0;
  }

  get nesting(): number {
    return this.depth + this.dashes;
  }

  private newline(): number {
    this.line++;
    this.comment = false;
    this.dashes = 0;
    this.lineStart = true;
    return 0;
  }

  private inQuote(c: string): number {
    if (c === '\\' && this.quote === '"') return 1;
    if (c === this.quote) this.quote = null;
    return 0;
  }

  private structural(c: string, next: string): void {
    if (c === '[' || c === '{') this.depth++;
    else if ((c === ']' || c === '}') && this.depth > 0) this.depth--;
    else if (c === '-' && this.lineStart && /\s/.test(next)) this.dashes++;
    else if (c !== ' ' && c !== '\t') this.lineStart = false;
  }
}

/**
 * The deepest run of flow brackets (`[`, `{`) and block-sequence dashes (`- - - x`) outside quotes
 * and comments, found before parsing so that the parser never recurses that deep. Block mappings
 * need an indented line per level, so the size limit bounds them (and a parser overflow is mapped).
 */
function flowDepthIssue(text: string, file: string): InputIssue | null {
  const scan = new DepthScanner(text);
  for (let i = 0; i < text.length; i++) {
    i += scan.step(i);
    if (scan.nesting > MAX_NESTING_DEPTH) return { file, path: '', message: `line ${scan.line}: ${TOO_DEEP}` };
  }
  return null;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Characters no manifest field may hold: NUL, and what undecodable bytes or lone surrogates became. */
function badTextMessage(text: string): string | null {
  if (text.includes('\u0000')) return 'contains a NUL character; remove it';
  if (text.includes('\uFFFD') || LONE_SURROGATE.test(text)) return 'is not valid UTF-8; save the file as UTF-8';
  return null;
}

/** Every string value and key is checked; the issue names the field (depth is already bounded). */
function textIssues(value: unknown, path: PathSegment[], file: string, out: InputIssue[]): void {
  if (typeof value === 'string') {
    const message = badTextMessage(value);
    if (message !== null) out.push({ file, path: formatPath(path), message });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => textIssues(v, [...path, i], file, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const message = badTextMessage(k);
      const printable = [...k].map((ch) => (ch.charCodeAt(0) < 0x20 || ch === '\uFFFD' ? '?' : ch)).join('');
      if (message !== null) out.push({ file, path: formatPath([...path, printable]), message: `key ${message}` });
      textIssues(v, [...path, printable], file, out);
    }
  }
}

function documentIssues(doc: Document.Parsed, file: string): InputIssue[] {
  const issues: InputIssue[] = [];
  const errors = doc.errors.filter((e) => e.code !== 'DUPLICATE_KEY'); // reported below, with the field path
  for (const e of errors.slice(0, MAX_PARSE_ERRORS)) {
    const text = /maximum call stack/i.test(e.message) ? TOO_DEEP : (e.message.split('\n')[0] ?? e.message);
    issues.push({ file, path: '', message: `${where(e)}${text}` });
  }
  if (errors.length > MAX_PARSE_ERRORS)
    issues.push({ file, path: '', message: `... and ${errors.length - MAX_PARSE_ERRORS} more YAML errors` });
  if (errors.length > 0) return issues;
  for (const w of doc.warnings) {
    if (w.code === 'TAG_RESOLVE_FAILED')
      issues.push({
        file,
        path: '',
        message: `${where(w)}${w.message.split('\n')[0] ?? w.message}; custom tags are not allowed`,
      });
  }
  duplicateKeyIssues(doc.contents, [], file, issues);
  return issues;
}

function toPlainValue(doc: Document.Parsed, file: string, limits: YamlLimits): { value?: unknown; issue?: InputIssue } {
  try {
    return { value: doc.toJS({ maxAliasCount: limits.maxAliasCount }) };
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const message = /alias/i.test(text)
      ? `YAML aliases expand too much (limit ${limits.maxAliasCount}); write the values out instead of nesting anchors`
      : text;
    return { issue: { file, path: '', message } };
  }
}

/** Parses every document of `text`. Documents that are empty (a trailing `---`) are dropped. */
export function parseYamlDocuments(
  text: string,
  file: string,
  limits: YamlLimits = DEFAULT_YAML_LIMITS,
): YamlParseResult {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) {
    return {
      ok: false,
      issues: [{ file, path: '', message: `file is ${bytes} bytes; the limit is ${limits.maxBytes}` }],
    };
  }
  const deep = flowDepthIssue(text, file);
  if (deep !== null) return { ok: false, issues: [deep] };
  let list: Document.Parsed[];
  try {
    const docs = parseAllDocuments(text, {
      uniqueKeys: false,
      prettyErrors: true,
      strict: true,
      schema: 'core',
      version: '1.2',
    });
    list = Array.isArray(docs) ? docs : [];
  } catch (err) {
    if (!isStackOverflow(err)) throw err;
    return { ok: false, issues: [{ file, path: '', message: TOO_DEEP }] };
  }
  const issues: InputIssue[] = [];
  const documents: YamlDocument[] = [];
  for (const doc of list) {
    const own = documentIssues(doc, file);
    issues.push(...own);
    if (own.length > 0 || doc.contents === null) continue;
    const { value, issue } = toPlainValue(doc, file, limits);
    if (issue !== undefined) issues.push(issue);
    else if (value !== null && value !== undefined) {
      const bad: InputIssue[] = [];
      textIssues(value, [], file, bad);
      issues.push(...bad);
      if (bad.length === 0) documents.push({ index: documents.length, value });
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, documents };
}
