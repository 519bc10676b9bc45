// `llem run` of a load ladder with --simulate (ADR 0030): steps past saturation are skipped, every output
// says simulated, the report carries the ladder, SLO and frontier sections, `llem results compare` prints
// the frontier, and a ladder SIGKILLed mid-way resumes and decides by the same rule.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ResultsDirectory } from '../../local/state.ts';
import { runLlem, startLlem } from './llem-process.ts';

const EXAMPLE = 'examples/load-ladder.yaml';

interface Summary {
  simulated: boolean;
  configurations: Array<{ id: string; ladder?: { step: number; load: number } }>;
  analysis: {
    slo: { choice: { statement: string }; configurations: Array<{ configId: string; summary: string }> };
    ladders: Array<{
      saturatedAt: number | null;
      reason: string;
      knee: { step: number } | null;
      points: Array<{ step: number; configId: string; ran: boolean }>;
    }>;
  };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'llem-ladder-'));
}

function summary(out: string): Summary {
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
}

/** Each ladder step's run statuses, from the results directory's state. */
function stepStatuses(out: string, doc: Summary): Map<number, string[]> {
  const state = new ResultsDirectory(out).readState();
  assert.ok(state !== null);
  const byStep = new Map<number, string[]>();
  for (const [runId, rec] of Object.entries(state.runs)) {
    const c = doc.configurations.find((x) => runId.startsWith(`${x.id}-c`));
    const step = c?.ladder?.step;
    assert.ok(step !== undefined, `run ${runId} belongs to a ladder step`);
    byStep.set(step, [...(byStep.get(step) ?? []), rec.status]);
  }
  return byStep;
}

/**
 * Steps up to the saturating one ran (complete), the ones after it were skipped, none is pending; a ladder
 * that never saturated ran every step. (A loaded test machine makes simulated throughput noisy, so which
 * step saturates is not fixed here: the unit and controller tests pin the rule with exact figures.)
 */
function assertLadderConsistent(out: string): Summary {
  const doc = summary(out);
  const ladder = doc.analysis.ladders[0];
  assert.ok(ladder !== undefined);
  const last = ladder.saturatedAt ?? Infinity;
  if (ladder.saturatedAt === null) assert.match(ladder.reason, /did not saturate within maxSteps/);
  for (const [step, statuses] of stepStatuses(out, doc)) {
    const want = step <= last ? 'complete' : 'skipped';
    assert.ok(
      statuses.every((s) => s === want),
      `step ${step}: ${statuses.join(',')} (${ladder.reason})`,
    );
  }
  for (const p of ladder.points) assert.equal(p.ran, p.step <= last, `step ${p.step}`);
  return doc;
}

void describe('llem run of a load ladder (simulated)', { timeout: 600_000 }, () => {
  void it('runs the steps up to saturation, skips the rest, and writes simulated ladder, SLO and frontier results', async () => {
    const out = join(tmp(), 'ladder');
    const r = await runLlem(['run', EXAMPLE, '--simulate', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const doc = assertLadderConsistent(out);
    assert.equal(doc.simulated, true);
    const ladder = doc.analysis.ladders[0]!;
    assert.ok(ladder.knee === null || ladder.knee.step <= (ladder.saturatedAt ?? Infinity));
    if (ladder.points.some((p) => !p.ran))
      assert.match(r.stderr, /(skipped|not needed) — ladder \S+ saturated at step \d/);
    assert.match(
      doc.analysis.slo.choice.statement,
      /uses the least energy of the \d configuration\(s\) that meet the SLOs/,
    );
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const section of [
      '<h2>Load ladder</h2>',
      '<h2>SLOs and goodput</h2>',
      '<h2>Pareto frontier</h2>',
      'SIMULATED',
    ])
      assert.ok(html.includes(section), section);
    const plots = ['energy', 'throughput', 'ttft', 'itl'].map((m) => `ladder-${ladderGroup(out)}-${m}.svg`);
    for (const p of [...plots, 'pareto-frontier.svg']) {
      const svg = readFileSync(join(out, 'plots', p), 'utf8');
      assert.match(svg, /\(simulated\)/, p);
    }
    const shown = await runLlem(['results', 'show', out]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /load ladder \S+ \(concurrency\): (saturated at step \d|did not saturate)/);
    assert.match(shown.stdout, /knee: step \d/);
    const compared = await runLlem(['results', 'compare', out, out]);
    assert.equal(compared.code, 0, compared.stderr);
    assert.match(compared.stdout, /Pareto frontier, J\/token vs tokens\/s/);
    // The same directory twice: every configuration ties with its twin, so both are on the frontier or neither.
    assert.match(compared.stdout, /A:pytorch workload\.concurrency=\d+\s+FRONTIER/);
    assert.match(compared.stdout, /B:pytorch workload\.concurrency=\d+\s+FRONTIER/);
  });

  void it('runs the simulated SLO rate-ladder example to a decision, with goodput per step', async () => {
    const out = join(tmp(), 'rate');
    const r = await runLlem(['run', 'examples/slo-rate-ladder.yaml', '--simulate', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const doc = summary(out);
    assert.equal(doc.simulated, true);
    assertLadderConsistent(out);
    const ladder = doc.analysis.ladders[0];
    assert.ok(ladder !== undefined);
    assert.match(ladder.reason, /throughput stopped rising|SLO broken|did not saturate within maxSteps \(5\)/);
    const goodput = doc.analysis.slo.configurations.filter((c) => !c.summary.startsWith('unknown'));
    assert.ok(goodput.length >= 1);
    const shown = await runLlem(['results', 'show', out]);
    assert.match(shown.stdout, /SLOs: goodput \(SLO-met requests\/s\)/);
    assert.match(shown.stdout, /lowest energy meeting the SLOs: /);
  });

  void it('resumes a ladder SIGKILLed mid-way: finished steps are kept and the rest follow the same rule', async () => {
    const out = join(tmp(), 'resume');
    const first = startLlem(['run', EXAMPLE, '--simulate', '--out', out]);
    await first.waitFor(/run 4\/10 \S+ attempt 0: started/, 120_000);
    first.child.kill('SIGKILL');
    assert.equal((await first.done).signal, 'SIGKILL');
    const before = new ResultsDirectory(out).readState();
    const completeBefore = Object.entries(before?.runs ?? {}).filter(([, r]) => r.status === 'complete');
    assert.ok(completeBefore.length >= 2, 'step 0 finished before the kill');
    const second = await runLlem(['run', EXAMPLE, '--simulate', '--out', out]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, new RegExp(`\\(${completeBefore.length} already complete\\)`));
    const after = new ResultsDirectory(out).readState();
    for (const [id] of completeBefore) assert.equal(after?.runs[id]?.status, 'complete', id);
    assertLadderConsistent(out);
    // Running it again changes nothing: every run is complete or skipped.
    const third = await runLlem(['run', EXAMPLE, '--simulate', '--out', out]);
    assert.equal(third.code, 0, third.stderr);
    assert.doesNotMatch(third.stderr, /attempt 0: started/);
    assert.ok(existsSync(join(out, 'report.html')));
  });
});

function ladderGroup(out: string): string {
  const doc = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
    analysis: { ladders: Array<{ group: string }> };
  };
  return doc.analysis.ladders[0]?.group ?? '';
}
