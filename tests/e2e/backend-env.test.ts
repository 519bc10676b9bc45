// llem run gives a backend server only the variables its launcher declares, process basics and --pass-env
// names (ADR 0025): the tests read /proc/<pid>/environ of the real server process.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backendEnvironment, parsePassEnv } from '../../local/backend-env.ts';
import { InvalidInputError } from '../../lib/errors.ts';
import { REPO, runLlem } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');
const SECRETS = {
  HF_TOKEN: 'hf_secretvalue_0123456789',
  HUGGING_FACE_HUB_TOKEN: 'hf_othersecret_9876543210',
  AWS_SECRET_ACCESS_KEY: 'aws-secret-abcdefghij',
  GITHUB_TOKEN: 'ghp_secretsecretsecret',
};

/** A server that records its own /proc/<pid>/environ, then becomes the mock server (same process, exec). */
function recordingServer(dir: string): { script: string; environ: string } {
  const script = join(dir, 'server.sh');
  const environ = join(dir, 'environ');
  writeFileSync(
    script,
    [
      `[ -e ${environ} ] || cat /proc/$$/environ > ${environ}`,
      `exec ${process.execPath} --import tsx ${REPO}cli/main.ts mock-server --port "$1"`,
    ].join('\n'),
  );
  return { script, environ };
}

function environOf(file: string): Map<string, string> {
  const entries = readFileSync(file, 'utf8')
    .split('\0')
    .filter((e) => e !== '')
    .map((e): [string, string] => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]);
  return new Map(entries);
}

describe('the environment of a backend started by llem run', () => {
  it("holds none of the user's secrets, only the launcher's variables, process basics and --pass-env names", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-env-'));
    const { script, environ } = recordingServer(dir);
    const r = await runLlem(
      [
        ...['run', SMALL, '--simulate', '--out', join(dir, 'out'), '--server-command', `sh ${script} {port}`],
        ...['--pass-env', 'LLEM_TEST_PASSED,LLEM_TEST_ALSO', '--pass-env', 'LLEM_TEST_UNSET'],
      ],
      { ...SECRETS, LLEM_TEST_PASSED: 'visible', LLEM_TEST_ALSO: 'also', LLEM_TEST_NOT_PASSED: 'hidden' },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(environ), 'the server recorded its environment');
    const env = environOf(environ);
    const raw = readFileSync(environ, 'utf8');
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.equal(env.has(name), false, `${name} reached the backend`);
      assert.ok(!raw.includes(value), `the value of ${name} reached the backend`);
    }
    assert.equal(env.get('LLEM_TEST_PASSED'), 'visible');
    assert.equal(env.get('LLEM_TEST_ALSO'), 'also');
    assert.equal(env.has('LLEM_TEST_NOT_PASSED'), false);
    assert.equal(env.has('LLEM_TEST_UNSET'), false);
    assert.equal(env.get('PATH'), process.env['PATH']);
    assert.match(env.get('LLEM_PORT') ?? '', /^\d+$/, 'the launcher-declared port');
  });

  it('refuses a --pass-env entry that is not a variable name, naming the flag, exit 2', async () => {
    assert.throws(
      () => parsePassEnv(['OK_NAME,bad-name']),
      (e: unknown) => e instanceof InvalidInputError && e.exitCode === 2 && /--pass-env: "bad-name"/.test(e.message),
    );
    const dir = mkdtempSync(join(tmpdir(), 'llem-env-'));
    const r = await runLlem(['run', SMALL, '--simulate', '--out', join(dir, 'out'), '--pass-env', 'A=B']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--pass-env: "A=B" is not an environment variable name/);
    assert.equal(existsSync(join(dir, 'out')), false, 'nothing written');
  });

  it('lets the launcher override a passed variable of the same name', () => {
    const env = backendEnvironment({ PATH: '/bin', LLEM_PORT: '1', SECRET: 's' }, { LLEM_PORT: '2' }, ['LLEM_PORT']);
    assert.deepEqual(env, { PATH: '/bin', LLEM_PORT: '2' });
  });
});
