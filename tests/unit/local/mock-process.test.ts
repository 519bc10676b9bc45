// --simulate without --server-command (issue #25 item 4): the mock server runs as its own process,
// with the latencies given in --mock-args, never inside the load generator's event loop.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Configuration } from '../../../api/matrix.ts';
import { rootLogger } from '../../../lib/log.ts';
import { StreamingClient } from '../../../agent/load/client.ts';
import { BackendPool } from '../../../local/backends.ts';

const config = {
  backend: { type: 'vllm', name: 'vllm' },
  model: { name: 'mock-model' },
  gpusPerRun: 1,
  replicas: 1,
} as unknown as Configuration;

void test('the simulated server is its own process and answers with the latencies given in mockArgs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-mock-proc-'));
  const pool = new BackendPool({
    simulate: true,
    mockArgs: ['--ttft-ms', '150', '--itl-ms', '5'],
    scratchDir: join(dir, 'scratch'),
    ledgerFile: join(dir, 'backends.json'),
    logger: rootLogger,
    signal: new AbortController().signal,
  });
  try {
    const [backend, ...others] = await pool.ensure(config);
    assert.ok(backend !== undefined && others.length === 0, 'one server for one replica');
    assert.equal(backend.simulated, true);
    assert.match(backend.description, /own process/);
    const stats = (await (await fetch(`${backend.baseUrl}/llem/stats`)).json()) as { pid: number; simulated: boolean };
    assert.equal(stats.simulated, true);
    assert.notEqual(stats.pid, process.pid, 'not inside the load generator');
    const client = new StreamingClient({ baseUrl: backend.baseUrl, timeoutMs: 10_000 });
    const r = await client.send({
      api: 'completions',
      model: 'mock-model',
      prompt: 'hi',
      promptTokens: 1,
      maxTokens: 4,
      ignoreEos: true,
      temperature: 0,
    });
    client.close();
    assert.ok(r.ok);
    assert.ok((r.serverTtftMs ?? 0) >= 145, `server TTFT ${r.serverTtftMs} ms (configured 150)`);
  } finally {
    await pool.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});
