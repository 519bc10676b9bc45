import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { freePort } from '../../support/ports.ts';

const FIXTURE = new URL('./fixtures/backend.mjs', import.meta.url).pathname;
const CLI = new URL('../../../cli/main.ts', import.meta.url).pathname;

/** Running (a zombie awaiting a reaper that this container may not have counts as stopped). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

interface AgentRun {
  lines: Array<{ message: { kind: string; phase?: string; reason?: string; seq: number } }>;
  stderr: string[];
  exit: Promise<number | null>;
  kill: (sig: NodeJS.Signals) => void;
  pidFile: string;
}

async function startAgent(dieAfterMs?: number, env: Record<string, string> = {}): Promise<AgentRun> {
  const dir = mkdtempSync(join(tmpdir(), 'llem-agent-cli-'));
  const port = await freePort();
  const config = {
    publisher: { namespace: 'ns', experimentUid: 'u', runId: 'r' },
    model: 'fixture',
    backend: { name: 'fixture', baseUrl: `http://127.0.0.1:${port}`, readinessTimeoutSeconds: 60 },
    workload: { requests: 1_000_000, concurrency: 4, inputTokens: 8, outputTokens: 4 },
    measurement: { warmupRequests: 2, baselineSeconds: 0.2, sampleIntervalMs: 50, telemetryBatchMs: 100, sliceMs: 200 },
    start: { mode: 'immediate' },
    telemetry: { source: 'simulated' },
  };
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify(config));
  const pidFile = join(dir, 'backend.pid');
  const backendArgs = [FIXTURE, String(port), pidFile, ...(dieAfterMs === undefined ? [] : [String(dieAfterMs)])];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'agent', '--config', file, '--', process.execPath, ...backendArgs],
    {
      env: { ...process.env, LLEM_LOG_LEVEL: 'warn', LLEM_NATS_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: AgentRun['lines'] = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(JSON.parse(l) as AgentRun['lines'][number]));
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { lines, stderr, exit, kill: (sig) => child.kill(sig), pidFile };
}

async function waitFor(run: AgentRun, kind: string, timeoutMs = 60_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!run.lines.some((l) => l.message.kind === kind)) {
    if (performance.now() > end) throw new Error(`no ${kind} message`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

void test(
  'SIGTERM mid-window publishes aborted, stops the backend group and exits 143 within 10 s (streams read by 2 client threads)',
  { timeout: 90_000 },
  async (t) => {
    const run = await startAgent(undefined, { LLEM_CLIENT_THREADS: '2' });
    t.after(() => run.kill('SIGKILL'));
    await waitFor(run, 'sketch');
    const pids = JSON.parse(readFileSync(run.pidFile, 'utf8')) as { pid: number; grandchild: number };
    const t0 = performance.now();
    run.kill('SIGTERM');
    const code = await run.exit;
    assert.ok(performance.now() - t0 < 10_000);
    assert.equal(code, 143);
    const last = run.lines.at(-1)?.message;
    assert.deepEqual([last?.kind, last?.phase], ['aborted', 'measuring']);
    assert.match(last?.reason ?? '', /SIGTERM/);
    assert.deepEqual(
      run.lines.map((l) => l.message.seq),
      run.lines.map((_l, i) => i + 1),
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(alive(pids.pid), false, 'backend leader stopped');
    assert.equal(alive(pids.grandchild), false, 'backend group stopped');
  },
);

void test(
  'a backend that dies mid-run aborts the run with its exit and last log lines',
  { timeout: 90_000 },
  async (t) => {
    const run = await startAgent(1500);
    t.after(() => run.kill('SIGKILL'));
    const code = await run.exit;
    assert.notEqual(code, 0);
    const last = run.lines.at(-1)?.message;
    assert.equal(last?.kind, 'aborted');
    assert.match(last?.reason ?? '', /backend exited with code 3/);
    assert.match(last?.reason ?? '', /dying on purpose/);
  },
);

void test(
  'a bad LLEM_CLIENT_THREADS is an input error: exit 2 naming the variable, the backend group stopped',
  { timeout: 90_000 },
  async (t) => {
    const run = await startAgent(undefined, { LLEM_CLIENT_THREADS: 'many' });
    t.after(() => run.kill('SIGKILL'));
    const code = await run.exit;
    assert.equal(code, 2);
    assert.match(run.stderr.join('\n'), /LLEM_CLIENT_THREADS: must be a whole number/);
    await new Promise((r) => setTimeout(r, 200));
    try {
      const pids = JSON.parse(readFileSync(run.pidFile, 'utf8')) as { pid: number; grandchild: number };
      assert.equal(alive(pids.pid), false, 'backend leader stopped');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  },
);
