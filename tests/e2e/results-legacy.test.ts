// Results directories written before ADR 0025 (every run in experiment.json, one runs/<id>.json per run,
// no summary.json / run-results.ndjson / runs.ndjson) read exactly as the new layout does.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, runLlem } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');

/** Rewrites a results directory into the pre-ADR-0025 layout. */
function toLegacy(out: string): void {
  mkdirSync(join(out, 'runs'));
  for (const line of readFileSync(join(out, 'runs.ndjson'), 'utf8').split('\n')) {
    if (line === '') continue;
    const rec = JSON.parse(line) as { result?: { runId: string } };
    if (rec.result !== undefined)
      writeFileSync(join(out, 'runs', `${rec.result.runId}.json`), JSON.stringify(rec, null, 2) + '\n');
  }
  for (const f of ['runs.ndjson', 'run-results.ndjson', 'summary.json']) rmSync(join(out, f));
}

describe('llem results on a directory written before ADR 0025', () => {
  it('show, compare and every export read the old layout with the same output as the new one', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-legacy-')), 'out');
    assert.equal((await runLlem(['run', SMALL, '--simulate', '--out', out])).code, 0);
    const commands = [
      ['results', 'show', out],
      ['results', 'compare', out, out],
      ...['csv', 'json', 'llm-d', 'mlenergy-csv'].map((f) => ['results', 'export', out, '--format', f]),
    ];
    const now = await Promise.all(commands.map((c) => runLlem(c)));
    for (const [i, r] of now.entries()) assert.equal(r.code, 0, `${commands[i]?.join(' ')}: ${r.stderr}`);
    toLegacy(out);
    for (const [i, c] of commands.entries()) {
      const legacy = await runLlem(c);
      assert.equal(legacy.code, 0, legacy.stderr);
      assert.equal(legacy.stdout, now[i]?.stdout, `${c.join(' ')} differs on the old layout`);
    }
    // The llm-d export carries each run's power series: read from runs/<id>.json here.
    assert.match(now[4]?.stdout ?? '', /power_consumption/);
  });

  it('resumes into an old directory: a fresh run of it appends runs.ndjson and keeps the results', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-legacy-')), 'out');
    assert.equal((await runLlem(['run', SMALL, '--simulate', '--out', out])).code, 0);
    const before = readFileSync(join(out, 'configs.csv'), 'utf8');
    toLegacy(out);
    const again = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /\(4 already complete\)/);
    assert.equal(readFileSync(join(out, 'configs.csv'), 'utf8').split('\n')[0], before.split('\n')[0]);
    const show = await runLlem(['results', 'show', out]);
    assert.equal(show.code, 0, show.stderr);
  });
});
