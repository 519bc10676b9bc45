// One writer per results directory (issue #19): a second `llem run` on a directory another run is
// writing exits 2 naming the holder's PID and writes nothing; a killed run's lock is taken over.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bootId, processStartTicks } from '../../local/orphans.ts';
import { LOCK_FILE } from '../../local/lock.ts';
import { REPO, runLlem, startLlem } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');

function statuses(out: string): string[] {
  const doc = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as {
    results: { runs: Array<{ status: string }> };
  };
  return doc.results.runs.map((r) => r.status);
}

describe('results directory lock', { timeout: 300_000 }, () => {
  it('refuses a second llem run on a directory another run is writing, naming its PID, and lets the first finish', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-lock-')), 'results');
    const first = startLlem(['run', SMALL, '--simulate', '--out', out]);
    await first.waitFor(/run 1\/4 .* started/);
    const lock = JSON.parse(readFileSync(join(out, LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(lock.pid, first.child.pid);
    const second = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(second.code, 2, second.stderr);
    assert.match(second.stderr, new RegExp(`PID ${String(first.child.pid)}\\b`));
    assert.equal(second.stderr.trim().split('\n').length, 1, `one line: ${second.stderr}`);
    const done = await first.done;
    assert.equal(done.code, 0, done.stderr);
    assert.deepEqual(statuses(out), ['complete', 'complete', 'complete', 'complete']);
    assert.equal(existsSync(join(out, LOCK_FILE)), false, 'the lock is released when the run ends');
  });

  it('takes over the lock of a run that was killed and finishes the experiment', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-lock-')), 'results');
    const first = startLlem(['run', SMALL, '--simulate', '--out', out]);
    await first.waitFor(/run 1\/4 .* started/);
    first.child.kill('SIGKILL');
    await first.done;
    assert.equal(existsSync(join(out, LOCK_FILE)), true, 'SIGKILL leaves the lock behind');
    const second = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, new RegExp(`took over the lock .*PID ${String(first.child.pid)}`));
    assert.deepEqual(statuses(out), ['complete', 'complete', 'complete', 'complete']);
  });

  it('lets exactly one of two runs started together take over a stale lock; the other exits 2 naming it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-lock-')), 'results');
    mkdirSync(out);
    // A lock left by a process that is gone: PID 2^22 - 1 is above every default pid_max but the largest.
    writeFileSync(
      join(out, LOCK_FILE),
      JSON.stringify({ pid: 4194303, host: hostname(), procStart: 1, bootId: bootId(), startedAt: 'then' }),
    );
    const a = startLlem(['run', SMALL, '--simulate', '--out', out]);
    const b = startLlem(['run', SMALL, '--simulate', '--out', out]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    const codes = [ra.code, rb.code].sort();
    assert.deepEqual(codes, [0, 2], `${ra.stderr}\n---\n${rb.stderr}`);
    const [winner, loser] = ra.code === 0 ? [a, rb] : [b, ra];
    assert.match(loser.stderr, new RegExp(`PID ${String(winner.child.pid)}\\b`));
    assert.deepEqual(statuses(out), ['complete', 'complete', 'complete', 'complete']);
  });

  it('treats a lock whose PID now belongs to another process (a different start time) as stale', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-lock-')), 'results');
    mkdirSync(out);
    // This test process is alive, but it is not the process that wrote the lock: its start time differs.
    const ticks = processStartTicks(process.pid);
    assert.notEqual(ticks, null, 'needs /proc');
    writeFileSync(
      join(out, LOCK_FILE),
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        procStart: (ticks ?? 0) + 12345,
        bootId: bootId(),
        startedAt: '2026-01-01T00:00:00.000Z',
      }),
    );
    const r = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(statuses(out), ['complete', 'complete', 'complete', 'complete']);
  });
});
