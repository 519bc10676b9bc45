// bin/llem.mjs on the Node.js versions a user may have (ADR 0015): below 20 one line and exit 2;
// on the machine's Node 20 the bundle runs, and `llem controller` (Kubernetes client: Node >= 22)
// says so in one line instead of crashing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from './llem-process.ts';
import { findSystemNode } from './system-node.ts';

const BIN = join(REPO, 'bin', 'llem.mjs');
const system = findSystemNode();
const systemMajor = system === null ? 0 : Number(system.version.replace(/^v/, '').split('.')[0]);

/** Makes the process report another Node.js version before bin/llem.mjs reads it. */
const fakeVersion = (v: string): string =>
  `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${v}"});Object.defineProperty(process,"version",{value:"v${v}"})`;

function llem(
  node: string,
  args: string[],
  preload: string[] = [],
): { code: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['LLEM_FROM_SOURCE'];
  const r = spawnSync(node, [...preload, BIN, ...args], { cwd: REPO, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bin/llem.mjs and the Node.js version', { timeout: 240_000 }, () => {
  it('refuses Node.js 18 with one line that says what to do, exit 2, no stack trace', () => {
    const r = llem(
      process.execPath,
      ['run', 'examples/quickstart.yaml', '--simulate'],
      ['--import', fakeVersion('18.19.0')],
    );
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /needs Node\.js >= 20, this is v18\.19\.0; install .*node-env\.sh/);
    assert.equal(r.stdout, '');
  });

  it(
    `validates a manifest on the machine's own node (${system?.version ?? 'none'})`,
    { skip: system === null ? 'no system node' : false },
    () => {
      const r = llem(system?.node ?? '', ['validate', 'examples/quickstart.yaml']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /quickstart\.yaml: valid/);
    },
  );

  it(
    'says in one line that llem controller needs Node.js >= 22 on Node 20, exit 2',
    { skip: systemMajor >= 22 || system === null ? `the machine's node is ${system?.version ?? 'missing'}` : false },
    () => {
      const r = llem(system?.node ?? '', ['controller']);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /llem controller: needs Node\.js >= 22/);
    },
  );
});
