// A vLLM-shaped multi-process backend (tests/support/fake-vllm-tree.ts: front process, one worker per GPU,
// a helper that ignores SIGTERM for 30 s; "GPU memory" held by each of them, visible as pid files) under
// `llem run`: signals at each phase leave no process of the tree alive, a worker dying mid-window fails the
// run with a reason in bounded time, and a stop escalates SIGTERM -> SIGKILL after backends[].shutdownGraceSeconds.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { REPO, startLlem, type LlemProcess } from './llem-process.ts';
import { memoryHolders as holders, memoryReleasedAfter as releasedAfter, until } from '../support/fake-gpu-memory.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');

interface Setup {
  dir: string;
  memDir: string;
  args: string[];
}

function setup(graceSeconds: number, helperIgnoreTermMs = 30_000): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'llem-tree-'));
  const memDir = join(dir, 'gpu-memory');
  const manifest = join(dir, 'tree.yaml');
  writeFileSync(
    manifest,
    readFileSync(SMALL, 'utf8').replace(
      '    - type: pytorch',
      `    - type: pytorch\n      shutdownGraceSeconds: ${graceSeconds}`,
    ),
  );
  const server = [
    process.execPath,
    ...['--import', 'tsx', join(REPO, 'tests/support/fake-vllm-tree.ts')],
    ...['--port', '{port}', '--mem-dir', memDir, '--gpus', '2'],
    ...['--helper-ignore-term-ms', String(helperIgnoreTermMs)],
  ].join(' ');
  return { dir, memDir, args: ['run', manifest, '--simulate', '--out', join(dir, 'out'), '--server-command', server] };
}

const PHASES: Array<{ name: string; reach: (p: LlemProcess, s: Setup) => Promise<void> }> = [
  {
    name: 'while the backend tree starts (before it is ready)',
    reach: (_p, s) => until('the workers to hold memory', () => holders(s.memDir).length >= 4),
  },
  {
    name: "during a run's measurement",
    // Run 2 reuses the server run 1 started: its tree is up and the run is measuring.
    reach: async (p) => {
      await p.waitFor(/run 2\/4 \S+ attempt 0: started/);
      await new Promise((r) => setTimeout(r, 300));
    },
  },
];

const GRACE_S = 1;
// Grace, then the guard's 0.2 s poll and the worker's own 0.2 s exit, with room for a loaded machine.
const RELEASE_LIMIT_MS = GRACE_S * 1000 + 8000;

describe('llem run with a multi-process backend (simulated vLLM process tree)', () => {
  for (const phase of PHASES) {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
      it(`${sig} ${phase.name} leaves no process of the tree alive and reports when the memory was free`, async (t: TestContext) => {
        const s = setup(GRACE_S);
        const p = startLlem(s.args);
        await phase.reach(p, s);
        assert.ok(holders(s.memDir).length >= 4, 'front, two workers and the helper hold memory');
        const t0 = performance.now();
        p.child.kill(sig);
        const done = await p.done;
        const ms = await releasedAfter(s.memDir, t0, RELEASE_LIMIT_MS);
        t.diagnostic(`${sig} ${phase.name}: GPU memory released ${ms} ms after the signal`);
        if (sig === 'SIGKILL') assert.equal(done.signal, 'SIGKILL');
        else assert.equal(done.code, 130, done.stderr);
        // The helper ignores SIGTERM for 30 s: freed in time only because the stop escalated to SIGKILL.
        assert.ok(ms < RELEASE_LIMIT_MS, `released in ${ms} ms`);
      });
    }
  }

  it('a worker that dies mid-window fails the run at once with the dead process named, and the next run gets a new tree', async () => {
    const s = setup(GRACE_S);
    const p = startLlem(s.args);
    await p.waitFor(/run 2\/4 \S+ attempt 0: started/);
    const worker = Number(readFileSync(join(s.memDir, 'worker-1.pid'), 'utf8'));
    const t0 = performance.now();
    process.kill(worker, 'SIGKILL');
    await p.waitFor(/process \d+ of the backend's process tree \(.*--role worker-1.*\) died/, 15_000);
    const failedMs = performance.now() - t0;
    const done = await p.done;
    assert.equal(done.code, 1, done.stderr);
    assert.ok(failedMs < 10_000, `failed after ${Math.round(failedMs)} ms`);
    assert.match(done.stderr, /run 3\/4 \S+ attempt 0: started/, 'the following runs went on with a new server');
    assert.match(done.stderr, /run 4\/4 \S+ attempt 0: started[^]*complete/);
    assert.deepEqual(holders(s.memDir), [], 'nothing of either tree is left');
  });

  it('escalates SIGTERM to SIGKILL after backends[].shutdownGraceSeconds, and waits that long first', async (t: TestContext) => {
    for (const grace of [1, 4]) {
      const s = setup(grace);
      const p = startLlem(s.args);
      await p.waitFor(/run 2\/4 \S+ attempt 0: started/);
      const t0 = performance.now();
      p.child.kill('SIGTERM');
      await p.done;
      const ms = await releasedAfter(s.memDir, t0, grace * 1000 + 8000);
      t.diagnostic(`grace ${grace} s: released after ${ms} ms (the helper ignores SIGTERM for 30 s)`);
      assert.ok(ms >= grace * 1000 - 200, `grace ${grace} s honoured before SIGKILL (${ms} ms)`);
      assert.ok(ms < grace * 1000 + 8000, `SIGKILL after the grace (${ms} ms)`);
    }
  });
});
