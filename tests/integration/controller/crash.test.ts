// Crash equality (issue #16 item 6): the real `llem controller` process, SIGKILLed at random points
// (at least 10, checkpoint and run-table writes included: they happen on every reconcile and every
// 200 ms) while a multi-configuration experiment runs against a real kube-apiserver + etcd and a
// real nats-server, ends with the same results artifact as an uninterrupted run, and no run ever
// re-runs an attempt. Agents are the deterministic stand-in (steady-agent.ts) played by the node player.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { EnergyExperimentStatusSchema, type EnergyExperimentStatus } from '../../../api/status.ts';
import { openNatsBus } from '../../../lib/bus/index.ts';
import type { Bus } from '../../../lib/bus/types.ts';
import { kubeSkipReason, startKube, type KubeCluster, type NodePlayer } from '../../support/kube.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { manifest, sleep, waitFor } from './env.ts';
import { steadyAgent } from './steady-agent.ts';

const skip = kubeSkipReason();
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
// The CLI bundled as the controller image runs it (scripts/bundle.mjs), so a restart takes about a
// second and the kills land while it works; under .cache/ (ignored) so node_modules resolves.
const BUILD_DIR = `${REPO}.cache/crash-test-${process.pid}`;
const LLEM = `${BUILD_DIR}/llem.mjs`;
const KILLS = 10;

void describe('the llem controller process, killed and restarted', { skip, timeout: 600_000 }, () => {
  let kube: KubeCluster;
  let nats: NatsServerHandle;
  let bus: Bus;
  let player: NodePlayer;
  let child: ChildProcess | undefined;
  /** Every controller process started: all are killed however the test ends (a failed assertion, a timeout). */
  const children = new Set<ChildProcess>();
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  // A runner that gives up on this file exits without the after() hook: its controllers die with it.
  process.once('exit', killAll);

  /** A controller process; `started` resolves once it logs that it runs (informers synced, leading). */
  function startController(): ChildProcess & { started: Promise<void> } {
    const args = [
      LLEM,
      'controller',
      '--kubeconfig',
      kube.kubeconfigPath,
      '--nats-url',
      nats.url,
      '--simulate',
      '--no-leader-elect',
      '--metrics-bind-address',
      '127.0.0.1:0',
      '--workers',
      '2',
    ];
    const c = spawn(process.execPath, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LLEM_LOG_LEVEL: 'info' },
    });
    children.add(c);
    c.once('exit', () => children.delete(c));
    const started = new Promise<void>((resolve) => {
      c.stderr?.on('data', (d: Buffer) => {
        const text = d.toString();
        if (text.includes('controller started')) resolve();
        for (const line of text.split('\n'))
          if (/"level":(50|60)/.test(line)) process.stderr.write(`[controller ${c.pid}] ${line}\n`);
      });
      c.once('exit', () => resolve());
    });
    return Object.assign(c, { started });
  }

  async function kill(c: ChildProcess | undefined): Promise<void> {
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async function status(ns: string, name: string): Promise<EnergyExperimentStatus | undefined> {
    const r = await kube.kubectl(['get', 'ee', name, '-n', ns, '-o', 'json']);
    if (r.code !== 0) return undefined;
    return EnergyExperimentStatusSchema.parse((JSON.parse(r.stdout) as { status?: unknown }).status ?? {});
  }

  const finished = (ns: string, name: string) => async (): Promise<EnergyExperimentStatus | undefined> => {
    const s = await status(ns, name);
    return s?.phase === 'Succeeded' || s?.phase === 'Failed' ? s : undefined;
  };

  /** results.json with what legitimately differs between two experiments taken out: uid, times, stream positions. */
  async function artifact(s: EnergyExperimentStatus, uid: string): Promise<string> {
    const name = (s.artifact?.uri ?? '').replace(/^nats-obj:\/\/llem-artifacts\//, '');
    const bytes = await bus.getArtifact(name);
    assert.ok(bytes !== null, `artifact ${name} exists`);
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as {
      results: { lastStreamSeq?: number } | null;
      configurations: unknown;
      best: unknown;
      runs: { id: string; attempt: number; phase: string }[];
    };
    const results = doc.results === null ? null : { ...doc.results, lastStreamSeq: 0 };
    const runs = doc.runs.map((r) => ({ id: r.id, attempt: r.attempt, phase: r.phase }));
    return JSON.stringify({ results, configurations: doc.configurations, best: doc.best, runs }).replaceAll(
      uid,
      '<uid>',
    );
  }

  async function uidOf(ns: string, name: string): Promise<string> {
    return (await kube.kubectlOk(['get', 'ee', name, '-n', ns, '-o', 'jsonpath={.metadata.uid}'])).trim();
  }

  before(async () => {
    await mkdir(BUILD_DIR, { recursive: true });
    await build({
      entryPoints: [`${REPO}cli/main.ts`],
      outfile: LLEM,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      external: ['koffi', 'playwright-core'],
      logLevel: 'warning',
      banner: {
        js: "import { createRequire as __llemCreateRequire } from 'node:module'; const require = __llemCreateRequire(import.meta.url);",
      },
    });
    kube = await startKube();
    nats = await startNatsServer();
    bus = await openNatsBus({ servers: nats.url, name: 'crash-test' });
    await bus.ensureLayout();
    player = await kube.startNodePlayer({ run: steadyAgent(bus, 1500) });
    await kube.kubectlOk(['create', 'namespace', 'calm']);
    await kube.kubectlOk(['create', 'namespace', 'crashy']);
  });
  // A test that fails half-way leaves no controller running into the next one.
  afterEach(async () => {
    await Promise.all([...children].map((c) => kill(c)));
  });
  after(async () => {
    await Promise.all([...children].map((c) => kill(c)));
    process.removeListener('exit', killAll);
    await player?.stop();
    await bus?.close();
    await kube?.stop();
    await nats?.cleanup();
    await rm(BUILD_DIR, { recursive: true, force: true });
  });

  void test(`SIGKILLed at ${KILLS} random points, the controller ends with the artifact of an uninterrupted run`, async () => {
    const spec = { configs: 3, cycles: 2, parallelism: 2, retries: 0 };
    child = startController();
    await kube.kubectlOk(['apply', '-f', '-'], { input: manifest('exp', 'calm', spec) });
    const calm = await waitFor('uninterrupted experiment finished', finished('calm', 'exp'), 120_000);
    await kill(child);
    assert.equal(calm.phase, 'Succeeded', JSON.stringify(calm.conditions));

    await kube.kubectlOk(['apply', '-f', '-'], { input: manifest('exp', 'crashy', spec) });
    const kills: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      const c = startController();
      child = c;
      await c.started;
      // Anywhere from the first reconcile (pods, run-table chunks, status) to well into the runs
      // (checkpoints every second, more chunks and status writes as runs finish).
      const at = Math.floor(Math.random() * 1500);
      await sleep(at);
      await kill(c);
      kills.push(at);
    }
    child = startController();
    const crashy = await waitFor('killed experiment finished', finished('crashy', 'exp'), 180_000);
    assert.equal(crashy.phase, 'Succeeded', `killed at ${kills.join(', ')} ms: ${JSON.stringify(crashy.conditions)}`);
    const [a, b] = [
      await artifact(calm, await uidOf('calm', 'exp')),
      await artifact(crashy, await uidOf('crashy', 'exp')),
    ];
    assert.equal(b, a, `killed at ${kills.join(', ')} ms after start: results differ`);
    assert.ok(
      crashy.runs.every((r) => r.attempt === 0),
      'no run needed a second attempt',
    );
    const seen = player.podsSeen().filter((n) => n.startsWith('exp-'));
    assert.equal(new Set(seen).size, seen.length, 'no pod was created twice');
    await kill(child);
  });

  void test('a placement.replicas: 2 experiment runs end to end, one pod per replica, both replicas in its figures', async () => {
    await kube.kubectlOk(['create', 'namespace', 'replicas']);
    child = startController();
    await kube.kubectlOk(['apply', '-f', '-'], {
      input: manifest('pair', 'replicas', { configs: 2, replicas: 2, parallelism: 2, retries: 0 }),
    });
    const done = await waitFor('replicated experiment finished', finished('replicas', 'pair'), 120_000);
    await kill(child);
    assert.equal(done.phase, 'Succeeded', JSON.stringify(done.conditions));
    assert.equal(done.progress?.summary, '2/2');
    const pods = player.podsSeen().filter((n) => n.startsWith('pair-'));
    assert.equal(pods.length, 4, 'two runs x two replicas');
    assert.deepEqual(pods.map((n) => n.slice(-2)).sort(), ['r0', 'r0', 'r1', 'r1']);
    const bytes = await bus.getArtifact((done.artifact?.uri ?? '').replace(/^nats-obj:\/\/llem-artifacts\//, ''));
    const doc = JSON.parse(new TextDecoder().decode(bytes ?? new Uint8Array())) as {
      results: { runs: { status: string; counts: { outputTokens: number } }[] };
    };
    // Replica 0 sends 100 output tokens, replica 1 sends 110: a run counts both.
    assert.deepEqual(
      doc.results.runs.map((r) => [r.status, r.counts.outputTokens]),
      [
        ['complete', 210],
        ['complete', 210],
      ],
    );
  });
});
