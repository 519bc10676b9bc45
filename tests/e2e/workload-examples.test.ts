import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, runLlem } from './llem-process.ts';

// Fast mock latencies: the examples' shapes are what is tested here, not their timing.
const FAST = ['--mock-args=--ttft-ms 5 --itl-ms 2'];

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'llem-workloads-'));
}

interface Summary {
  simulated: boolean;
  adaptive: null | {
    configurations: Array<{ reason: string | null; cycles: number; ciHalfWidthPct: number | null }>;
  };
  results: { configurations: Array<{ runsIncluded: string[] }> };
}

function summary(out: string): Summary {
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
}

describe('workload and adaptive-cycle examples (simulated)', { timeout: 600_000 }, () => {
  for (const example of ['trace-replay', 'shared-prefix', 'multi-turn']) {
    it(`runs examples/${example}.yaml with --simulate`, async () => {
      const out = tmp();
      const r = await runLlem(['run', `examples/${example}.yaml`, '--simulate', '--out', out, ...FAST]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(summary(out).simulated, true);
      assert.ok(summary(out).results.configurations.every((c) => c.runsIncluded.length === 2));
    });
  }

  it('runs examples/adaptive-cycles.yaml and says per configuration why it stopped, with a half-width plot', async () => {
    const out = tmp();
    const r = await runLlem(['run', 'examples/adaptive-cycles.yaml', '--simulate', '--out', out, ...FAST]);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(out);
    assert.equal(s.adaptive?.configurations.length, 2);
    for (const c of s.adaptive?.configurations ?? []) {
      assert.ok(c.reason === 'targetMet' || c.reason === 'maxCycles', `stopped because ${c.reason}`);
      assert.ok(c.cycles >= 3 && c.cycles <= 6);
      if (c.reason === 'targetMet') assert.ok((c.ciHalfWidthPct ?? 99) <= 10);
    }
    assert.match(readFileSync(join(out, 'plots', 'ci-half-width.svg'), 'utf8'), /^<svg/);
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /Adaptive cycles/);
  });

  it('a GPU budget stops adding cycles and the reason says budget', async () => {
    const dir = tmp();
    const manifest = readFileSync(join(REPO, 'examples/adaptive-cycles.yaml'), 'utf8')
      .replace('ciHalfWidthPct: 10', 'ciHalfWidthPct: 0.001')
      .replace('gpuHours: 0.5', 'gpuHours: 0.0001');
    writeFileSync(join(dir, 'budget.yaml'), manifest);
    const out = join(dir, 'out');
    const r = await runLlem(['run', join(dir, 'budget.yaml'), '--simulate', '--out', out, ...FAST]);
    assert.equal(r.code, 0, r.stderr);
    // 0.36 GPU-seconds: spent by the first cycle block (baseline 1 s + window), so one cycle each.
    const s = summary(out);
    assert.deepEqual(
      s.adaptive?.configurations.map((c) => [c.reason, c.cycles]),
      [
        ['budget', 1],
        ['budget', 1],
      ],
    );
    assert.match(r.stderr, /not needed — the GPU budget is spent/);
  });

  const bad: Array<[string, string, RegExp]> = [
    [
      'a negative length',
      '{"timestampMs": 0, "inputTokens": -1, "outputTokens": 4}\n',
      /t\.jsonl:1: inputTokens must be a positive integer/,
    ],
    [
      'unsorted timestamps',
      '{"timestampMs": 9, "inputTokens": 1, "outputTokens": 4}\n{"timestampMs": 2, "inputTokens": 1, "outputTokens": 4}\n',
      /t\.jsonl:2: arrives before the line above it/,
    ],
    ['an empty trace', '\n', /t\.jsonl: holds no requests/],
  ];
  for (const [what, content, message] of bad) {
    it(`exits 2 naming file:line for a trace with ${what}, and writes nothing`, async () => {
      const dir = tmp();
      writeFileSync(join(dir, 't.jsonl'), content);
      const manifest = readFileSync(join(REPO, 'examples/trace-replay.yaml'), 'utf8').replaceAll(
        'examples/workloads/bursty-trace.jsonl',
        join(dir, 't.jsonl'),
      );
      writeFileSync(join(dir, 'm.yaml'), manifest);
      const out = join(dir, 'out');
      const r = await runLlem(['run', join(dir, 'm.yaml'), '--simulate', '--out', out]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(existsSync(out), false, 'no results directory');
    });
  }

  it('exits 2 naming the manifest field for a missing trace or conversations file, and writes nothing', async () => {
    for (const [example, field] of [
      ['trace-replay', 'spec.workload.dataset.trace.file'],
      ['multi-turn', 'spec.workload.dataset.conversations.file'],
    ] as const) {
      const dir = tmp();
      const manifest = readFileSync(join(REPO, `examples/${example}.yaml`), 'utf8').replace(
        /examples\/workloads\/[a-z-]+\.jsonl/g,
        join(dir, 'missing.jsonl'),
      );
      writeFileSync(join(dir, 'm.yaml'), manifest);
      const r = await runLlem(['run', join(dir, 'm.yaml'), '--simulate', '--out', join(dir, 'out')]);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.includes(`${field}: cannot read ${join(dir, 'missing.jsonl')} (ENOENT)`), r.stderr);
      assert.equal(existsSync(join(dir, 'out')), false);
    }
  });
});
