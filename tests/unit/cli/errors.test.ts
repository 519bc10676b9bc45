// Bad input on the command line and in the environment: exit 2, one line naming what to fix, no
// stack trace, nothing written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from './run-cli.ts';

function llem(
  args: string[],
  env: Record<string, string> = {},
  stdout: 'pipe' | number = 'pipe',
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', `${REPO}cli/main.ts`, ...args], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, LLEM_CLI_ENTRY: '1', LLEM_DEBUG: '', ...env },
    timeout: 120_000,
    stdio: ['ignore', stdout, 'pipe'],
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr };
}

const noStack = (s: string): void => assert.doesNotMatch(s, /internal error|\n\s+at /);
const SMALL = 'tests/fixtures/local/small.yaml';

void test('an unknown option is a usage error of that command, exit 2', () => {
  for (const [cmd, flag] of [
    ['controller', '--bogus'],
    ['run', '--simulat'],
    ['validate', '--nope'],
  ] as const) {
    const r = llem([cmd, flag]);
    assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`llem ${cmd}: Unknown option '${flag}'`));
    noStack(r.stderr);
  }
});

void test('a bad LLEM_LOG_LEVEL is refused by name before any command runs', () => {
  const r = llem(['plan', SMALL], { LLEM_LOG_LEVEL: 'verbose' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /LLEM_LOG_LEVEL: "verbose" is not one of trace, debug, info/);
  noStack(r.stderr);
});

void test('an unreadable manifest is named and the other files are still checked', () => {
  const r = llem(['validate', '/proc/self/mem', SMALL]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\/proc\/self\/mem: cannot read \(EIO\)/);
  assert.match(r.stdout, /small\.yaml: valid/);
  noStack(r.stderr);
});

void test('crd generate --out to a directory or a missing folder: exit 2 naming --out, no temp file left', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-crd-'));
  const asDir = llem(['crd', 'generate', '--out', dir]);
  assert.equal(asDir.code, 2);
  assert.match(asDir.stderr, /--out: cannot write \(EISDIR\): it is a directory/);
  const missing = llem(['crd', 'generate', '--out', join(dir, 'no', 'crd.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--out: cannot write \(ENOENT\): its directory does not exist/);
  assert.deepEqual(readdirSync(dir), []);
  const check = llem(['crd', 'check', join(dir, 'missing.yaml')]);
  assert.equal(check.code, 2);
  assert.match(check.stderr, /missing\.yaml: cannot read \(ENOENT\)/);
});

void test('llem run: an empty or missing --server-command or a bad LLEM_CLIENT_THREADS stops before anything is written', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'llem-run-bad-')), 'out');
  const empty = llem(['run', SMALL, '--simulate', '--out', out, '--server-command', ' ']);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /--server-command: is empty/);
  const missing = llem([
    'run',
    SMALL,
    '--simulate',
    '--out',
    out,
    '--server-command',
    'no-such-llem-server --port {port}',
  ]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /--server-command: "no-such-llem-server" is not a command on PATH/);
  const notExecutable = llem(['run', SMALL, '--simulate', '--out', out, '--server-command', `${SMALL} {port}`]);
  assert.equal(notExecutable.code, 2, notExecutable.stderr);
  assert.match(notExecutable.stderr, /--server-command: ".*small\.yaml" is not an executable file/);
  const threads = llem(['run', SMALL, '--simulate', '--out', out], { LLEM_CLIENT_THREADS: 'abc' });
  assert.equal(threads.code, 2);
  assert.match(threads.stderr, /LLEM_CLIENT_THREADS: must be a whole number/);
  assert.equal(existsSync(out), false);
});

void test('damaged results directories: show and export name the file and exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-results-bad-'));
  writeFileSync(
    join(dir, 'experiment.json'),
    JSON.stringify({
      schemaVersion: 1,
      kind: 'llem.dev/results',
      simulated: true,
      generatedAt: 'x',
      configurations: [{ id: 'c', configHash: 'h' }],
      results: { runs: [], configurations: [{ configId: 'c', configHash: 'h', metrics: {} }], experiment: {} },
      best: null,
    }),
  );
  const show = llem(['results', 'show', dir]);
  assert.equal(show.code, 2);
  assert.match(
    show.stderr,
    /experiment\.json: results\.configurations\.0\.metrics\.joulesPerToken: not a complete llem results file/,
  );
  noStack(show.stderr);
  const good = mkdtempSync(join(tmpdir(), 'llem-results-nocsv-'));
  cpSync(join(REPO, 'docs/validation/raw/h200-run-a/experiment.json'), join(good, 'experiment.json'));
  const exp = llem(['results', 'export', good, '--format', 'csv']);
  assert.equal(exp.code, 2, exp.stderr);
  assert.match(exp.stderr, /configs\.csv: cannot read \(ENOENT\); run llem run on that directory again/);
});

void test('a full stdout ends the command with one line, not a stack trace', () => {
  const r = llem(['crd', 'generate'], {}, 0);
  assert.equal(r.code, 0, 'sanity: writing to an inherited stdout works');
  const full = spawnSync(
    'sh',
    ['-c', `'${process.execPath}' --import tsx '${REPO}cli/main.ts' crd generate > /dev/full`],
    {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, LLEM_CLI_ENTRY: '1' },
    },
  );
  assert.equal(full.status, 1);
  assert.match(full.stderr, /^llem: cannot write output: ENOSPC\n$/);
});

void test('llem controller: a bad --kubeconfig or --backend-image is refused before connecting anywhere', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-ctl-'));
  writeFileSync(join(dir, 'kubeconfig'), 'clusters: [ this is : not yaml');
  for (const [args, re] of [
    [['--kubeconfig', join(dir, 'missing')], /missing: --kubeconfig: cannot load \(ENOENT/],
    [['--kubeconfig', join(dir, 'kubeconfig')], /kubeconfig: --kubeconfig: cannot load/],
    [['--backend-image', 'vllm'], /--backend-image: "vllm" is not TYPE=IMAGE/],
  ] as const) {
    // An unreachable NATS URL: the check must come first, or this would time out connecting.
    const r = llem(['controller', '--nats-url', 'nats://127.0.0.1:1', '--startup-timeout-seconds', '30', ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
    noStack(r.stderr);
  }
  const env = llem(['controller', '--nats-url', 'nats://127.0.0.1:1'], { LLEM_BACKEND_IMAGES: 'vllm=a:1,garbage' });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /LLEM_BACKEND_IMAGES: "garbage" is not TYPE=IMAGE/);
});
