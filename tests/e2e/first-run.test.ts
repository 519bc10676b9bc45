// The first five minutes (issue #19): the README's main command, exactly as written, in a fresh copy
// of the checkout on the machine's own Node.js (v20 here) and on Node 24; and the packed tarball
// installed into an empty folder runs the quickstart. These are the slowest e2e tests (npm ci, three
// quickstarts, mostly waiting on the simulated server), so they run side by side.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from './llem-process.ts';
import { findSystemNode, pathWithoutCachedNode } from './system-node.ts';

const README_COMMAND = 'npm ci && npx llem run examples/quickstart.yaml --simulate';
/** Not copied into the fresh checkout: what npm ci, a build or a run makes. */
const NOT_SOURCE = new Set([
  'node_modules',
  'dist',
  '.git',
  '.cache',
  'llem-results',
  'results',
  '.device',
  'bin/node',
]);

interface Shell {
  code: number | null;
  output: string;
}

/** `bash -c command` in `cwd`, stdout and stderr interleaved as a user's terminal shows them. */
function sh(command: string, cwd: string, path: string, timeoutMs: number): Promise<Shell> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: path,
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  for (const k of ['LLEM_LOG_LEVEL', 'LLEM_CLI_ENTRY', 'NODE_OPTIONS', 'LLEM_FROM_SOURCE']) delete env[k];
  const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

/** Checks a quickstart results directory: 4 complete simulated runs and a report. */
function assertQuickstart(out: string, r: Shell): void {
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /4\/4 runs complete/);
  assert.doesNotMatch(r.output, /Unknown file extension|ERR_| {4}at /, 'no stack trace, no loader error');
  assert.deepEqual(
    r.output.split('\n').filter((l) => l.startsWith('{')),
    [],
    'no structured log lines by default',
  );
  const doc = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as {
    simulated: boolean;
    results: { runs: Array<{ status: string }> };
  };
  assert.equal(doc.simulated, true);
  assert.deepEqual(
    doc.results.runs.map((x) => x.status),
    ['complete', 'complete', 'complete', 'complete'],
  );
  assert.ok(existsSync(join(out, 'report.html')));
}

const system = findSystemNode();
const node24Path = [dirname(process.execPath), ...pathWithoutCachedNode()].join(delimiter);

interface Tarball {
  files: string;
  install: Shell;
  dir: string;
}

/** Packs the checkout (its prepack builds dist/); the tarball's path and its file list. */
async function packOf(root: string, checkout: string): Promise<{ tgz: string; files: string }> {
  const pack = join(root, 'pack');
  mkdirSync(pack);
  const packed = await sh(`npm pack --silent --pack-destination ${pack}`, checkout, node24Path, 120_000);
  assert.equal(packed.code, 0, packed.output);
  const name = readdirSync(pack).find((f) => f.endsWith('.tgz'));
  assert.ok(name !== undefined, packed.output);
  const files = await sh(`tar tzf ${join(pack, name)}`, root, node24Path, 30_000);
  return { tgz: join(pack, name), files: files.output };
}

/** Installs the tarball into an empty folder (with the machine's own node and npm) and runs the quickstart there. */
async function installAndRun(root: string, packed: { tgz: string; files: string }): Promise<Tarball> {
  const dir = join(root, 'installed');
  mkdirSync(dir);
  const install = await sh(
    `npm install ${packed.tgz} && npx llem --help && npx llem validate node_modules/llenergymeasure/examples/quickstart.yaml` +
      ' && npx llem run node_modules/llenergymeasure/examples/quickstart.yaml --simulate',
    dir,
    system?.path ?? '',
    240_000,
  );
  return { files: packed.files, install, dir };
}

describe(
  'first run on a fresh machine',
  { timeout: 420_000, skip: system === null ? 'no node on PATH besides the test runner' : false },
  () => {
    const root = mkdtempSync(join(tmpdir(), 'llem-first-run-'));
    // A: a fresh copy where the README's command runs as written (npm ci included). B: a second copy
    // on the test run's own node_modules, so that the Node 24 run and the package need not wait for A.
    const fresh = join(root, 'fresh');
    const dev = join(root, 'dev');
    let readme: Promise<Shell>;
    let node24: Promise<Shell>;
    let tarball: Promise<Tarball>;

    before(() => {
      const filter = (src: string): boolean => !NOT_SOURCE.has(relative(REPO, src));
      cpSync(REPO, fresh, { recursive: true, filter });
      cpSync(REPO, dev, { recursive: true, filter });
      symlinkSync(realpathSync(join(REPO, 'node_modules')), join(dev, 'node_modules'));
      readme = sh(README_COMMAND, fresh, system?.path ?? '', 300_000);
      // The package is packed from B first (its prepack builds B's dist/); then B's Node 24 run and the
      // tarball's install and run go side by side.
      const packed = packOf(root, dev);
      tarball = packed.then((p) => installAndRun(root, p));
      node24 = packed.then(() => sh('npx llem run examples/quickstart.yaml --simulate', dev, node24Path, 180_000));
      // Each test awaits its own; none may reject unobserved meanwhile.
      for (const p of [readme, node24, tarball]) p.catch(() => undefined);
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    it(`runs the README's main command as written on the machine's own node (${system?.version ?? 'none'})`, async () => {
      const r = await readme;
      assertQuickstart(join(fresh, 'llem-results', 'quickstart'), r);
      assert.doesNotMatch(r.output, /needs Node\.js/);
    });

    it('installs the packed tarball (compiled JavaScript only) into an empty folder and runs the quickstart from there', async () => {
      const t = await tarball;
      assert.doesNotMatch(t.files, /\.ts$/m, 'no TypeScript in the package');
      assert.match(t.files, /package\/dist\/llem\.mjs/);
      assert.match(t.install.output, /usage: llem <command>/);
      assert.match(t.install.output, /quickstart\.yaml: valid/);
      assertQuickstart(join(t.dir, 'llem-results', 'quickstart'), t.install);
      assert.equal(
        existsSync(join(t.dir, 'node_modules', 'llenergymeasure', 'cli')),
        false,
        'the package ships no sources',
      );
    });

    it(
      'runs the quickstart on Node 24',
      { skip: process.versions.node.startsWith('20.') ? 'the test runner is Node 20' : false },
      async () => {
        assertQuickstart(join(dev, 'llem-results', 'quickstart'), await node24);
      },
    );
  },
);
