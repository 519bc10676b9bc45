// The first five minutes (issue #19): the README's main command, exactly as written, in a fresh copy
// of the checkout on the machine's own Node.js (v20 here) and on Node 24; and the packed tarball
// installed into an empty folder runs the quickstart. These are the slowest e2e tests (npm ci, three
// quickstarts), so the Node 24 run and the tarball run go side by side.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from './llem-process.ts';
import { findSystemNode, pathWithoutCachedNode } from './system-node.ts';

const README_COMMAND = 'npm ci && npx llem run examples/quickstart.yaml --simulate';
/** Not copied into the fresh checkout: what npm ci, a build or a run makes. */
const NOT_SOURCE = new Set(['node_modules', 'dist', '.git', '.cache', 'llem-results', 'results', '.device', 'bin/node']);

interface Shell {
  code: number | null;
  output: string;
}

/** `bash -c command` in `cwd`, stdout and stderr interleaved as a user's terminal shows them. */
function sh(command: string, cwd: string, path: string, timeoutMs: number): Promise<Shell> {
  const env: NodeJS.ProcessEnv = {
    ...process.env, PATH: path, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  for (const k of ['LLEM_LOG_LEVEL', 'LLEM_CLI_ENTRY', 'NODE_OPTIONS', 'LLEM_FROM_SOURCE']) delete env[k];
  const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.once('close', (code) => {
    clearTimeout(timer);
    resolve({ code, output });
  }));
}

/** Checks a quickstart results directory: 4 complete simulated runs and a report. */
function assertQuickstart(out: string, r: Shell): void {
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /4\/4 runs complete/);
  assert.doesNotMatch(r.output, /Unknown file extension|ERR_| {4}at /, 'no stack trace, no loader error');
  assert.deepEqual(r.output.split('\n').filter((l) => l.startsWith('{')), [], 'no structured log lines by default');
  const doc = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as { simulated: boolean; results: { runs: Array<{ status: string }> } };
  assert.equal(doc.simulated, true);
  assert.deepEqual(doc.results.runs.map((x) => x.status), ['complete', 'complete', 'complete', 'complete']);
  assert.ok(existsSync(join(out, 'report.html')));
}

const system = findSystemNode();
const node24Path = [dirname(process.execPath), ...pathWithoutCachedNode()].join(delimiter);

describe('first run on a fresh machine', { timeout: 420_000, skip: system === null ? 'no node on PATH besides the test runner' : false }, () => {
  const root = mkdtempSync(join(tmpdir(), 'llem-first-run-'));
  const checkout = join(root, 'checkout');
  let ciAndRun: Promise<Shell>;

  before(() => {
    cpSync(REPO, checkout, { recursive: true, filter: (src) => !NOT_SOURCE.has(relative(REPO, src)) });
    ciAndRun = sh(README_COMMAND, checkout, system?.path ?? '', 300_000);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it(`runs the README's main command as written on the machine's own node (${system?.version ?? 'none'})`, async () => {
    const r = await ciAndRun;
    assertQuickstart(join(checkout, 'llem-results', 'quickstart'), r);
    assert.doesNotMatch(r.output, /needs Node\.js/);
  });

  it('runs the quickstart on Node 24 and, side by side, from the packed tarball installed into an empty folder', { skip: process.versions.node.startsWith('20.') ? 'the test runner is Node 20' : false }, async () => {
    const first = await ciAndRun;
    assert.equal(first.code, 0, first.output);
    renameSync(join(checkout, 'llem-results'), join(root, 'results-system-node'));
    const pack = join(root, 'pack');
    mkdirSync(pack);
    const packed = await sh(`npm pack --silent --pack-destination ${pack}`, checkout, node24Path, 120_000);
    assert.equal(packed.code, 0, packed.output);
    const tgz = readdirSync(pack).find((f) => f.endsWith('.tgz'));
    assert.ok(tgz !== undefined, packed.output);
    const files = await sh(`tar tzf ${join(pack, tgz)}`, root, node24Path, 30_000);
    assert.doesNotMatch(files.output, /\.ts$/m, 'no TypeScript in the package');
    const installed = join(root, 'installed');
    mkdirSync(installed);
    const [node24, fromTarball] = await Promise.all([
      sh('npx llem run examples/quickstart.yaml --simulate', checkout, node24Path, 180_000),
      sh(`npm install ${join(pack, tgz)} && npx llem --help && npx llem validate node_modules/llenergymeasure/examples/quickstart.yaml` +
        ' && npx llem run node_modules/llenergymeasure/examples/quickstart.yaml --simulate', installed, system?.path ?? '', 240_000),
    ]);
    assertQuickstart(join(checkout, 'llem-results', 'quickstart'), node24);
    assert.match(fromTarball.output, /usage: llem <command>/);
    assert.match(fromTarball.output, /quickstart\.yaml: valid/);
    assertQuickstart(join(installed, 'llem-results', 'quickstart'), fromTarball);
    assert.equal(existsSync(join(installed, 'node_modules', 'llenergymeasure', 'cli')), false, 'the package ships no sources');
  });
});
