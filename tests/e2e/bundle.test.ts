// The bundled CLI (scripts/bundle.mjs: what the agent image and the GPU runs ship) runs a local
// experiment with its worker threads loaded from the bundle's own entry points.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from './llem-process.ts';

void test(
  'the bundle runs llem run with the sampler and load-client threads from its own files',
  { timeout: 180_000 },
  (t) => {
    // Inside the repository, so that koffi (kept external) resolves from its node_modules.
    const dist = join(REPO, '.cache', `bundle-test-${process.pid}`);
    t.after(() => rmSync(dist, { recursive: true, force: true }));
    execFileSync(process.execPath, [join(REPO, 'scripts', 'bundle.mjs'), dist], { cwd: REPO, stdio: 'pipe' });
    for (const f of ['llem.mjs', 'agent-sampler-worker.mjs', 'agent-client-worker.mjs'])
      assert.ok(existsSync(join(dist, f)), `${f} in the bundle`);
    const out = join(mkdtempSync(join(tmpdir(), 'llem-bundle-')), 'results');
    const r = spawnSync(
      process.execPath,
      [join(dist, 'llem.mjs'), 'run', join(REPO, 'tests/fixtures/local/small.yaml'), '--simulate', '--out', out],
      {
        cwd: REPO,
        env: { ...process.env, LLEM_LOG_LEVEL: 'warn', LLEM_CLIENT_THREADS: '2' },
        encoding: 'utf8',
        timeout: 150_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as {
      simulated: boolean;
      results: { runs: Array<{ status: string }> };
    };
    assert.equal(doc.simulated, true);
    assert.deepEqual(
      doc.results.runs.map((x) => x.status),
      ['complete', 'complete', 'complete', 'complete'],
    );
  },
);
