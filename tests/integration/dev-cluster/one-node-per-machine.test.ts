// One real node per machine (scripts/dev-cluster.sh, ADR 0020 item 3), without starting one: a stand-in
// node directory (LLEM_CLUSTER_DIR) whose "components" are this test's own sleep processes, recorded in
// the PID files exactly as `up` records its own. Proves that a second test run waits for the node while
// the run holding it lives (wait-free and up), gives up after LLEM_NODE_WAIT_S saying why, never touches
// a live run's node, and that a node whose run died is brought down (by clean-stale or its watchdog).
// The stand-in has no containerd, so `down` leaves machine-wide state (pod cgroups, task mounts) alone:
// safe beside a real node.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const REPO = resolve(import.meta.dirname, '..', '..', '..');
const SCRIPT = join(REPO, 'scripts', 'dev-cluster.sh');
const SLEEP = realpathSync('/bin/sleep');
const children: ChildProcess[] = [];
const dirs: string[] = [];

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function sleeper(seconds: number): ChildProcess {
  const c = spawn(SLEEP, [String(seconds)], { stdio: 'ignore' });
  children.push(c);
  return c;
}

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null && existsSync(`/proc/${String(c.pid)}`);
}

/** Field 22 of /proc/PID/stat (start time): what `up --owner` records beside the PID. */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

/** A node directory as `up --owner` leaves it: the owner, and one component (a sleep) by PID file. */
function standInNode(owner: ChildProcess): { top: string; run: string; component: ChildProcess } {
  const top = mkdtempSync(join(tmpdir(), 'llem-node-lock-'));
  dirs.push(top);
  const run = join(top, 'run');
  mkdirSync(join(run, 'pids'), { recursive: true });
  const pid = owner.pid ?? 0;
  writeFileSync(join(run, 'owner'), `${String(pid)} ${startTime(pid)}\n`);
  const component = sleeper(600);
  writeFileSync(join(run, 'pids', 'etcd'), `${String(component.pid)}\n`);
  writeFileSync(join(run, 'pids', 'etcd.exe'), `${SLEEP}\n`);
  return { top, run, component };
}

interface Ran {
  code: number;
  stderr: string;
  seconds: number;
}

function devCluster(
  args: string[],
  top: string,
  env: Record<string, string> = {},
): Promise<Ran> & { proc: ChildProcess } {
  const t0 = performance.now();
  const proc = spawn('bash', [SCRIPT, ...args], {
    env: { ...process.env, LLEM_CLUSTER_DIR: top, LLEM_NODE_POLL_S: '0.5', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Ran>((res) =>
    proc.on('close', (code) => res({ code: code ?? 1, stderr, seconds: (performance.now() - t0) / 1000 })),
  );
  return Object.assign(done, { proc });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void test('a second test run waits while the run holding the node lives, then cleans up its node and goes on', async () => {
  const owner = sleeper(4);
  const { top, run, component } = standInNode(owner);
  const waiting = devCluster(['wait-free'], top, { LLEM_NODE_WAIT_S: '60' });
  await sleep(2000);
  assert.equal(waiting.proc.exitCode, null, 'wait-free returned while the owner of the node was alive');
  assert.ok(existsSync(run) && alive(component), "the live run's node was touched");
  const r = await waiting;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`in use by the test run with PID ${String(owner.pid)}: waiting for it to end`));
  assert.match(r.stderr, /cleaning up a previous node that is not whole or whose test run is gone/);
  assert.ok(r.seconds >= 3, `waited only ${r.seconds.toFixed(1)} s for a run that held the node 4 s`);
  assert.equal(existsSync(run), false, "the dead run's node directory is gone");
  await sleep(300);
  assert.equal(alive(component), false, "the dead run's component still runs");
});

void test('a run that waits longer than LLEM_NODE_WAIT_S gives up saying why, and leaves the live run alone', async () => {
  const owner = sleeper(600);
  const { top, run, component } = standInNode(owner);
  const r = await devCluster(['wait-free'], top, { LLEM_NODE_WAIT_S: '1' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /the node stayed in use by another test run for 1s/);
  assert.ok(existsSync(join(run, 'owner')) && alive(component), "the live run's node was touched");
});

void test(
  'up waits for a node another live test run holds instead of starting a second one',
  {
    skip: process.getuid?.() !== 0 ? 'up needs root (it checks before anything else)' : undefined,
  },
  async () => {
    const owner = sleeper(600);
    const { top, run, component } = standInNode(owner);
    const r = await devCluster(['up', '--owner', String(process.pid)], top, { LLEM_NODE_WAIT_S: '1' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`in use by the test run with PID ${String(owner.pid)}: waiting for it to end`));
    assert.match(r.stderr, /the node stayed in use by another test run for 1s/);
    assert.doesNotMatch(r.stderr, /setup step/, 'up started a node beside the live one');
    assert.equal(readFileSync(join(run, 'owner'), 'utf8').split(' ')[0], String(owner.pid), 'the owner changed');
    assert.ok(alive(component));
  },
);

void test("clean-stale never touches a live run's node, even one whose kubelet it stopped on purpose", async () => {
  const owner = sleeper(600);
  const { top, run, component } = standInNode(owner);
  const r = await devCluster(['clean-stale'], top);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /cleaning up/);
  assert.ok(existsSync(join(run, 'owner')) && alive(component));
});

void test("a node's watchdog brings it down within seconds of its test run's death", async () => {
  const owner = sleeper(600);
  const { top, run, component } = standInNode(owner);
  const pid = owner.pid ?? 0;
  const watchdog = devCluster(['_watch', String(pid), startTime(pid)], top);
  await sleep(1500);
  assert.ok(existsSync(run) && alive(component), 'the watchdog acted while its owner lived');
  const t0 = performance.now();
  owner.kill('SIGKILL');
  const r = await watchdog;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`owner ${String(pid)} is gone: bringing the node down`));
  assert.ok((performance.now() - t0) / 1000 < 10, 'the watchdog took over 10 s');
  assert.equal(existsSync(run), false);
  await sleep(300);
  assert.equal(alive(component), false);
});
