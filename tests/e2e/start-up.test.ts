// Start-up cost of `llem validate` (issue #19: < 300 ms on a small manifest): the bundle's code
// splitting must keep the Kubernetes client, the NATS client and pino out of the commands that do
// not use them, and no TypeScript may be transpiled. Measured as what the process loads (a module
// hook lists every file), which load on the machine cannot skew; bench/cli.ts has the timings.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REPO } from './llem-process.ts';

const HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module';
registerHooks({ load(url, context, next) { if (url.startsWith('file:')) process.stderr.write('LOADED ' + url + '\\n'); return next(url, context); } });
`)}`;

function loaded(args: string[]): string[] {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['LLEM_FROM_SOURCE'];
  const r = spawnSync(process.execPath, ['--import', HOOK, join(REPO, 'bin', 'llem.mjs'), ...args], {
    cwd: REPO,
    env,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr
    .split('\n')
    .filter((l) => l.startsWith('LOADED '))
    .map((l) => fileURLToPath(l.slice('LOADED '.length)));
}

describe(
  'llem validate start-up',
  { skip: process.versions.node.split('.').map(Number)[0]! < 23 ? 'needs module.registerHooks' : false },
  () => {
    it('loads only compiled JavaScript, and neither the Kubernetes nor the NATS client nor pino', () => {
      loaded(['--help']); // a stale or missing dist/ is rebuilt here, not measured below
      const files = loaded(['validate', '--quiet', 'examples/quickstart.yaml']);
      assert.ok(
        files.some((f) => f.endsWith(join('dist', 'llem.mjs'))),
        files.join('\n'),
      );
      assert.deepEqual(
        files.filter((f) => f.endsWith('.ts')),
        [],
        'no TypeScript',
      );
      assert.deepEqual(
        files.filter((f) => f.includes('node_modules')),
        [],
        'everything but koffi is in the bundle; tsx is not loaded',
      );
      const text = files
        .filter((f) => f.includes(join(REPO, 'dist')))
        .map((f) => readFileSync(f, 'utf8'))
        .join('\n');
      for (const marker of ['KubeConfig', '@nats-io', 'thread-stream'])
        assert.equal(text.includes(marker), false, `loads ${marker}`);
      const bytes = files.reduce((n, f) => n + readFileSync(f).length, 0);
      assert.ok(bytes < 2_000_000, `validate loads ${bytes} bytes of JavaScript`);
    });
  },
);
