// `llem results show DIR | export DIR --format csv|json | compare DIR_A DIR_B`
import { checkResultsFile } from '../out-dir.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { InvalidInputError } from '../../lib/errors.ts';
import { compareResults, readExportInput, readResultsDirectory, type ResultsDocument } from '../../local/index.ts';
import { bestConfigurationText } from '../../report/best.ts';
import {
  gpuSettingsRows,
  PHASE_SPLIT_ASSUMPTIONS,
  PHASE_SPLIT_METHOD,
  phaseSplits,
  withCi,
  type ConfigurationEntry,
} from '../../report/gpu-analysis.ts';

const HELP = `usage:
  llem results show DIR                     configurations, J/token with 95% CI, best configuration
  llem results export DIR --format FORMAT   FORMAT: csv (configurations), json (experiment.json),
                                            llm-d (llm-d benchmark report v0.2, one YAML document per run),
                                            mlenergy-csv (one row per run, ML.ENERGY leaderboard columns)
  llem results compare DIR_A DIR_B          J/token per configuration (matched by config hash), A vs B;
                                            with GPU power caps / clocks, each side's J/token, tokens/s and
                                            p99 ITL against them, with 95% CIs`;

function usageError(message: string): never {
  throw new InvalidInputError([{ file: 'llem results', path: '', message: `${message}\n\n${HELP}` }]);
}

async function exportAs(format: 'llm-d' | 'mlenergy-csv', dir: string): Promise<string> {
  const input = readExportInput(dir);
  const { llmdReports, mlEnergyCsv } = await import('../../report/exports.ts');
  if (format === 'mlenergy-csv') return mlEnergyCsv(input);
  const reports = llmdReports(input);
  if (reports.length === 0) {
    throw new InvalidInputError([
      { file: dir, path: '', message: 'has no complete run to report; finish it with llem run first' },
    ]);
  }
  // One YAML document per run, as llm-d-benchmark writes one report file per run.
  return reports.map((r) => stringify(r, { lineWidth: 0 })).join('---\n');
}

function n(v: number | null | undefined): string {
  return v === null || v === undefined ? '—' : Number(v.toPrecision(4)).toString();
}

function show(doc: ResultsDocument): string {
  const lines = [`${doc.simulated ? 'SIMULATED results' : 'results'} generated ${doc.generatedAt}`];
  const label = (id: string): string => doc.configurations.find((c) => c.id === id)?.label ?? id;
  lines.push(['configuration'.padEnd(40), 'runs', 'J/token', '95% CI', 'tokens/s', 'TTFT p99 ms'].join('  '));
  for (const c of doc.results.configurations) {
    const j = c.metrics.joulesPerToken;
    lines.push(
      [
        label(c.configId).slice(0, 40).padEnd(40),
        `${c.runsIncluded.length}/${c.runsPlanned}`.padEnd(4),
        n(j.mean).padEnd(7),
        `${n(j.ci95Low)}–${n(j.ci95High)}`,
        n(c.metrics.tokensPerSecond.mean),
        n(c.latencyPooled.ttftMs.p99),
      ].join('  '),
    );
  }
  const best = doc.results.experiment.bestConfiguration;
  lines.push(best === null ? 'best: none' : `best: ${bestConfigurationText(best, label(best.configId), n)}`);
  lines.push(...gpuLines(doc), ...phaseLines(doc));
  return lines.join('\n') + '\n';
}

/** J/token, tokens/s, p99 ITL against the power cap / clock, with 95% CIs; none when no run changed GPU settings. */
function gpuLines(doc: ResultsDocument): string[] {
  const labels = Object.fromEntries(doc.configurations.map((c) => [c.id, c.label ?? c.id]));
  const rows = gpuSettingsRows(doc.results, labels);
  if (rows.length === 0) return [];
  const out = ['', 'against the GPU power cap / clock (mean [95% CI] over cycles):'];
  out.push(
    [
      'settings'.padEnd(22),
      'enforced W',
      'mean power W'.padEnd(26),
      'J/token'.padEnd(28),
      'tokens/s'.padEnd(26),
      'p99 ITL ms',
    ].join('  '),
  );
  for (const r of rows)
    out.push(
      [
        r.settings.padEnd(22),
        String(r.enforcedPowerLimitWatts ?? '—').padEnd(10),
        withCi(r.meanPowerWatts).padEnd(26),
        withCi(r.joulesPerToken).padEnd(28),
        withCi(r.tokensPerSecond).padEnd(26),
        withCi(r.itlP99Ms),
      ].join('  '),
    );
  return out;
}

function phaseLines(doc: ResultsDocument): string[] {
  const splits = phaseSplits(doc.configurations as ConfigurationEntry[], doc.results);
  if (splits.length === 0) return [];
  const out = ['', `prefill vs decode energy. Method: ${PHASE_SPLIT_METHOD}.`];
  for (const s of splits)
    out.push(
      `${s.label}: ${n(s.inputTokensPerRequest)} input tokens/request: J per input token ${withCi(s.joulesPerInputToken)}, ` +
        `J per output token ${withCi(s.joulesPerOutputToken)}, prefill share ${withCi(s.prefillShare)}`,
    );
  out.push(`assumptions: ${PHASE_SPLIT_ASSUMPTIONS.join('; ')}`);
  return out;
}

function compare(a: ResultsDocument, b: ResultsDocument, dirs: [string, string]): string {
  const rows = compareResults(a, b);
  const lines = [
    `J/token: A = ${dirs[0]}, B = ${dirs[1]}${a.simulated || b.simulated ? ' (simulated data involved)' : ''}`,
  ];
  for (const r of rows) {
    const change = r.relativeChange === null ? 'n/a' : `${(r.relativeChange * 100).toFixed(1)}%`;
    const sig = r.significant === null ? '' : r.significant ? ' (CIs do not overlap)' : ' (within noise: CIs overlap)';
    lines.push(`${r.label.slice(0, 40).padEnd(40)}  A ${n(r.a).padEnd(8)} B ${n(r.b).padEnd(8)} ${change}${sig}`);
  }
  // Power-cap / clock sweeps: each side's figures against its settings (caps differ, so hashes do not match).
  for (const [name, d] of [
    ['A', a],
    ['B', b],
  ] as const) {
    const g = gpuLines(d);
    if (g.length > 0) lines.push(`${name}:${g.join('\n')}`);
  }
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options: { format: { type: 'string' } } });
  } catch (err) {
    usageError((err as Error).message);
  }
  const dirs = parsed.positionals;
  for (const d of dirs) for (const f of ['experiment.json', 'configs.csv']) checkResultsFile(join(d, f));
  switch (sub) {
    case 'show': {
      if (dirs.length !== 1 || dirs[0] === undefined) usageError('show takes one results directory');
      process.stdout.write(show(readResultsDirectory(dirs[0])));
      return 0;
    }
    case 'export': {
      if (dirs.length !== 1 || dirs[0] === undefined) usageError('export takes one results directory');
      const format = parsed.values.format;
      if (format === 'llm-d' || format === 'mlenergy-csv') {
        process.stdout.write(await exportAs(format, dirs[0]));
        return 0;
      }
      if (format !== 'csv' && format !== 'json') usageError('--format must be csv, json, llm-d or mlenergy-csv');
      readResultsDirectory(dirs[0]);
      const file = join(dirs[0], format === 'csv' ? 'configs.csv' : 'experiment.json');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new InvalidInputError(
          [
            {
              file,
              path: '',
              message: `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)}); run llem run on that directory again to rewrite its files`,
            },
          ],
          { cause: err },
        );
      }
      process.stdout.write(text);
      return 0;
    }
    case 'compare': {
      if (dirs.length !== 2 || dirs[0] === undefined || dirs[1] === undefined)
        usageError('compare takes two results directories');
      process.stdout.write(compare(readResultsDirectory(dirs[0]), readResultsDirectory(dirs[1]), [dirs[0], dirs[1]]));
      return 0;
    }
    case undefined:
    case '--help':
      process.stdout.write(HELP + '\n');
      return sub === undefined ? 2 : 0;
    default:
      return usageError(`unknown subcommand "${sub}"`);
  }
}
