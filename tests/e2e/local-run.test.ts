import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { processStartTicks } from '../../local/orphans.ts';
import { ResultsDirectory } from '../../local/state.ts';
import { REPO, runLlem, startLlem, type LlemProcess as LlemProcessHandle } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'llem-e2e-'));
}

/** The live record of each run in runs.ndjson (ADR 0025: the last line for a run id), as bytes on disk. */
function runFiles(out: string): Map<string, string> {
  const file = join(out, 'runs.ndjson');
  const live = new Map<string, string>();
  if (!existsSync(file)) return live;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    let rec: { runId?: string; superseded?: boolean; result?: { runId: string } };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue; // a torn last line
    }
    if (rec.superseded === true && rec.runId !== undefined) live.delete(`${rec.runId}.json`);
    else if (rec.result !== undefined) live.set(`${rec.result.runId}.json`, line);
  }
  return live;
}

/**
 * Files of the runs the state records as complete (a kill between a run's file and the state write leaves a run to
 * redo).
 */
function completeRunFiles(out: string): Map<string, string> {
  const state = new ResultsDirectory(out).readState() ?? { runs: {} };
  const complete = new Set(
    Object.entries(state.runs)
      .filter(([, r]) => r.status === 'complete')
      .map(([id]) => `${id}.json`),
  );
  return new Map([...runFiles(out)].filter(([name]) => complete.has(name)));
}

interface ExperimentJson {
  simulated: boolean;
  results: {
    runs: Array<{ runId: string; status: string; simulated: boolean }>;
    configurations: Array<{ metrics: { joulesPerToken: { mean: number | null; n: number } } }>;
  };
}

function experimentJson(out: string): ExperimentJson {
  return JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as ExperimentJson;
}

describe('llem run (local, simulated)', { timeout: 600_000 }, () => {
  it('runs the quickstart end to end in under a minute and writes a complete, simulated results directory', async () => {
    const out = join(tmp(), 'qs');
    const started = Date.now();
    const r = await runLlem(['run', 'examples/quickstart.yaml', '--simulate', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - started < 60_000, 'quickstart took longer than a minute');
    for (const f of [
      'experiment.json',
      'runs.csv',
      'configs.csv',
      'timeseries.csv',
      'report.html',
      'plots/joules-per-token.svg',
      'plots/power.svg',
      'plots/ttft-cdf.svg',
    ]) {
      assert.ok(existsSync(join(out, f)), `${f} missing`);
    }
    const doc = experimentJson(out);
    assert.equal(doc.simulated, true);
    assert.ok(doc.results.runs.length > 0 && doc.results.runs.every((x) => x.status === 'complete' && x.simulated));
    for (const c of doc.results.configurations)
      assert.ok(c.metrics.joulesPerToken.mean !== null && c.metrics.joulesPerToken.mean > 0);
    const summary = JSON.parse(r.stdout) as { simulated: boolean; runsComplete: number; runsPlanned: number };
    assert.equal(summary.simulated, true);
    assert.equal(summary.runsComplete, summary.runsPlanned);
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /SIMULATED/);
    assert.match(readFileSync(join(out, 'runs.csv'), 'utf8').split('\n')[1] ?? '', /,true,/);
  });

  for (const phase of [
    { name: 'during the first run, before anything completed', wait: /run 1\/4 \S+ attempt 0: started/, delayMs: 700 },
    {
      name: 'after one run completed, while the second is measuring',
      wait: /run 2\/4 \S+ attempt 0: started/,
      delayMs: 900,
    },
    { name: 'during the last run', wait: /run 4\/4 \S+ attempt 0: started/, delayMs: 500 },
  ]) {
    it(`resumes after SIGKILL ${phase.name}, keeping completed runs byte-for-byte`, async () => {
      const out = join(tmp(), 'resume');
      const first = startLlem(['run', SMALL, '--simulate', '--out', out]);
      await first.waitFor(phase.wait);
      await new Promise((r) => setTimeout(r, phase.delayMs));
      first.child.kill('SIGKILL');
      const killed = await first.done;
      assert.equal(killed.signal, 'SIGKILL');
      const before = completeRunFiles(out);
      const second = await runLlem(['run', SMALL, '--simulate', '--out', out]);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stderr, new RegExp(`\\(${before.size} already complete\\)`));
      const after = runFiles(out);
      assert.equal(after.size, 4);
      for (const [name, content] of before) assert.equal(after.get(name), content, `${name} changed on resume`);
      const doc = experimentJson(out);
      assert.ok(doc.results.runs.every((x) => x.status === 'complete'));
      for (const c of doc.results.configurations) assert.equal(c.metrics.joulesPerToken.n, 2);
    });
  }

  /** The orphan guards (agent/supervisor.ts) watching llem run `pid`: detached `sh` loops named llem-orphan-guard. */
  function orphanGuards(pid: number): number[] {
    return readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
          return argv.includes('llem-orphan-guard') && argv.includes(String(pid));
        } catch {
          return false;
        }
      })
      .map(Number);
  }

  async function startedWithServer(
    out: string,
    server: string[],
  ): Promise<{ first: LlemProcessHandle; orphan: { pid: number; startTicks: number } }> {
    const first = startLlem(['run', SMALL, '--simulate', '--out', out, ...server]);
    // Once it has served a run (a server killed while starting may die of its own closed pipes).
    await first.waitFor(/run \S+: complete/);
    const ledger = JSON.parse(readFileSync(join(out, '.llem', 'backends.json'), 'utf8')) as {
      backends: Array<{ pid: number; startTicks: number }>;
    };
    assert.equal(ledger.backends.length, 1);
    return { first, orphan: ledger.backends[0]! };
  }

  // A real server process (the mock server's CLI), as a GPU backend would be: not in llem's process.
  const server = ['--server-command', `${process.execPath} --import tsx ${REPO}cli/main.ts mock-server --port {port}`];

  it('stops the backend server of a SIGKILLed run by itself (the orphan guard), within the grace period', async () => {
    const out = join(tmp(), 'guarded');
    const { first, orphan } = await startedWithServer(out, server);
    first.child.kill('SIGKILL');
    await first.done;
    const t0 = Date.now();
    while (processStartTicks(orphan.pid) !== null && Date.now() - t0 < 15_000)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(processStartTicks(orphan.pid), null, 'the server did not outlive the SIGKILLed llem run');
  });

  it('stops the backend server a SIGKILLed run left behind (its guard killed too) before resuming on the same output directory', async () => {
    const out = join(tmp(), 'orphan');
    const { first, orphan } = await startedWithServer(out, server);
    const guards = orphanGuards(first.child.pid ?? -1);
    assert.ok(guards.length >= 1, 'a guard watches the run');
    for (const g of guards) process.kill(g, 'SIGKILL');
    first.child.kill('SIGKILL');
    await first.done;
    assert.equal(processStartTicks(orphan.pid), orphan.startTicks, 'without its guard the server outlives the run');
    const second = await runLlem(['run', SMALL, '--simulate', '--out', out, ...server]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /left running by an earlier llem run/);
    assert.equal(processStartTicks(orphan.pid), null, 'the orphaned server was stopped');
    const after = JSON.parse(readFileSync(join(out, '.llem', 'backends.json'), 'utf8')) as { backends: unknown[] };
    assert.deepEqual(after.backends, [], 'the second run stopped its own server too');
  });

  it('exits 130 on SIGINT and resumes afterwards', async () => {
    const out = join(tmp(), 'sigint');
    const first = startLlem(['run', SMALL, '--simulate', '--out', out]);
    await first.waitFor(/run 1\/4 \S+ attempt 0: started/);
    await new Promise((r) => setTimeout(r, 500));
    first.child.kill('SIGINT');
    const r = await first.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted; run the same command again to resume/);
    const again = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(again.code, 0, again.stderr);
  });

  it('refuses to resume with a changed manifest and names what changed', async () => {
    const dir = tmp();
    const manifest = join(dir, 'exp.yaml');
    copyFileSync(SMALL, manifest);
    const out = join(dir, 'out');
    const first = startLlem(['run', manifest, '--simulate', '--out', out]);
    await first.waitFor(/run 1\/4 \S+ attempt 0: started/);
    first.child.kill('SIGKILL');
    await first.done;
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('requests: 16', 'requests: 20'));
    const r = await runLlem(['run', manifest, '--simulate', '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /manifest changed since .*spec\.workload\.requests \(16 -> 20\).*--fresh/s);
    const fresh = await runLlem(['run', manifest, '--simulate', '--out', out, '--fresh']);
    assert.equal(fresh.code, 0, fresh.stderr);
  });

  it("fails the run with the backend's own words when the backend cannot start", async () => {
    const out = join(tmp(), 'nobackend');
    const r = await runLlem(['run', SMALL, '--simulate', '--out', out, '--server-command', 'sh -c exit_3_now;exit 3']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /failed to start: exited with code/);
    assert.match(
      r.stderr,
      /llem: warning: .*small\.yaml: spec\.measurement\.minWindowSeconds: 0 s is below 5 s/,
      'spec warnings are shown when the run starts',
    );
    const doc = experimentJson(out);
    assert.ok(doc.results.runs.every((x) => x.status !== 'complete'));
  });

  it('starts the backend again on another port when its port was taken before it could bind', async () => {
    const dir = tmp();
    // The first start fails as a server does when another process took its port in the meantime.
    const script = join(dir, 'server.sh');
    writeFileSync(
      script,
      [
        'if [ ! -e "$0.tried" ]; then touch "$0.tried"; echo "[Errno 98] error while attempting to bind on address (\'127.0.0.1\', $1): address already in use" >&2; exit 1; fi',
        `exec ${process.execPath} --import tsx ${REPO}cli/main.ts mock-server --port "$1"`,
      ].join('\n'),
    );
    const out = join(dir, 'out');
    const r = await runLlem(['run', SMALL, '--simulate', '--out', out, '--server-command', `sh ${script} {port}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /port was taken before the backend could bind it/);
    assert.ok(experimentJson(out).results.runs.every((x) => x.status === 'complete'));
  });

  it('stops a backend that does not become ready within backends[].readinessTimeoutSeconds and fails the run', async () => {
    const dir = tmp();
    const manifest = join(dir, 'slow.yaml');
    writeFileSync(
      manifest,
      readFileSync(SMALL, 'utf8').replace(
        '    - type: pytorch',
        '    - type: pytorch\n      readinessTimeoutSeconds: 2',
      ),
    );
    const marker = `${600 + Math.floor(Math.random() * 1000)}.25`; // a server that never answers /health
    const started = Date.now();
    const r = await runLlem([
      'run',
      manifest,
      '--simulate',
      '--out',
      join(dir, 'out'),
      '--server-command',
      `sleep ${marker}`,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /backend not ready after 2 s/);
    assert.ok(Date.now() - started < 30_000, "gave up after the manifest's timeout, not the backend default of 30 min");
    const survivors = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}\0`;
        } catch {
          return false;
        }
      });
    assert.deepEqual(survivors, [], 'the server that never became ready was stopped');
  });

  it('refuses a ConfigMap dataset with what to use instead, before creating anything', async () => {
    const dir = tmp();
    const manifest = join(dir, 'cm.yaml');
    writeFileSync(
      manifest,
      readFileSync(SMALL, 'utf8').replace(
        / {4}dataset:\n {6}synthetic:\n.*\n.*\n/,
        '    dataset:\n      configMapRef: { name: prompts }\n',
      ),
    );
    assert.match(readFileSync(manifest, 'utf8'), /configMapRef/);
    const r = await runLlem(['run', manifest, '--simulate', '--out', join(dir, 'out')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /cm\.yaml: spec\.workload\.dataset\.configMapRef: a ConfigMap exists only in a cluster; .*workload\.dataset\.prompts/,
    );
    assert.deepEqual(readdirSync(dir), ['cm.yaml']);
  });

  it('refuses to write into a directory that is neither empty nor a llem results directory, with or without --fresh', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'notes.txt'), 'precious');
    for (const extra of [[], ['--fresh']]) {
      const r = await runLlem(['run', SMALL, '--simulate', '--out', dir, ...extra]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /is not empty and is not a llem results directory .*choose a new or empty --out/);
    }
    assert.deepEqual(readdirSync(dir), ['notes.txt']);
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'precious');
    const file = join(dir, 'notes.txt');
    const r = await runLlem(['run', SMALL, '--simulate', '--out', file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /notes\.txt: is a file, not a directory/);
  });

  it('a damaged run file or checkpoint in a results directory is named, exit 2, with --fresh as the way out', async () => {
    const out = join(tmp(), 'damaged');
    assert.equal((await runLlem(['run', SMALL, '--simulate', '--out', out])).code, 0);
    const log = join(out, 'runs.ndjson');
    writeFileSync(log, '{trunc\n' + readFileSync(log, 'utf8'));
    const r = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /runs\.ndjson: is damaged: line at byte 0 is not readable JSON.*--fresh/);
    writeFileSync(join(out, '.llem', 'checkpoint.bin'), 'garbage');
    const cp = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(cp.code, 2, cp.stderr);
    assert.match(cp.stderr, /\.llem\/checkpoint\.bin: is damaged: .*--fresh/);
    assert.equal((await runLlem(['run', SMALL, '--simulate', '--out', out, '--fresh'])).code, 0);
  });

  it('refuses an output directory that cannot be written, leaving nothing behind', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a-file'), 'x');
    const out = join(dir, 'a-file', 'results');
    const r = await runLlem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /a-file\/results: output directory is not writable \(ENOTDIR\)/);
    assert.deepEqual(readdirSync(dir), ['a-file']);
  });

  it('refuses to run without a GPU unless --simulate is given', async () => {
    const out = join(tmp(), 'nogpu');
    const r = await runLlem(['run', SMALL, '--out', out], { LLEM_NVML_LIBRARY: 'libnvidia-ml-missing.so.1' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no NVIDIA GPU is usable on this machine.*--simulate/s);
    assert.equal(existsSync(out), false);
  });

  it('rejects an invalid manifest with exit code 2 before touching anything', async () => {
    const dir = tmp();
    const manifest = join(dir, 'bad.yaml');
    writeFileSync(manifest, readFileSync(SMALL, 'utf8').replace('cycles: 2', 'cycles: 0'));
    const r = await runLlem(['run', manifest, '--simulate', '--out', join(dir, 'out')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /spec\.measurement\.cycles/);
    assert.equal(existsSync(join(dir, 'out')), false);
  });
});
