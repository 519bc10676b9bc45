// `llem results export --format llm-d|mlenergy-csv` (issue #19): the llm-d benchmark report v0.2 with
// its power fields filled from the run's own measurements, and a per-run CSV whose leading columns
// are the ML.ENERGY leaderboard's LLM run fields.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { LLEM_EXTRA_COLUMNS, MLENERGY_COLUMNS } from '../../report/exports.ts';
import { REPO, runLlem } from './llem-process.ts';

interface Run {
  runId: string;
  status: string;
  counts: { requestsOk: number; outputTokens: number };
  metrics: { energyJoules: number; joulesPerToken: number; windowSeconds: number; meanPowerWatts: number };
  gpus: Array<{ gpuUuid: string; meanPowerWatts: number }>;
}

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('llem results export', { timeout: 300_000 }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'llem-export-')), 'r');
  let runs: Run[] = [];
  before(async () => {
    const r = await runLlem(['run', join(REPO, 'tests/fixtures/local/small.yaml'), '--simulate', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    runs = (JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as { results: { runs: Run[] } }).results
      .runs;
  });

  it('writes one llm-d benchmark report v0.2 per complete run, with power and energy from that run', async () => {
    const r = await runLlem(['results', 'export', out, '--format', 'llm-d']);
    assert.equal(r.code, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc);
    assert.equal(docs.length, runs.length);
    for (const [i, doc] of docs.entries()) {
      const run = runs[i] as Run;
      assert.equal(doc['version'], '0.2');
      assert.match(doc['run'].uid, /^[0-9a-f]{32}$/);
      assert.ok(doc['run'].keywords.includes('simulated'), 'simulated results say so');
      const engine = doc['scenario'].stack[0];
      assert.equal(engine.standardized.kind, 'inference_engine');
      assert.deepEqual(Object.keys(engine.metadata).sort(), ['cfg_id', 'description', 'label']);
      assert.ok(
        ['fixed', 'gaussian', 'uniform', 'other'].includes(
          doc['scenario'].load.standardized.input_seq_len.distribution,
        ),
      );
      const agg = doc['results'].request_performance.aggregate;
      assert.equal(agg.requests.total, run.counts.requestsOk);
      assert.equal(agg.latency.time_to_first_token.units, 'ms');
      assert.equal(agg.throughput.request_rate.units, 'queries/s');
      const components = doc['results'].observability.components as Doc[];
      assert.equal(components.length, run.gpus.length);
      const power = components[0]?.['aggregate'].power_consumption;
      assert.equal(power.units, 'Watts');
      assert.equal(power.mean, run.gpus[0]?.meanPowerWatts);
      const series = components[0]?.['time_series'].power_consumption.series as Array<{ ts: string; value: number }>;
      assert.ok(series.length > 0 && series.every((p) => p.value > 0 && !Number.isNaN(Date.parse(p.ts))));
      const energy = doc['results'].observability.llem_energy;
      assert.equal(energy.energy_joules, run.metrics.energyJoules);
      assert.equal(energy.joules_per_output_token, run.metrics.joulesPerToken);
    }
  });

  it('writes the ML.ENERGY leaderboard columns first, one row per run, with consistent energy, time and power', async () => {
    const r = await runLlem(['results', 'export', out, '--format', 'mlenergy-csv']);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(','));
    assert.deepEqual(header, [...MLENERGY_COLUMNS, ...LLEM_EXTRA_COLUMNS]);
    assert.equal(rows.length, runs.length);
    const col = (row: string[], name: string): string => row[(header as string[]).indexOf(name)] ?? '';
    for (const row of rows) {
      const run = runs.find((x) => x.runId === col(row, 'llem_run_id'));
      assert.ok(run !== undefined);
      assert.equal(Number(col(row, 'energy_per_token_joules')), run.metrics.joulesPerToken);
      assert.equal(Number(col(row, 'total_output_tokens')), run.counts.outputTokens);
      // The leaderboard's avg_power_watts is steady-state energy over steady-state duration.
      const e = Number(col(row, 'steady_state_energy_joules'));
      const s = Number(col(row, 'steady_state_duration_seconds'));
      assert.ok(Math.abs(Number(col(row, 'avg_power_watts')) - e / s) / (e / s) < 0.01);
      assert.equal(col(row, 'llem_simulated'), 'true');
    }
  });

  it('refuses an unknown format with one line naming the formats, exit 2', async () => {
    const r = await runLlem(['results', 'export', out, '--format', 'parquet']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /csv, json, llm-d or mlenergy-csv/);
  });
});
