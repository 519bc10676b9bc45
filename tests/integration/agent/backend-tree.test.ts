// `llem agent -- <vLLM-shaped process tree>` (tests/support/fake-vllm-tree.ts: front, two workers, a helper
// ignoring SIGTERM for 30 s; simulated GPU memory as pid files): SIGINT, SIGTERM and SIGKILL of the agent
// while the backend starts and mid-window leave no process of the tree alive; the test reports the time
// until the memory was free (ADR 0025).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it, type TestContext } from 'node:test';
import { memoryHolders, memoryReleasedAfter, until } from '../../support/fake-gpu-memory.ts';
import { freePort } from '../../support/ports.ts';

const CLI = new URL('../../../cli/main.ts', import.meta.url).pathname;
const TREE = new URL('../../support/fake-vllm-tree.ts', import.meta.url).pathname;
const GRACE_S = 1;

interface Agent {
  kinds: string[];
  reasons: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: (sig: NodeJS.Signals) => void;
  memDir: string;
}

async function startAgent(): Promise<Agent> {
  const dir = mkdtempSync(join(tmpdir(), 'llem-agent-tree-'));
  const port = await freePort();
  const memDir = join(dir, 'gpu-memory');
  const config = {
    publisher: { namespace: 'ns', experimentUid: 'u', runId: 'r' },
    model: 'fixture',
    backend: {
      name: 'fake-vllm',
      baseUrl: `http://127.0.0.1:${port}`,
      readinessTimeoutSeconds: 60,
      shutdownGraceSeconds: GRACE_S,
    },
    workload: { requests: 1_000_000, concurrency: 4, inputTokens: 8, outputTokens: 4 },
    measurement: { warmupRequests: 2, baselineSeconds: 0.2, sampleIntervalMs: 50, telemetryBatchMs: 100, sliceMs: 200 },
    start: { mode: 'immediate' },
    telemetry: { source: 'simulated' },
  };
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify(config));
  const backend = [process.execPath, '--import', 'tsx', TREE, '--port', String(port), '--mem-dir', memDir];
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'agent', '--config', file, '--', ...backend], {
    env: { ...process.env, LLEM_LOG_LEVEL: 'warn', LLEM_NATS_URL: '' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const kinds: string[] = [];
  const reasons: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    try {
      const m = (JSON.parse(l) as { message: { kind: string; reason?: string } }).message;
      kinds.push(m.kind);
      if (m.reason !== undefined) reasons.push(m.reason);
    } catch {
      // the backend's own stdout lines share the stream
    }
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return { kinds, reasons, exit, kill: (sig) => child.kill(sig), memDir };
}

const PHASES: Array<{ name: string; reach: (a: Agent) => Promise<void> }> = [
  {
    name: 'while the backend tree starts',
    reach: (a) => until('the tree to hold memory', () => memoryHolders(a.memDir).length >= 4),
  },
  {
    name: 'mid-window',
    reach: (a) => until('a sketch message', () => a.kinds.includes('sketch')),
  },
];

describe('llem agent with a multi-process backend (simulated vLLM process tree)', () => {
  for (const phase of PHASES) {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
      it(`${sig} ${phase.name} leaves no process of the tree alive`, { timeout: 120_000 }, async (t: TestContext) => {
        const a = await startAgent();
        t.after(() => a.kill('SIGKILL'));
        await phase.reach(a);
        assert.ok(memoryHolders(a.memDir).length >= 4, 'front, two workers and the helper hold memory');
        const t0 = performance.now();
        a.kill(sig);
        const exit = await a.exit;
        const ms = await memoryReleasedAfter(a.memDir, t0, GRACE_S * 1000 + 8000);
        t.diagnostic(`${sig} ${phase.name}: GPU memory released ${ms} ms after the signal`);
        if (sig === 'SIGKILL') assert.equal(exit.signal, 'SIGKILL');
        else assert.equal(exit.code, sig === 'SIGINT' ? 130 : 143);
      });
    }
  }

  it(
    'a worker that dies mid-window aborts the run within seconds, naming the dead process, and frees the tree',
    {
      timeout: 120_000,
    },
    async (t: TestContext) => {
      const a = await startAgent();
      t.after(() => a.kill('SIGKILL'));
      await until('a sketch message', () => a.kinds.includes('sketch'));
      const worker = Number(readFileSync(join(a.memDir, 'worker-0.pid'), 'utf8'));
      const t0 = performance.now();
      process.kill(worker, 'SIGKILL');
      const exit = await a.exit;
      const ms = Math.round(performance.now() - t0);
      t.diagnostic(`the run was aborted ${ms} ms after the worker died`);
      assert.notEqual(exit.code, 0);
      assert.ok(ms < 10_000, `aborted after ${ms} ms`);
      assert.equal(a.kinds.at(-1), 'aborted');
      assert.match(
        a.reasons.at(-1) ?? '',
        new RegExp(`process ${worker} of the backend's process tree .*worker-0.* died`),
      );
      await memoryReleasedAfter(a.memDir, t0, GRACE_S * 1000 + 8000);
    },
  );
});
