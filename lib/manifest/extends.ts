// `extends:` inheritance between manifest files (docs/adr/0001-manifest-extends.md).
//
// - `extends: base.yaml` or `extends: [a.yaml, b.yaml]`, relative to the file that says it; bases are
//   applied left to right, then the file itself on top.
// - Merge: mappings merge key by key, recursively; lists and scalars are replaced whole; `null`
//   deletes the inherited key.
// - Confinement: every file must lie inside the directory of the file named on the command line
//   (the root), checked on the written path and again after symlinks are resolved. Absolute
//   paths are refused. Cycles and chains deeper than MAX_EXTENDS_DEPTH are refused.
import { realpath, stat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError } from '../errors.ts';
import { parseYamlDocuments, type YamlLimits } from './yaml.ts';

export const MAX_EXTENDS_DEPTH = 8;
export const MAX_EXTENDS_FILES = 32;

export type PlainObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is PlainObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Mappings merge recursively; lists and scalars from `override` replace; `null` deletes the key. */
export function deepMerge(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return override;
  const out: PlainObject = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key];
    else out[key] = deepMerge(base[key], value);
  }
  return out;
}

export interface ExtendsContext {
  /** realpath of the confinement root directory. */
  root: string;
  limits: YamlLimits;
  /** Display name of a file for messages. */
  display: (absolutePath: string) => string;
  /** Files read so far (for the MAX_EXTENDS_FILES bound). */
  filesRead: number;
}

function fail(file: string, fieldPath: string, message: string): never {
  throw new InvalidInputError([{ file, path: fieldPath, message }]);
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function extendsList(value: unknown, file: string): { ref: string; fieldPath: string }[] {
  if (value === undefined) return [];
  if (typeof value === 'string' && value !== '') return [{ ref: value, fieldPath: 'extends' }];
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== '')) {
    return value.map((ref: string, i) => ({ ref, fieldPath: `extends[${i}]` }));
  }
  return fail(file, 'extends', 'must be a relative file path or a non-empty list of them');
}

async function confinedTarget(ref: string, fromFile: string, fieldPath: string, ctx: ExtendsContext): Promise<string> {
  const label = ctx.display(fromFile);
  if (path.isAbsolute(ref) || path.win32.isAbsolute(ref)) {
    fail(label, fieldPath, `"${ref}" is an absolute path; use a path relative to ${label}`);
  }
  const written = path.resolve(path.dirname(fromFile), ref);
  if (!isInside(ctx.root, written)) {
    fail(
      label,
      fieldPath,
      `"${ref}" points outside ${ctx.display(ctx.root) || '.'}; extends may only use files in that directory tree`,
    );
  }
  let real: string;
  try {
    real = await realpath(written);
  } catch {
    return fail(label, fieldPath, `"${ref}" does not exist (looked for ${ctx.display(written)})`);
  }
  if (!isInside(ctx.root, real)) {
    fail(
      label,
      fieldPath,
      `"${ref}" is a symbolic link to a file outside ${ctx.display(ctx.root) || '.'}; extends may only use files in that directory tree`,
    );
  }
  return real;
}

/** Reads one file, bounded by size, as text. */
export async function readBoundedFile(file: string, label: string, limits: YamlLimits): Promise<string> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    return fail(label, '', `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!info.isFile()) fail(label, '', 'not a regular file');
  if (info.size > limits.maxBytes) fail(label, '', `file is ${info.size} bytes; the limit is ${limits.maxBytes}`);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(label, '', `cannot read (${code ?? String(err)})${code === 'EACCES' ? '; check its permissions' : ''}`);
  }
}

async function loadBase(file: string, ctx: ExtendsContext, chain: readonly string[]): Promise<unknown> {
  ctx.filesRead += 1;
  if (ctx.filesRead > MAX_EXTENDS_FILES)
    fail(ctx.display(file), 'extends', `more than ${MAX_EXTENDS_FILES} files take part in extends`);
  const label = ctx.display(file);
  const text = await readBoundedFile(file, label, ctx.limits);
  const parsed = parseYamlDocuments(text, label, ctx.limits);
  if (!parsed.ok) throw new InvalidInputError(parsed.issues);
  const [doc, extra] = parsed.documents;
  if (doc === undefined || extra !== undefined)
    fail(label, '', 'a file used by extends must hold exactly one YAML document');
  if (!isPlainObject(doc.value)) fail(label, '', 'a file used by extends must hold a mapping');
  return resolveExtends(doc.value, file, ctx, chain);
}

/**
 * Applies `value.extends` (recursively) and returns the merged document without `extends`.
 * `file` is the absolute real path of the file `value` came from; `chain` the files above it.
 */
export async function resolveExtends(
  value: PlainObject,
  file: string,
  ctx: ExtendsContext,
  chain: readonly string[] = [],
): Promise<PlainObject> {
  const label = ctx.display(file);
  const refs = extendsList(value['extends'], label);
  const { extends: _ignored, ...own } = value;
  if (refs.length === 0) return own;
  const nextChain = [...chain, file];
  if (nextChain.length > MAX_EXTENDS_DEPTH)
    fail(label, 'extends', `extends chain is deeper than ${MAX_EXTENDS_DEPTH} files`);
  let merged: unknown = {};
  for (const { ref, fieldPath } of refs) {
    const target = await confinedTarget(ref, file, fieldPath, ctx);
    if (nextChain.includes(target)) {
      const cycle = [...nextChain.slice(nextChain.indexOf(target)), target].map(ctx.display).join(' -> ');
      fail(label, fieldPath, `extends cycle: ${cycle}`);
    }
    merged = deepMerge(merged, await loadBase(target, ctx, nextChain));
  }
  return deepMerge(merged, own) as PlainObject;
}
