import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, runLlem, startLlem } from './llem-process.ts';
import { ciHalfWidthPct } from '../../aggregator/index.ts';

// Fast mock latencies: the examples' shapes are what is tested here, not their timing.
const FAST = ['--mock-args=--ttft-ms 5 --itl-ms 2'];

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'llem-workloads-'));
}

interface Summary {
  simulated: boolean;
  adaptive: null | {
    configurations: Array<{
      configurationId: string;
      reason: string | null;
      cycles: number;
      ciHalfWidthPct: number | null;
    }>;
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
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /Adaptive cycles/);
    const show = await runLlem(['results', 'show', out]);
    assert.equal(show.code, 0, show.stderr);
    const target =
      /adaptive cycles: (95% CI of \S+ within ±10% of the mean, 3 to 6 cycles; GPU budget 0.5 h, [\d.e-]+ h recorded):/.exec(
        show.stdout,
      );
    assert.ok(target, show.stdout);
    // The report states the same rule in the same words.
    assert.ok(html.includes(`Target: ${target[1]}.`), 'report.html and results show state the adaptive rule alike');
    for (const c of s.adaptive?.configurations ?? []) {
      const why = c.reason === 'targetMet' ? 'target met' : 'max cycles reached, target not met';
      assert.match(show.stdout, new RegExp(`cycles ${c.cycles}\\s.*${why}`));
    }
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

  it('a SIGKILLed adaptive run resumes with the decisions its recorded runs imply, never re-running a complete run', async () => {
    const out = tmp();
    const args = ['run', 'examples/adaptive-cycles.yaml', '--simulate', '--out', out, ...FAST];
    const first = startLlem(args);
    await first.waitFor(/run 5\/12 \S+ attempt 0: started/, 120_000);
    first.child.kill('SIGKILL');
    await first.done;
    const second = await runLlem(args);
    assert.equal(second.code, 0, second.stderr);
    const completeBefore = [...first.stderr().matchAll(/run (\S+): complete/g)].map((m) => m[1]);
    for (const id of completeBefore)
      assert.ok(!second.stderr.includes(`run ${id ?? '?'}: complete`), `${id} ran twice`);
    const s = summary(out);
    const runs = (
      JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as {
        results: {
          runs: Array<{ runId: string; status: string; configId: string; metrics: { joulesPerToken: number } }>;
        };
      }
    ).results.runs;
    for (const c of s.adaptive?.configurations ?? []) {
      const done = runs.filter((r) => r.configId === c.configurationId && r.status === 'complete');
      assert.equal(done.length, c.cycles, 'every complete run counts, no other');
      // The decision rule over what was recorded: cycles stop exactly where the target was first met.
      const values = done.map((r) => r.metrics.joulesPerToken);
      const met = (n: number): boolean => n >= 3 && (ciHalfWidthPct(values.slice(0, n)) ?? 99) <= 10;
      for (let n = 3; n < values.length; n++) assert.equal(met(n), false, `target was met after ${n} cycles`);
      assert.equal(c.reason, met(values.length) ? 'targetMet' : 'maxCycles');
    }
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
