// `llem agent` writes the backend's start-up files (config.files, e.g. trtllm-serve's extra options
// YAML) before it starts the backend command.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const CLI = new URL('../../../cli/main.ts', import.meta.url).pathname;

void test('the backend finds its start-up files in place when it starts', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-agent-files-'));
  const target = join(dir, 'nested', 'extra-options.yaml');
  const copy = join(dir, 'seen-by-backend.yaml');
  const config = {
    publisher: { namespace: 'ns', experimentUid: 'u', runId: 'r' },
    model: 'm',
    backend: { name: 'fixture', baseUrl: 'http://127.0.0.1:9', readinessTimeoutSeconds: 5 },
    start: { mode: 'immediate' },
    telemetry: { source: 'simulated' },
    files: [{ path: target, content: 'quant_config:\n  quant_algo: FP8\n' }],
  };
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify(config));
  // The "backend" copies the file it was promised, then exits: the agent reports a backend failure.
  const backend = [
    process.execPath,
    '-e',
    `require('fs').copyFileSync(${JSON.stringify(target)}, ${JSON.stringify(copy)})`,
  ];
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'agent', '--config', file, '--', ...backend], {
    env: { ...process.env, LLEM_LOG_LEVEL: 'fatal', LLEM_NATS_URL: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr.resume();
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  assert.notEqual(code, 0);
  assert.ok(existsSync(copy), 'the backend did not find the file');
  assert.equal(readFileSync(copy, 'utf8'), config.files[0]?.content);
});
