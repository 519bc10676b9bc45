import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { REPO, runLlem } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');
const CHROMIUM = process.env['LLEM_CHROMIUM'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('the results directory, report and `llem results`', { timeout: 180_000 }, () => {
  let out = '';
  before(async () => {
    out = join(mkdtempSync(join(tmpdir(), 'llem-report-')), 'out');
    const r = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
  });

  it(
    'renders every chart of report.html in headless Chromium without console errors',
    { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` },
    async () => {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      try {
        const page = await browser.newPage();
        const problems: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'error') problems.push(m.text());
        });
        page.on('pageerror', (e) => problems.push(e.message));
        await page.goto(pathToFileURL(join(out, 'report.html')).href);
        const charts = await page.locator('svg.llem-chart').all();
        assert.equal(charts.length, 6, 'J/token, the Pareto frontier, three latency CDFs and power');
        for (const c of charts) {
          const box = await c.boundingBox();
          assert.ok(box !== null && box.width > 100 && box.height > 100, 'chart has no size');
          assert.ok((await c.locator('path, rect').count()) >= 1, 'chart has no marks');
        }
        assert.equal(await page.locator('svg[data-chart="bar"] rect').count(), 2, 'one bar per configuration');
        assert.equal(
          await page.locator('svg[data-chart="line"]').first().locator('path').count(),
          2,
          'one TTFT CDF per configuration',
        );
        assert.match(await page.locator('.sim').innerText(), /SIMULATED/);
        assert.deepEqual(problems, []);
      } finally {
        await browser.close();
      }
    },
  );

  it(
    'shows the method (window, sampling tick, baseline, warnings) next to the numbers, and units on every axis',
    { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` },
    async () => {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      try {
        const page = await browser.newPage();
        await page.goto(pathToFileURL(join(out, 'report.html')).href);
        const method = await page.locator('.numbers-and-method .method').innerText();
        assert.match(method, /measurement window[\s\S]*measured [0-9.]+(–[0-9.]+)? s/);
        assert.match(method, /power sampling tick\s+\d+ ms/);
        assert.match(method, /idle baseline\s+[0-9.]+ s before warm-up; measured [0-9.]+(–[0-9.]+)? W/);
        assert.match(method, /Warnings \(\d+\)[\s\S]*minWindowSeconds/, 'the manifest warning is shown');
        const labels = await page.locator('svg.llem-chart .axis-label').allTextContents();
        assert.ok(labels.length >= 10, labels.join(' | '));
        for (const l of labels)
          assert.ok(
            l === 'configuration' || /\((ms|s|W|J|0–1|output tokens\/s|requests\/s|in-flight requests)\)$/.test(l),
            `axis label without a unit: ${l}`,
          );
      } finally {
        await browser.close();
      }
    },
  );

  it('shows the configurations and the best one with `llem results show`', async () => {
    const r = await runLlem(['results', 'show', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SIMULATED results/);
    assert.match(r.stdout, /pytorch workload\.concurrency=1/);
    assert.match(r.stdout, /best: pytorch workload\.concurrency=\d at [0-9.]+ J\/token/);
  });

  it('exports configs as CSV and the whole document as JSON', async () => {
    const csv = await runLlem(['results', 'export', out, '--format', 'csv']);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(csv.stdout, readFileSync(join(out, 'configs.csv'), 'utf8'));
    const json = await runLlem(['results', 'export', out, '--format', 'json']);
    assert.equal((JSON.parse(json.stdout) as { schemaVersion: number }).schemaVersion, 1);
    const bad = await runLlem(['results', 'export', out, '--format', 'xml']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--format must be csv, json, llm-d or mlenergy-csv/);
  });

  it('compares two results directories by configuration hash', async () => {
    const r = await runLlem(['results', 'compare', out, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pytorch workload\.concurrency=1 .* 0\.0%/);
  });

  it('rejects a directory that holds no results with exit code 2', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'llem-empty-'));
    const r = await runLlem(['results', 'show', empty]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a llem results directory/);
    writeFileSync(join(empty, 'experiment.json'), '{"schemaVersion": 1}');
    const r2 = await runLlem(['results', 'show', empty]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /experiment\.json: kind: not a complete llem results file/);
  });
});
