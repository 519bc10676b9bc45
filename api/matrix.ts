// Run-matrix expansion: backends x sweep points x cycles -> runs.
//
// Ids are content-derived, so the same manifest always gives the same ids, whatever the order of its
// axes: configuration id = `<backend name>-<first 10 hex of configHash>`, run id = `<configuration
// id>-c<cycle>` (cycles count from 0). Both are DNS-1123 labels (at most 20 + 1 + 10 + 2 + 2 chars).
// A backend axis (`vllm.maxNumSeqs`) only applies to backends of that type, so points that differ
// only in other backends' axes collapse into one configuration for this backend.
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { canonicalJson, formatPath, withValueAt, type PathSegment } from './paths.ts';
import {
  BACKEND_PARAM_SCHEMAS,
  GpuSettingsSchema,
  hasGpuSettings,
  requestedGpuSettings,
  ModelSchema,
  WorkloadSchema,
  cyclePlan,
  type BackendType,
  type EnergyExperimentSpec,
  type GpuSpec,
  type RequestedGpuSettings,
  type MeasurementOrder,
  type ModelSpec,
  type PytorchParams,
  type SweepValue,
  type TensorrtParams,
  type VllmParams,
  type WorkloadSpec,
} from './spec.ts';
import { configurationRuleViolations } from './rules.ts';
import { manifestErrorMap } from './messages.ts';
import { seededRandom } from './random.ts';
import { ladderField, ladderValues, stepWorkload, type LadderPosition } from './ladder.ts';

export const MAX_CONFIGURATIONS = 4096;
export const MAX_RUNS = 20000;
const SHORT_HASH_LENGTH = 10;

interface BackendBase {
  name: string;
  image?: string;
  extraArgs: string[];
  /** How long the server may take to become ready; not part of the config hash (it measures nothing). */
  readinessTimeoutSeconds?: number;
  /** SIGTERM -> SIGKILL grace when stopping the server; not part of the config hash either. */
  shutdownGraceSeconds?: number;
}
export type ResolvedBackend =
  | (BackendBase & { type: 'pytorch'; params: PytorchParams })
  | (BackendBase & { type: 'vllm'; params: VllmParams })
  | (BackendBase & { type: 'tensorrt'; params: TensorrtParams });

/** Swept values that apply to one configuration, keyed by dotted path, keys sorted. */
export type SweepPoint = Record<string, SweepValue>;

export interface Configuration {
  id: string;
  /** Position in expansion order (backends outermost, then points). */
  index: number;
  backendIndex: number;
  backend: ResolvedBackend;
  model: ModelSpec;
  workload: WorkloadSpec;
  gpusPerRun: number;
  replicas: number;
  point: SweepPoint;
  /** Power limit and locked clocks this configuration runs under (empty: the GPU's own). */
  gpu: RequestedGpuSettings;
  /** sha256 (hex) of the canonical JSON of what the server and load generator do, and the GPU settings. */
  configHash: string;
  /** Set on the steps of a load ladder (workload.ladder): which ladder, which step, what load. */
  ladder?: LadderPosition;
}

export interface PlannedRun {
  id: string;
  configurationId: string;
  configHash: string;
  backend: string;
  backendType: BackendType;
  cycle: number;
  /** Position in execution order, from 0. */
  sequence: number;
  point: SweepPoint;
  /** Load-ladder steps only: the ladder and the step, which the runtimes gate on (aggregator/ladder.ts). */
  ladder?: { group: string; step: number };
}

/** A problem located by a user-facing field path (`spec.sweep.axes[vllm.maxNumSeqs][2]`). */
export interface MatrixIssue {
  path: string;
  message: string;
}

export interface RejectedCombination extends MatrixIssue {
  backend: string;
  point: SweepPoint;
  /** True when a swept value takes part: such combinations may be skipped with sweep.skipInvalid. */
  involvesSweep: boolean;
}

export interface RunMatrix {
  configurations: Configuration[];
  runs: PlannedRun[];
  rejected: RejectedCombination[];
  /** Swept values that fail the schema: always fatal. */
  errors: MatrixIssue[];
  warnings: MatrixIssue[];
}

interface RawPoint {
  values: Record<string, SweepValue>;
  /** Where each value came from, as a path into the manifest. */
  origins: Record<string, PathSegment[]>;
}

export function shortHash(configHash: string): string {
  return configHash.slice(0, SHORT_HASH_LENGTH);
}

/**
 * Backend parameters added after configurations were first hashed, at the value that keeps the old
 * behaviour: left out of the hash there, so results recorded before the parameter existed still
 * resume and compare as the same configuration.
 */
const HASH_NEUTRAL_DEFAULTS: Partial<Record<ResolvedBackend['type'], Record<string, unknown>>> = {
  pytorch: { cudaGraphs: false, tensorParallelSize: 1 },
};

function hashedParams(backend: ResolvedBackend): Record<string, unknown> {
  const neutral = HASH_NEUTRAL_DEFAULTS[backend.type] ?? {};
  return Object.fromEntries(Object.entries(backend.params).filter(([k, v]) => !(k in neutral) || neutral[k] !== v));
}

/** The hash of one configuration's content (see Configuration.configHash). */
export function configHash(content: {
  model: ModelSpec;
  backend: ResolvedBackend;
  workload: WorkloadSpec;
  gpusPerRun: number;
  replicas: number;
  /** Absent or empty: left out of the hash, so configurations recorded before GPU settings existed keep theirs. */
  gpu?: RequestedGpuSettings;
}): string {
  const { model, backend, workload, gpusPerRun, replicas, gpu } = content;
  // The HF token secret changes nothing about what is measured: keep it out of the hash.
  const source = model.source.huggingFace !== undefined ? { huggingFace: {} } : model.source;
  const identity = {
    model: { ...model, source },
    backend: {
      type: backend.type,
      image: backend.image ?? null,
      params: hashedParams(backend),
      extraArgs: backend.extraArgs,
    },
    workload,
    gpusPerRun,
    replicas,
    ...(gpu !== undefined && hasGpuSettings(gpu) ? { gpu } : {}),
  };
  return createHash('sha256').update(canonicalJson(identity)).digest('hex');
}

function sweepPoints(spec: EnergyExperimentSpec): RawPoint[] {
  // No axes but explicit points: exactly those points (not also the unswept base configuration).
  const onlyPoints = Object.keys(spec.sweep.axes).length === 0 && spec.sweep.points.length > 0;
  let points: RawPoint[] = onlyPoints ? [] : [{ values: {}, origins: {} }];
  for (const [path, values] of Object.entries(spec.sweep.axes)) {
    const next: RawPoint[] = [];
    for (const p of points) {
      values.forEach((v, i) => {
        next.push({
          values: { ...p.values, [path]: v },
          origins: { ...p.origins, [path]: ['spec', 'sweep', 'axes', path, i] },
        });
      });
    }
    points = next;
    if (points.length > MAX_CONFIGURATIONS) break;
  }
  spec.sweep.points.forEach((explicit, i) => {
    const origins: Record<string, PathSegment[]> = {};
    for (const path of Object.keys(explicit)) origins[path] = ['spec', 'sweep', 'points', i, path];
    points.push({ values: { ...explicit }, origins });
  });
  return points;
}

function rootOf(path: string): string {
  return path.split('.')[0] ?? '';
}

function relevantEntries(point: RawPoint, type: BackendType): [string, SweepValue][] {
  return Object.entries(point.values)
    .filter(([path]) => {
      const root = rootOf(path);
      return root === type || root === 'workload' || root === 'model' || root === 'gpu';
    })
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

interface ApplyResult {
  value?: unknown;
  errors: MatrixIssue[];
}

/** Writes the swept values under `root` into `base` and re-validates the result with `schema`. */
function applyAndValidate(
  schema: z.ZodType,
  base: Record<string, unknown>,
  root: string,
  entries: [string, SweepValue][],
  origins: Record<string, PathSegment[]>,
): ApplyResult {
  let target = base;
  const mine = entries.filter(([p]) => rootOf(p) === root);
  for (const [path, value] of mine) target = withValueAt(target, path.split('.').slice(1), value);
  if (mine.length === 0) return { value: base, errors: [] };
  const parsed = schema.safeParse(target, { error: manifestErrorMap });
  if (parsed.success) return { value: parsed.data, errors: [] };
  const errors = parsed.error.issues.map((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const field = [root, ...issue.path.map(String), ...keys.slice(0, 1)].join('.');
    const origin = mine.find(([p]) => field === p || field.startsWith(`${p}.`)) ?? mine[0];
    const at = origin === undefined ? [] : (origins[origin[0]] ?? []);
    const what = issue.code === 'unrecognized_keys' ? `unknown field "${field}"` : `${field}: ${issue.message}`;
    return { path: formatPath(at), message: what };
  });
  return { errors };
}

interface ConfigurationDraft {
  backendIndex: number;
  backend: ResolvedBackend;
  model: ModelSpec;
  workload: WorkloadSpec;
  gpu: RequestedGpuSettings;
  point: SweepPoint;
  origins: Record<string, PathSegment[]>;
}

function resolve(
  spec: EnergyExperimentSpec,
  backendIndex: number,
  point: RawPoint,
): { draft?: ConfigurationDraft; errors: MatrixIssue[] } {
  const b = spec.backends[backendIndex];
  if (b === undefined) return { errors: [] };
  const entries = relevantEntries(point, b.type);
  const rawParams = (b[b.type] ?? {}) as Record<string, unknown>;
  const baseParams = BACKEND_PARAM_SCHEMAS[b.type].parse(rawParams) as Record<string, unknown>;
  const params = applyAndValidate(BACKEND_PARAM_SCHEMAS[b.type], baseParams, b.type, entries, point.origins);
  const workload = applyAndValidate(WorkloadSchema, spec.workload, 'workload', entries, point.origins);
  const model = applyAndValidate(ModelSchema, spec.model, 'model', entries, point.origins);
  const gpu = applyAndValidate(GpuSettingsSchema, spec.gpu, 'gpu', entries, point.origins);
  const errors = [...params.errors, ...workload.errors, ...model.errors, ...gpu.errors];
  if (errors.length > 0) return { errors };
  const backend = {
    name: b.name ?? b.type,
    type: b.type,
    ...(b.image === undefined ? {} : { image: b.image }),
    params: params.value,
    extraArgs: b.extraArgs,
    ...(b.readinessTimeoutSeconds === undefined ? {} : { readinessTimeoutSeconds: b.readinessTimeoutSeconds }),
    ...(b.shutdownGraceSeconds === undefined ? {} : { shutdownGraceSeconds: b.shutdownGraceSeconds }),
  } as ResolvedBackend;
  const draft: ConfigurationDraft = {
    backendIndex,
    backend,
    model: model.value as ModelSpec,
    workload: workload.value as WorkloadSpec,
    gpu: requestedGpuSettings(gpu.value as GpuSpec),
    point: Object.fromEntries(entries),
    origins: point.origins,
  };
  return { draft, errors: [] };
}

/** Field (dotted, relative to the configuration) -> where the user wrote it. */
function fieldOrigin(draft: ConfigurationDraft, field: string): { path: PathSegment[]; swept: boolean } {
  const swept = Object.keys(draft.point).find((p) => field === p || field.startsWith(`${p}.`));
  if (swept !== undefined) return { path: draft.origins[swept] ?? [], swept: true };
  const [root, ...rest] = field.split('.');
  if (root === draft.backend.type)
    return { path: ['spec', 'backends', draft.backendIndex, root, ...rest], swept: false };
  return { path: ['spec', ...(root === undefined ? [] : [root]), ...rest], swept: false };
}

export function expandRunMatrix(spec: EnergyExperimentSpec): RunMatrix {
  const points = sweepPoints(spec);
  const empty: RunMatrix = { configurations: [], runs: [], rejected: [], errors: [], warnings: [] };
  if (points.length * spec.backends.length > MAX_CONFIGURATIONS) {
    const n = points.length * spec.backends.length;
    const message = `the sweep expands to more than ${MAX_CONFIGURATIONS} configurations (${n}+); split the experiment or use explicit points`;
    return { ...empty, errors: [{ path: 'spec.sweep', message }] };
  }
  const matrix = collectConfigurations(spec, points);
  if (matrix.errors.length > 0) return matrix;
  const { maxCycles } = cyclePlan(spec.measurement.cycles);
  const runCount = matrix.configurations.length * maxCycles;
  if (runCount > MAX_RUNS) {
    const message = `${runCount} runs (configurations x cycles) exceed the limit of ${MAX_RUNS}; reduce the sweep or the cycles`;
    return { ...matrix, errors: [{ path: 'spec.measurement.cycles', message }] };
  }
  return { ...matrix, runs: orderRuns(matrix.configurations, { ...spec.measurement, cycles: maxCycles }) };
}

function collectConfigurations(spec: EnergyExperimentSpec, points: RawPoint[]): RunMatrix {
  const out: RunMatrix = { configurations: [], runs: [], rejected: [], errors: [], warnings: [] };
  const seen = new Set<string>();
  const seenWarnings = new Set<string>();
  spec.backends.forEach((_, backendIndex) => {
    for (const point of points) {
      const { draft, errors } = resolve(spec, backendIndex, point);
      out.errors.push(...errors);
      if (draft === undefined) continue;
      for (const [step, ladder] of ladderSteps(spec, draft, out))
        addDraft(spec, step, ladder, { out, seen, seenWarnings });
    }
  });
  return out;
}

/** A draft without a ladder as itself; with one, one draft per step (the base draft names the group). */
function ladderSteps(
  spec: EnergyExperimentSpec,
  draft: ConfigurationDraft,
  out: RunMatrix,
): [ConfigurationDraft, LadderPosition | undefined][] {
  const l = draft.workload.ladder;
  if (l === undefined) return [[draft, undefined]];
  const field = ladderField(l.mode);
  if (field in draft.point) {
    const message = `${field} is set by workload.ladder (mode ${l.mode}); remove it from the sweep or drop the ladder`;
    out.errors.push({ path: formatPath(draft.origins[field] ?? []), message });
    return [];
  }
  const base = { ...draft, gpusPerRun: spec.placement.gpusPerRun, replicas: spec.placement.replicas };
  const group = `${draft.backend.name}-${shortHash(configHash(base))}`;
  return ladderValues(l).map((value, step) => [
    {
      ...draft,
      workload: stepWorkload(draft.workload, l, value),
      point: sortedPoint({ ...draft.point, [field]: value }),
    },
    { group, step, value, mode: l.mode, spec: l },
  ]);
}

function sortedPoint(point: SweepPoint): SweepPoint {
  return Object.fromEntries(Object.entries(point).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface Collecting {
  out: RunMatrix;
  seen: Set<string>;
  seenWarnings: Set<string>;
}

function addDraft(
  spec: EnergyExperimentSpec,
  draft: ConfigurationDraft,
  ladder: LadderPosition | undefined,
  { out, seen, seenWarnings }: Collecting,
): void {
  const content = { ...draft, gpusPerRun: spec.placement.gpusPerRun, replicas: spec.placement.replicas };
  const hash = configHash(content);
  const id = `${draft.backend.name}-${shortHash(hash)}`;
  if (seen.has(id)) return;
  seen.add(id);
  const { violations, warnings } = configurationRuleViolations(content, spec.measurement);
  for (const w of warnings) {
    const path = formatPath(fieldOrigin(draft, w.field).path);
    const key = `${path}\0${w.message}`;
    if (!seenWarnings.has(key)) out.warnings.push({ path, message: w.message });
    seenWarnings.add(key);
  }
  if (violations.length > 0) {
    for (const v of violations) {
      const origin = fieldOrigin(draft, v.field);
      out.rejected.push({
        path: formatPath(origin.path),
        message: v.message,
        backend: draft.backend.name,
        point: draft.point,
        involvesSweep: v.alsoFields.some((f) => fieldOrigin(draft, f).swept) || origin.swept,
      });
    }
    return;
  }
  const { origins: _origins, ...rest } = draft;
  const index = out.configurations.length;
  out.configurations.push({
    ...rest,
    ...content,
    id,
    index,
    configHash: hash,
    ...(ladder === undefined ? {} : { ladder }),
  });
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = out[i] as T;
    out[i] = out[j] as T;
    out[j] = tmp;
  }
  return out;
}

/**
 * interleave: cycle 0 of every configuration, then cycle 1 ... (drift spreads evenly).
 * shuffle: like interleave, but each cycle is a seeded permutation (block randomisation, so the
 * cycles stay time blocks). sequential: all cycles of one configuration, then the next.
 */
export function executionOrder(
  configurations: readonly Configuration[],
  measurement: { cycles: number; order: MeasurementOrder; seed: number },
): { configuration: Configuration; cycle: number }[] {
  const cycles = Array.from({ length: measurement.cycles }, (_, c) => c);
  if (measurement.order === 'sequential') {
    return configurations.flatMap((configuration) => cycles.map((cycle) => ({ configuration, cycle })));
  }
  return cycles.flatMap((cycle) => {
    const block =
      measurement.order === 'shuffle'
        ? shuffled(configurations, seededRandom((measurement.seed * 0x9e3779b1 + cycle * 0x85ebca6b) >>> 0))
        : configurations;
    return block.map((configuration) => ({ configuration, cycle }));
  });
}

/**
 * Ladder steps run in stages: every cycle of step k (of every ladder, and every configuration without
 * one, in stage 0) before any of step k + 1, since whether step k + 1 runs depends on step k's results.
 * Inside a stage the measurement order applies as usual.
 */
function stagedOrder(
  configurations: readonly Configuration[],
  measurement: { cycles: number; order: MeasurementOrder; seed: number },
): { configuration: Configuration; cycle: number }[] {
  const stages = new Map<number, Configuration[]>();
  for (const c of configurations) {
    const k = c.ladder?.step ?? 0;
    stages.set(k, [...(stages.get(k) ?? []), c]);
  }
  return [...stages.keys()].sort((a, b) => a - b).flatMap((k) => executionOrder(stages.get(k) ?? [], measurement));
}

function orderRuns(
  configurations: readonly Configuration[],
  measurement: { cycles: number; order: MeasurementOrder; seed: number },
): PlannedRun[] {
  return stagedOrder(configurations, measurement).map(({ configuration: c, cycle }, sequence) => ({
    id: runId(c.id, cycle),
    configurationId: c.id,
    configHash: c.configHash,
    backend: c.backend.name,
    backendType: c.backend.type,
    cycle,
    sequence,
    point: c.point,
    ...(c.ladder === undefined ? {} : { ladder: { group: c.ladder.group, step: c.ladder.step } }),
  }));
}

export function runId(configurationId: string, cycle: number): string {
  return `${configurationId}-c${cycle}`;
}
