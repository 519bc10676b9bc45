// Chart layout (issue #19): axis labels never overlap tick labels, and legends overlap neither, for
// hostile inputs (many configurations, long labels, huge and tiny values), measured in Chromium.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { barChart, intervalChart, lineChart } from '../../report/svg.ts';

const CHROMIUM = process.env['LLEM_CHROMIUM'] ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
];

const longLabel = (i: number): string =>
  `vllm workload.concurrency=${2 ** i} backends.vllm.maxNumSeqs=${512 * i} gpuMemoryUtilization=0.9${i}`;

function charts(): Record<string, string> {
  const text = (y: string): { title: string; xLabel: string; yLabel: string } => ({
    title: 't',
    xLabel: 'configuration',
    yLabel: y,
  });
  const bars = (
    n: number,
    scale: number,
    label: (i: number) => string,
  ): Array<{ label: string; value: number; low: number; high: number }> =>
    Array.from({ length: n }, (_, i) => ({
      label: label(i),
      value: (i + 1) * scale,
      low: (i + 0.5) * scale,
      high: (i + 1.5) * scale,
    }));
  const series = (
    n: number,
    xScale: number,
    yScale: number,
  ): Array<{ label: string; points: Array<[number, number]> }> =>
    Array.from({ length: n }, (_, s) => ({
      label: longLabel(s),
      points: Array.from({ length: 20 }, (_, k) => [k * xScale, (s + k) * yScale] as [number, number]),
    }));
  return {
    twoBars: barChart(
      bars(2, 1, (i) => `pytorch workload.concurrency=${i}`),
      text('energy per output token (J)'),
    ),
    manyLongBars: barChart(bars(24, 1, longLabel), text('energy per output token (J)')),
    hugeBars: barChart(bars(6, 1.7e7, longLabel), text('energy (J)')),
    tinyNegativeBars: barChart(
      [
        { label: 'a', value: -3.2e-5, low: -4e-5, high: 1e-5 },
        { label: longLabel(3), value: 2e-5, low: null, high: null },
      ] as never,
      text('J'),
    ),
    cdf: lineChart(series(10, 1.3e5, 0.01), { title: 't', xLabel: 'TTFT (ms)', yLabel: 'fraction of requests (0–1)' }),
    power: lineChart(
      series(3, 0.25, 123456),
      { title: 't', xLabel: 'time since the first sample (s)', yLabel: 'GPU power (W)' },
      [{ start: 1, end: 3, label: 'w' }],
    ),
    // The Pareto frontier and ladder curves: CI whiskers on both axes, huge ranges, missing CIs, a knee mark.
    frontier: intervalChart(
      Array.from({ length: 3 }, (_, s) => ({
        label: longLabel(s),
        line: s === 0,
        points: Array.from({ length: 12 }, (_, k) => ({
          x: (k + 1) * 1.3e4,
          y: (s + 1) * 2e-3 * (12 - k),
          ...(k % 3 === 0 ? {} : { xLow: k * 1.3e4, xHigh: (k + 2) * 1.3e4, yLow: 0, yHigh: (s + 2) * 2e-2 }),
          label: longLabel(k),
          hollow: s > 0,
        })),
      })),
      { title: 't', xLabel: 'throughput (output tokens/s)', yLabel: 'energy per output token (J)' },
    ),
    ladder: intervalChart(
      [
        {
          label: 'p99',
          line: true,
          points: [1, 2, 4, 8, 16].map((x) => ({ x, y: x * 1e5, yLow: 0, yHigh: x * 2e5, label: 'p' })),
        },
      ],
      { title: 't', xLabel: 'concurrency (in-flight requests)', yLabel: 'TTFT (ms)' },
      [{ x: 16, label: 'knee 16' }],
    ),
  };
}

/** Runs in the page (a string, so the test's transpiler adds nothing to it): the overlaps in one chart. */
const CHECK = `function (chartId) {
  const svg = document.querySelector('#' + chartId + ' svg');
  const frame = svg.getBoundingClientRect();
  const boxes = (sel) => [...svg.querySelectorAll(sel)].map((e) => ({ text: e.textContent || '', r: e.getBoundingClientRect() }));
  const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const out = [];
  const axis = boxes('.axis-label');
  const tick = boxes('.tick');
  const legend = boxes('.legend');
  for (const a of axis) for (const t of [...tick, ...legend]) if (hit(a.r, t.r)) out.push('axis label "' + a.text + '" overlaps "' + t.text + '"');
  for (const l of legend) for (const t of tick) if (hit(l.r, t.r)) out.push('legend "' + l.text + '" overlaps tick "' + t.text + '"');
  for (const b of [...axis, ...tick, ...legend]) {
    if (b.r.left < frame.left - 1 || b.r.right > frame.right + 1 || b.r.bottom > frame.bottom + 1 || b.r.top < frame.top - 1) out.push('"' + b.text + '" is outside the chart');
  }
  if (axis.length !== 2) out.push(axis.length + ' axis labels');
  return out;
}`;

describe(
  'chart layout',
  { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}`, timeout: 120_000 },
  () => {
    it('keeps axis labels, tick labels and legends apart and inside the chart for hostile inputs', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'llem-layout-'));
      const all = charts();
      const html = `<!doctype html><html><body>${Object.entries(all)
        .map(([k, v]) => `<div id="${k}">${v}</div>`)
        .join('')}</body></html>`;
      writeFileSync(join(dir, 'c.html'), html);
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
      try {
        const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
        await page.goto(pathToFileURL(join(dir, 'c.html')).href);
        for (const id of Object.keys(all)) {
          const problems = (await page.evaluate(`(${CHECK})(${JSON.stringify(id)})`)) as string[];
          assert.deepEqual(problems, [], id);
        }
      } finally {
        await browser.close();
      }
    });
  },
);
