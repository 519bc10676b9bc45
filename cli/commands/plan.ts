// `llem plan FILE [--json]`: the run table (run id, backend, sweep point, cycle, config hash), totals
// and a GPU-hour range. The range is honest about what it cannot know: throughput is only known
// after measuring, so the lower bound counts the fixed phases and the upper bound the timeouts.
import { parseArgs } from 'node:util';
import { formatIssue, InvalidInputError } from '../../lib/errors.ts';
import { loadExperimentFile, type LoadedExperiment } from '../../lib/manifest/index.ts';
import { shortHash, type EnergyExperimentSpec, type PlannedRun, type RunMatrix } from '../../api/index.ts';

const HELP = `usage: llem plan FILE [--json]

Shows the run matrix of one EnergyExperiment: backends x sweep points x cycles, in execution order.
  --json   machine-readable output
`;

export interface PlanTotals {
  configurations: number;
  runs: number;
  skippedCombinations: number;
  podsPerRun: number;
  gpusPerRun: number;
  gpuHoursLowerBound: number;
  gpuHoursUpperBound: number;
}

/** Seconds one run occupies its GPUs, excluding backend start-up (unknown before measuring). */
export function runSecondsLowerBound(spec: EnergyExperimentSpec): number {
  const m = spec.measurement;
  const w = spec.workload;
  const window =
    w.mode === 'rate' && w.ratePerSecond !== undefined
      ? Math.max(m.minWindowSeconds, w.requests / w.ratePerSecond)
      : m.minWindowSeconds;
  return m.baselineSeconds + window + m.cooldownSeconds;
}

export function planTotals(spec: EnergyExperimentSpec, matrix: RunMatrix): PlanTotals {
  const gpus = spec.placement.gpusPerRun * spec.placement.replicas;
  const runs = matrix.runs.length;
  const hours = (seconds: number): number => Math.round(((runs * gpus * seconds) / 3600) * 1000) / 1000;
  return {
    configurations: matrix.configurations.length,
    runs,
    skippedCombinations: matrix.rejected.length,
    podsPerRun: spec.placement.replicas,
    gpusPerRun: spec.placement.gpusPerRun,
    gpuHoursLowerBound: hours(runSecondsLowerBound(spec)),
    gpuHoursUpperBound: hours(spec.policy.runTimeoutSeconds * (spec.policy.retries + 1)),
  };
}

function pointText(run: PlannedRun): string {
  const entries = Object.entries(run.point);
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  '))
    .join('\n');
}

/** One line per load ladder: its steps, and that steps past saturation are skipped at run time (ADR 0030). */
function ladderPlanLines(l: LoadedExperiment): string[] {
  const ladders = new Map<string, { mode: string; values: number[] }>();
  for (const c of l.matrix.configurations) {
    if (c.ladder === undefined) continue;
    const g = ladders.get(c.ladder.group) ?? { mode: c.ladder.mode, values: [] };
    g.values.push(c.ladder.value);
    ladders.set(c.ladder.group, g);
  }
  return [...ladders].map(
    ([group, g]) =>
      `load ladder ${group} (${g.mode}): steps ${g.values.join(', ')}; each runs after the one before it, ` +
      'and the steps after saturation are skipped (the counts below are the most that can run)',
  );
}

function printText(l: LoadedExperiment, totals: PlanTotals): void {
  const header = ['#', 'RUN', 'BACKEND', 'CYCLE', 'CONFIG-HASH', 'SWEEP POINT'];
  const rows = l.matrix.runs.map((r) => [
    String(r.sequence),
    r.id,
    r.backend,
    String(r.cycle),
    shortHash(r.configHash),
    pointText(r),
  ]);
  const order = l.experiment.spec.measurement.order;
  process.stdout.write(`${l.experiment.metadata.name} (${l.file}): order ${order}\n\n${table([header, ...rows])}\n\n`);
  for (const s of l.matrix.rejected) {
    process.stdout.write(`skipped ${s.backend} ${JSON.stringify(s.point)}: ${s.path}: ${s.message}\n`);
  }
  for (const line of ladderPlanLines(l)) process.stdout.write(`${line}\n`);
  process.stdout.write(
    `${totals.configurations} configurations, ${totals.runs} runs, ${totals.podsPerRun} pod(s) x ${totals.gpusPerRun} GPU(s) per run\n` +
      `GPU-hours: at least ${totals.gpuHoursLowerBound} (baseline + window + cool-down, without backend start-up), ` +
      `at most ${totals.gpuHoursUpperBound} (run timeout x attempts)\n`,
  );
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new InvalidInputError([
      { file: 'llem plan', path: '', message: err instanceof Error ? err.message : String(err) },
    ]);
  }
  if (parsed.values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const [file, extra] = parsed.positionals;
  if (file === undefined || extra !== undefined) {
    process.stderr.write(HELP);
    return 2;
  }
  const loaded = await loadExperimentFile(file);
  for (const w of loaded.warnings) process.stderr.write(`${formatIssue({ ...w, message: `warning: ${w.message}` })}\n`);
  const totals = planTotals(loaded.experiment.spec, loaded.matrix);
  if (parsed.values.json === true) {
    const { configurations, runs, rejected, warnings } = loaded.matrix;
    const out = {
      experiment: loaded.experiment.metadata.name,
      file: loaded.file,
      order: loaded.experiment.spec.measurement.order,
      totals,
      configurations,
      runs,
      skipped: rejected,
      warnings,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    printText(loaded, totals);
  }
  return 0;
}
