// `llem results show DIR | export DIR --format csv|json | compare DIR_A DIR_B`
import { adaptiveLines, frontierLines, ladderLines, sloLines } from './results-analysis.ts';
import { checkResultsFile } from '../out-dir.ts';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { InvalidInputError } from '../../lib/errors.ts';
import type { AggregateResults } from '../../aggregator/index.ts';
import {
  compareResults,
  readResultsDirectory,
  withAnalysisRuns,
  type ResultsDocument,
} from '../../local/results-read.ts';
import { openExport } from '../../local/results-export.ts';
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

/** Writes to stdout, waiting for a slow reader (a pipe into `head` or gzip) instead of buffering. */
class StdoutSink {
  private buffered: string[] = [];
  private chars = 0;
  async write(text: string): Promise<void> {
    this.buffered.push(text);
    this.chars += text.length;
    if (this.chars >= 1 << 16) await this.flush();
  }
  async flush(): Promise<void> {
    const text = this.buffered.join('');
    this.buffered = [];
    this.chars = 0;
    if (text !== '' && !process.stdout.write(text))
      await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
  }
}

async function exportAs(format: 'llm-d' | 'mlenergy-csv', dir: string): Promise<void> {
  const { context, runs } = openExport(dir);
  const { llmdReport, mlEnergyCsvHeader, mlEnergyCsvRow } = await import('../../report/exports.ts');
  const out = new StdoutSink();
  if (format === 'mlenergy-csv') {
    await out.write(mlEnergyCsvHeader() + '\n');
    for (const r of runs) await out.write(mlEnergyCsvRow(context, r) + '\n');
    await out.flush();
    return;
  }
  let reports = 0;
  for (const r of runs) {
    if (r.status !== 'complete') continue;
    // One YAML document per run, as llm-d-benchmark writes one report file per run.
    await out.write((reports === 0 ? '' : '---\n') + stringify(llmdReport(context, r), { lineWidth: 0 }));
    reports += 1;
  }
  if (reports === 0) {
    throw new InvalidInputError([
      { file: dir, path: '', message: 'has no complete run to report; finish it with llem run first' },
    ]);
  }
  await out.flush();
}

/** A whole results file to stdout in 64 KiB pieces (experiment.json of 10^5 runs is ~200 MB). */
async function copyFile(file: string): Promise<void> {
  const out = new StdoutSink();
  try {
    for await (const chunk of createReadStream(file, { encoding: 'utf8' })) await out.write(chunk as string);
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
  await out.flush();
}

function n(v: number | null | undefined): string {
  return v === null || v === undefined ? '—' : Number(v.toPrecision(4)).toString();
}

function show(doc: ResultsDocument, analysis: AggregateResults): string {
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
  lines.push(...gpuLines(doc, analysis), ...phaseLines(doc, analysis));
  lines.push(...adaptiveLines(doc), ...sloLines(doc), ...ladderLines(doc), ...frontierLines([{ prefix: '', doc }]));
  return lines.join('\n') + '\n';
}

/** J/token, tokens/s, p99 ITL against the power cap / clock, with 95% CIs; none when no run changed GPU settings. */
function gpuLines(doc: ResultsDocument, analysis: AggregateResults): string[] {
  const labels = Object.fromEntries(doc.configurations.map((c) => [c.id, c.label ?? c.id]));
  const rows = gpuSettingsRows(analysis, labels);
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

function phaseLines(doc: ResultsDocument, analysis: AggregateResults): string[] {
  const splits = phaseSplits(doc.configurations as ConfigurationEntry[], analysis);
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

function compare(dirs: [string, string]): string {
  const [a, b] = dirs.map((d) => readResultsDirectory(d)) as [ResultsDocument, ResultsDocument];
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
  for (const [name, d, dir] of [
    ['A', a, dirs[0]],
    ['B', b, dirs[1]],
  ] as const) {
    const g = gpuLines(d, withAnalysisRuns(dir, d));
    if (g.length > 0) lines.push(`${name}:${g.join('\n')}`);
  }
  lines.push(
    ...frontierLines([
      { prefix: 'A:', doc: a },
      { prefix: 'B:', doc: b },
    ]),
  );
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
  // experiment.json is read whole only in directories written before summary.json existed (ADR 0025).
  for (const d of dirs) {
    const whole = existsSync(join(d, 'summary.json')) ? 'summary.json' : 'experiment.json';
    for (const f of [whole, 'configs.csv']) checkResultsFile(join(d, f));
  }
  switch (sub) {
    case 'show': {
      if (dirs.length !== 1 || dirs[0] === undefined) usageError('show takes one results directory');
      const doc = readResultsDirectory(dirs[0]);
      process.stdout.write(show(doc, withAnalysisRuns(dirs[0], doc)));
      return 0;
    }
    case 'export': {
      if (dirs.length !== 1 || dirs[0] === undefined) usageError('export takes one results directory');
      const format = parsed.values.format;
      if (format === 'llm-d' || format === 'mlenergy-csv') {
        await exportAs(format, dirs[0]);
        return 0;
      }
      if (format !== 'csv' && format !== 'json') usageError('--format must be csv, json, llm-d or mlenergy-csv');
      readResultsDirectory(dirs[0]);
      await copyFile(join(dirs[0], format === 'csv' ? 'configs.csv' : 'experiment.json'));
      return 0;
    }
    case 'compare': {
      if (dirs.length !== 2 || dirs[0] === undefined || dirs[1] === undefined)
        usageError('compare takes two results directories');
      process.stdout.write(compare([dirs[0], dirs[1]]));
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
