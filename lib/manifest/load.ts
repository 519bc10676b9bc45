// Manifest file -> validated EnergyExperiment(s) with their run matrix. All problems in a file are
// collected and thrown together as one InvalidInputError (`file: field.path: message` lines).
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { validateEnergyExperiment, type EnergyExperiment, type RunMatrix } from '../../api/index.ts';
import { InvalidInputError, isInvalidInput, type InputIssue } from '../errors.ts';
import { isPlainObject, readBoundedFile, resolveExtends, type ExtendsContext } from './extends.ts';
import { DEFAULT_YAML_LIMITS, parseYamlDocuments, type YamlLimits } from './yaml.ts';

export interface LoadedExperiment {
  /** Label used in messages: the path as given, plus `#N` (1-based) in multi-document files. */
  file: string;
  documentIndex: number;
  experiment: EnergyExperiment;
  matrix: RunMatrix;
  warnings: InputIssue[];
}

export interface LoadOptions {
  limits?: Partial<YamlLimits>;
  /** Directory that `extends:` may not leave. Default: the directory of the file. */
  root?: string;
}

function displayFrom(cwd: string): (p: string) => string {
  return (p) => {
    const rel = path.relative(cwd, p);
    return rel === '' ? '.' : rel.startsWith('..') ? p : rel;
  };
}

function documentLabel(file: string, index: number, count: number): string {
  return count > 1 ? `${file}#${index + 1}` : file;
}

/** Validates one (already merged) document. */
export function validateManifestDocument(value: unknown, label: string, documentIndex = 0): LoadedExperiment {
  const result = validateEnergyExperiment(value);
  const located = (i: { path: string; message: string }): InputIssue => ({
    file: label,
    path: i.path,
    message: i.message,
  });
  if (!result.ok) throw new InvalidInputError(result.issues.map(located));
  return {
    file: label,
    documentIndex,
    experiment: result.experiment,
    matrix: result.matrix,
    warnings: result.warnings.map(located),
  };
}

async function loadDocument(
  value: unknown,
  label: string,
  index: number,
  file: string,
  ctx: ExtendsContext,
): Promise<LoadedExperiment> {
  if (!isPlainObject(value))
    throw new InvalidInputError([
      { file: label, path: '', message: 'expected a mapping (an EnergyExperiment), got ' + typeof value },
    ]);
  let merged: Record<string, unknown>;
  try {
    merged = await resolveExtends(value, file, ctx);
  } catch (err) {
    if (!isInvalidInput(err)) throw err;
    // Problems in the file itself keep its document label; problems in base files keep theirs.
    const relabelled = err.issues.map((i) => (i.file === ctx.display(file) ? { ...i, file: label } : i));
    throw new InvalidInputError(relabelled, { cause: err });
  }
  return validateManifestDocument(merged, label, index);
}

/**
 * Loads every EnergyExperiment in `file` (multi-document YAML), resolving `extends:`.
 * Throws InvalidInputError listing every problem found; nothing is returned half-valid.
 */
export async function loadManifestFile(file: string, options: LoadOptions = {}): Promise<LoadedExperiment[]> {
  const limits: YamlLimits = { ...DEFAULT_YAML_LIMITS, ...options.limits };
  const text = await readBoundedFile(file, file, limits);
  const parsed = parseYamlDocuments(text, file, limits);
  if (!parsed.ok) throw new InvalidInputError(parsed.issues);
  if (parsed.documents.length === 0)
    throw new InvalidInputError([{ file, path: '', message: 'the file holds no YAML document' }]);
  const real = await realpath(file);
  const root = await realpath(options.root ?? path.dirname(real));
  const ctx: ExtendsContext = { root, limits, display: displayFrom(process.cwd()), filesRead: 1 };
  const count = parsed.documents.length;
  const issues: InputIssue[] = [];
  const loaded: LoadedExperiment[] = [];
  for (const doc of parsed.documents) {
    try {
      loaded.push(await loadDocument(doc.value, documentLabel(file, doc.index, count), doc.index, real, ctx));
    } catch (err) {
      if (!isInvalidInput(err)) throw err;
      issues.push(...err.issues);
    }
  }
  if (issues.length > 0) throw new InvalidInputError(issues);
  const duplicate = duplicateNames(loaded);
  if (duplicate !== undefined) throw new InvalidInputError([duplicate]);
  return loaded;
}

function duplicateNames(loaded: readonly LoadedExperiment[]): InputIssue | undefined {
  const seen = new Map<string, string>();
  for (const l of loaded) {
    const key = `${l.experiment.metadata.namespace ?? ''}/${l.experiment.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined)
      return {
        file: l.file,
        path: 'metadata.name',
        message: `"${l.experiment.metadata.name}" is also the name of ${first}`,
      };
    seen.set(key, l.file);
  }
  return undefined;
}

/** Loads a file that must hold exactly one EnergyExperiment (what `llem run` and `llem plan` take). */
export async function loadExperimentFile(file: string, options: LoadOptions = {}): Promise<LoadedExperiment> {
  const all = await loadManifestFile(file, options);
  const [first, second] = all;
  if (first === undefined || second !== undefined) {
    throw new InvalidInputError([
      { file, path: '', message: `expected exactly one EnergyExperiment, found ${all.length}; split the file` },
    ]);
  }
  return first;
}
