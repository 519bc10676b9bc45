// Validation of a whole EnergyExperiment: schema (zod), rules across fields, and the run matrix.
// Every issue carries the user-facing field path; unknown fields get a did-you-mean hint.
import type { z } from 'zod';
import { didYouMean, formatPath, type PathSegment } from './paths.ts';
import { EnergyExperimentSchema, BACKEND_TYPES, type EnergyExperiment } from './spec.ts';
import { expandRunMatrix, type RunMatrix } from './matrix.ts';
import { manifestErrorMap } from './messages.ts';
import { parallelismMessage, RATE_REQUIRED_MESSAGE } from './rules.ts';
import { backendLaunch } from '../lib/backends/server-command.ts';
import { InvalidInputError } from '../lib/errors.ts';

export interface SpecIssue {
  path: string;
  message: string;
}

export type ValidationResult =
  | { ok: true; experiment: EnergyExperiment; matrix: RunMatrix; warnings: SpecIssue[] }
  | { ok: false; issues: SpecIssue[]; warnings: SpecIssue[] };

interface ZodDefLike {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
}

function defOf(schema: z.ZodType): ZodDefLike {
  return (schema as unknown as { _zod: { def: ZodDefLike } })._zod.def;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 16; i++) {
    const d = defOf(s);
    const inner = d.innerType ?? (d.type === 'pipe' ? d.in : undefined);
    if (inner === undefined) return s;
    s = inner;
  }
  return s;
}

/** The field names an object schema accepts at `path` (empty when it is not an object). */
export function knownFieldsAt(schema: z.ZodType, path: readonly PathSegment[]): string[] {
  let s = unwrap(schema);
  for (const seg of path) {
    const d = defOf(s);
    const next =
      d.type === 'object'
        ? d.shape?.[String(seg)]
        : d.type === 'array'
          ? d.element
          : d.type === 'record'
            ? d.valueType
            : undefined;
    if (next === undefined) return [];
    s = unwrap(next);
  }
  const d = defOf(s);
  return d.type === 'object' ? Object.keys(d.shape ?? {}) : [];
}

function betterMessage(issue: z.core.$ZodIssue): string | undefined {
  if (issue.code === 'invalid_key') return issue.issues.map((i) => i.message).join('; ');
  return undefined;
}

/** zod issues -> user-facing issues, one per unknown field. */
/**
 * A union (measurement.cycles: a number or a mapping) where exactly one branch accepts the value's type:
 * that branch's own issues, which name the field inside it, instead of "unexpected value".
 */
function matchingBranch(branches: readonly (readonly z.core.$ZodIssue[])[]): z.core.$ZodIssue[] | undefined {
  const wrongType = (b: readonly z.core.$ZodIssue[]): boolean =>
    b.length === 1 && b[0]?.code === 'invalid_type' && b[0].path.length === 0;
  const candidates = branches.filter((b) => !wrongType(b));
  return candidates.length === 1 ? [...(candidates[0] ?? [])] : undefined;
}

export function issuesFromZod(
  schema: z.ZodType,
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PathSegment[] = [],
): SpecIssue[] {
  const out: SpecIssue[] = [];
  for (const issue of issues) {
    const at = [...prefix, ...(issue.path as PathSegment[])];
    const branch = issue.code === 'invalid_union' ? matchingBranch(issue.errors) : undefined;
    if (branch !== undefined) {
      out.push(...issuesFromZod(schema, branch, at));
      continue;
    }
    if (issue.code === 'unrecognized_keys') {
      const known = knownFieldsAt(schema, issue.path as PathSegment[]);
      for (const key of issue.keys) {
        const hint = didYouMean(key, known);
        const tail =
          hint !== undefined
            ? `; did you mean "${hint}"?`
            : known.length > 0
              ? `; known fields: ${known.join(', ')}`
              : '';
        out.push({ path: formatPath([...at, key]), message: `unknown field "${key}"${tail}` });
      }
      continue;
    }
    out.push({ path: formatPath(at), message: betterMessage(issue) ?? issue.message });
  }
  return out;
}

function backendNameIssues(e: EnergyExperiment): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const firstIndex = new Map<string, number>();
  e.spec.backends.forEach((b, i) => {
    const name = b.name ?? b.type;
    const first = firstIndex.get(name);
    if (first === undefined) {
      firstIndex.set(name, i);
      return;
    }
    issues.push({
      path: formatPath(['spec', 'backends', i, b.name === undefined ? 'type' : 'name']),
      message: `backend name "${name}" is already used by spec.backends[${first}]; give each entry a unique name`,
    });
  });
  return issues;
}

function sweepRootIssues(e: EnergyExperiment): SpecIssue[] {
  const present = new Set(e.spec.backends.map((b) => b.type));
  const issues: SpecIssue[] = [];
  const check = (path: string, at: PathSegment[]): void => {
    const root = path.split('.')[0] ?? '';
    if ((BACKEND_TYPES as readonly string[]).includes(root) && !present.has(root as (typeof BACKEND_TYPES)[number])) {
      issues.push({
        path: formatPath(at),
        message: `sweeps "${path}" but no backend of type "${root}" is listed in spec.backends`,
      });
    }
  };
  for (const path of Object.keys(e.spec.sweep.axes)) check(path, ['spec', 'sweep', 'axes', path]);
  e.spec.sweep.points.forEach((p, i) => {
    for (const path of Object.keys(p)) check(path, ['spec', 'sweep', 'points', i, path]);
  });
  return issues;
}

/**
 * The base values as written must be valid even where a sweep overrides them: the API server's CEL
 * rules cannot see into sweep axes, and `llem validate` must agree with `kubectl apply`.
 */
function baseValueIssues(e: EnergyExperiment): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const gpus = e.spec.placement.gpusPerRun;
  e.spec.backends.forEach((b, i) => {
    const params = b.type === 'vllm' ? b.vllm : b.type === 'tensorrt' ? b.tensorrt : undefined;
    if (params === undefined) return;
    const { tensorParallelSize: tp, pipelineParallelSize: pp } = params;
    if (tp * pp > gpus)
      issues.push({
        path: formatPath(['spec', 'backends', i, b.type, 'tensorParallelSize']),
        message: parallelismMessage(tp, pp, gpus),
      });
  });
  if (e.spec.workload.mode === 'rate' && e.spec.workload.ratePerSecond === undefined) {
    issues.push({ path: 'spec.workload.ratePerSecond', message: RATE_REQUIRED_MESSAGE });
  }
  return issues;
}

function specWarnings(e: EnergyExperiment): SpecIssue[] {
  const m = e.spec.measurement;
  const warnings: SpecIssue[] = [];
  if (m.minWindowSeconds < 5) {
    warnings.push({
      path: 'spec.measurement.minWindowSeconds',
      message: `${m.minWindowSeconds} s is below 5 s: the NVML energy counter updates about every 100 ms, so short windows are coarse and get flagged`,
    });
  }
  return warnings;
}

/** Parse, default and check an EnergyExperiment; never throws for bad input. */
export function validateEnergyExperiment(input: unknown): ValidationResult {
  const parsed = EnergyExperimentSchema.safeParse(input, { error: manifestErrorMap });
  if (!parsed.success)
    return { ok: false, issues: issuesFromZod(EnergyExperimentSchema, parsed.error.issues), warnings: [] };
  const experiment = parsed.data;
  const warnings = specWarnings(experiment);
  const issues = [...backendNameIssues(experiment), ...sweepRootIssues(experiment), ...baseValueIssues(experiment)];
  if (issues.length > 0) return { ok: false, issues, warnings };
  const matrix = expandRunMatrix(experiment.spec);
  warnings.push(...matrix.warnings);
  const fatal = matrix.rejected.filter((r) => !(experiment.spec.sweep.skipInvalid && r.involvesSweep));
  issues.push(...matrix.errors, ...fatal.map((r) => ({ path: r.path, message: r.message })));
  if (issues.length === 0 && matrix.configurations.length === 0) {
    issues.push({ path: 'spec.sweep', message: 'every combination was skipped as invalid; nothing would run' });
  }
  issues.push(...renderIssues(matrix));
  if (issues.length > 0) return { ok: false, issues: dedupe(issues), warnings };
  return { ok: true, experiment, matrix, warnings };
}

/**
 * Validation = rendering: every configuration is rendered by the same launcher the pod builder and
 * `llem run` use, so a refusal the rules above do not (yet) state still fails validation, naming the
 * renderer's field, instead of failing later inside pod building.
 */
export function renderIssues(matrix: RunMatrix): SpecIssue[] {
  const issues: SpecIssue[] = [];
  for (const c of matrix.configurations) {
    try {
      backendLaunch(c, false);
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      for (const i of err.issues)
        issues.push({ path: i.path === '' ? `spec.backends[${c.backend.name}]` : i.path, message: i.message });
    }
  }
  return issues;
}

function dedupe(issues: SpecIssue[]): SpecIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.path}\0${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
