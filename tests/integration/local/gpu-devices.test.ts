import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidInputError } from '../../../lib/errors.ts';
import { rootLogger } from '../../../lib/log.ts';
import { loadExperimentFile, type LoadedExperiment } from '../../../lib/manifest/index.ts';
import { BackendPool } from '../../../local/backends.ts';
import { awaitGpuMemoryReleased, resolveLocalGpus } from '../../../local/gpu-check.ts';
import { replicaGpus } from '../../../local/run-replicas.ts';
import { fakeNvml4 } from '../../support/fake-nvml.ts';

const dir = mkdtempSync(join(tmpdir(), 'llem-gpus-'));

/** The quickstart with `edit` applied to its text. */
async function manifest(edit: (yaml: string) => string = (y) => y, name = 'm.yaml'): Promise<LoadedExperiment> {
  const file = join(dir, name);
  writeFileSync(file, edit(readFileSync('examples/quickstart.yaml', 'utf8')));
  return loadExperimentFile(file);
}

void test('CUDA_VISIBLE_DEVICES=3 makes llem run use GPU 3 by UUID, for the backend and the sampler alike', async () => {
  const loaded = await manifest();
  const gpus = resolveLocalGpus(loaded, { CUDA_VISIBLE_DEVICES: '3' }, fakeNvml4());
  assert.deepEqual(gpus.entries, ['GPU-3333-0000']);
  assert.deepEqual(replicaGpus(gpus.entries, 0, 1), ['GPU-3333-0000']);
});

void test('fewer visible GPUs than gpusPerRun is refused up front, naming the field and the variables', async () => {
  // vLLM: a pytorch backend asking for two GPUs would also need pytorch.tensorParallelSize: 2.
  const twoGpus = (y: string): string =>
    y
      .replace(/^spec:\n/m, 'spec:\n  placement:\n    gpusPerRun: 2\n')
      .replace(/- type: pytorch\n {6}pytorch:\n(?: {8}.*\n)+/m, '- type: vllm\n');
  const loaded = await manifest(twoGpus, 'two.yaml');
  assert.throws(
    () => resolveLocalGpus(loaded, { CUDA_VISIBLE_DEVICES: '1' }, fakeNvml4()),
    (e: unknown) =>
      e instanceof InvalidInputError &&
      e.exitCode === 2 &&
      /spec\.placement\.gpusPerRun: needs 2 GPU\(s\) per run, but 1 is visible/.test(e.message) &&
      /CUDA_VISIBLE_DEVICES=1/.test(e.message),
  );
  assert.deepEqual(resolveLocalGpus(loaded, { CUDA_VISIBLE_DEVICES: '2,0' }, fakeNvml4()).entries, [
    'GPU-2222-0000',
    'GPU-0000-0000',
  ]);
});

void test('a MIG slice is refused by default and used under gpuAttribution wholeDevice, the slice going to the backend', async () => {
  const refused = await manifest();
  assert.throws(
    () => resolveLocalGpus(refused, { CUDA_VISIBLE_DEVICES: 'MIG-aaaa' }, fakeNvml4()),
    (e: unknown) => e instanceof InvalidInputError && /spec\.measurement\.gpuAttribution: MIG instance/.test(e.message),
  );
  const whole = await manifest(
    (y) => y.replace(/^ {2}measurement:\n/m, '  measurement:\n    gpuAttribution: wholeDevice\n'),
    'mig-whole.yaml',
  );
  const gpus = resolveLocalGpus(whole, { CUDA_VISIBLE_DEVICES: 'MIG-aaaa' }, fakeNvml4());
  assert.deepEqual(gpus, { entries: ['MIG-aaaa'], measuredUuids: ['GPU-2222-0000'] });
});

void test('GPU memory must come back to its level before the first backend, or the wait fails with what holds it', async () => {
  const baseline = new Map([['GPU-a', 1000]]);
  let used = 9000;
  const read = (): Map<string, number> => new Map([['GPU-a', (used -= 3000)]]);
  await awaitGpuMemoryReleased(baseline, { read, pollMs: 5, timeoutMs: 2000 });
  await assert.rejects(
    awaitGpuMemoryReleased(baseline, { read: () => new Map([['GPU-a', 5000]]), pollMs: 5, timeoutMs: 50 }),
    /GPU memory was not released .*GPU-a: 5000 MiB used, 1000 MiB before the first backend/,
  );
});

/** A tiny OpenAI-ish server that records its pid and CUDA_VISIBLE_DEVICES, then serves /health. */
const SERVER = `
const http = require('node:http'); const fs = require('node:fs');
const [port, log] = process.argv.slice(2);
fs.appendFileSync(log, JSON.stringify({ pid: process.pid, cuda: process.env.CUDA_VISIBLE_DEVICES ?? null }) + '\\n');
http.createServer((q, r) => { r.end('ok'); }).listen(Number(port), '127.0.0.1');
`;

void test('the local pool keeps one server resident: a different server stops the first and waits for GPU memory first', async () => {
  const loaded = await manifest(
    (y) => y.replace(/^ {4}axes:\n/m, '    axes:\n      pytorch.maxBatchSize: [8, 16]\n'),
    'pool.yaml',
  );
  const a = loaded.matrix.configurations[0];
  const b = loaded.matrix.configurations.find((c) => JSON.stringify(c.backend) !== JSON.stringify(a?.backend));
  assert.ok(a !== undefined && b !== undefined);
  const script = join(dir, 'server.cjs');
  const log = join(dir, 'servers.jsonl');
  writeFileSync(script, SERVER);
  writeFileSync(log, '');
  const events: string[] = [];
  const pool = new BackendPool({
    simulate: false,
    serverCommand: [process.execPath, script, '{port}', log],
    scratchDir: dir,
    ledgerFile: join(dir, 'ledger.json'),
    logger: rootLogger,
    signal: new AbortController().signal,
    gpuEntries: ['GPU-3333-0000'],
    awaitGpuReleased: async () => {
      events.push(`released with ${pool.resident} resident`);
    },
  });
  try {
    const first = await pool.ensure(a);
    assert.equal((await pool.ensure(a))[0], first[0], 'consecutive runs of one server reuse it');
    await pool.ensure(b);
    const started = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { pid: number; cuda: string | null });
    assert.equal(started.length, 2);
    assert.deepEqual(
      started.map((s) => s.cuda),
      ['GPU-3333-0000', 'GPU-3333-0000'],
    );
    assert.throws(() => process.kill(started[0]?.pid ?? 0, 0), 'the first server was stopped');
    assert.deepEqual(events, ['released with 0 resident']);
    assert.equal(pool.resident, 1);
  } finally {
    await pool.stopAll();
  }
});

/** The quickstart with placement lines added (and pytorch tensor parallel when gpusPerRun > 1). */
const placed =
  (lines: string, tp = 1) =>
  (y: string) =>
    y
      .replace(/^spec:\n/m, `spec:\n  placement:\n${lines}`)
      .replace(
        /- type: pytorch\n {6}pytorch:\n/m,
        `- type: pytorch\n      pytorch:\n        tensorParallelSize: ${tp}\n`,
      );

void test('fewer visible GPUs than replicas x gpusPerRun is refused naming placement.replicas, with the count', async () => {
  const loaded = await manifest(placed('    replicas: 3\n    gpusPerRun: 2\n', 2), 'rep3x2.yaml');
  assert.throws(
    () => resolveLocalGpus(loaded, {}, fakeNvml4()),
    (e: unknown) =>
      e instanceof InvalidInputError &&
      e.exitCode === 2 &&
      /spec\.placement\.replicas: is 3 with gpusPerRun 2: .* needs 6 GPUs, but 4 are visible/.test(e.message),
  );
  const two = await manifest(placed('    replicas: 2\n'), 'rep2.yaml');
  assert.throws(
    () => resolveLocalGpus(two, { CUDA_VISIBLE_DEVICES: '1' }, fakeNvml4()),
    /spec\.placement\.replicas: is 2 with gpusPerRun 1: .* needs 2 GPUs, but 1 is visible .*CUDA_VISIBLE_DEVICES=1/,
  );
  const fits = await manifest(placed('    replicas: 2\n    gpusPerRun: 2\n', 2), 'rep2x2.yaml');
  assert.deepEqual(resolveLocalGpus(fits, { CUDA_VISIBLE_DEVICES: '3,2,1,0' }, fakeNvml4()).entries, [
    'GPU-3333-0000',
    'GPU-2222-0000',
    'GPU-1111-0000',
    'GPU-0000-0000',
  ]);
});

void test('each replica gets its own server started on exactly its GPUs by UUID, the same ones its agent reads', async () => {
  const loaded = await manifest(placed('    replicas: 2\n    gpusPerRun: 2\n', 2), 'pool-replicas.yaml');
  const c = loaded.matrix.configurations[0];
  assert.ok(c !== undefined && c.replicas === 2 && c.gpusPerRun === 2);
  const script = join(dir, 'server-replicas.cjs');
  const log = join(dir, 'servers-replicas.jsonl');
  writeFileSync(script, SERVER);
  writeFileSync(log, '');
  const entries = ['GPU-3333-0000', 'GPU-2222-0000', 'GPU-1111-0000', 'GPU-0000-0000'];
  const pool = new BackendPool({
    simulate: false,
    serverCommand: [process.execPath, script, '{port}', log],
    scratchDir: dir,
    ledgerFile: join(dir, 'ledger-replicas.json'),
    logger: rootLogger,
    signal: new AbortController().signal,
    gpuEntries: entries,
  });
  try {
    const backends = await pool.ensure(c);
    assert.deepEqual(
      backends.map((b) => [b.replica, b.cudaVisibleDevices]),
      [
        [0, 'GPU-3333-0000,GPU-2222-0000'],
        [1, 'GPU-1111-0000,GPU-0000-0000'],
      ],
    );
    assert.deepEqual(replicaGpus(entries, 1, 2), ['GPU-1111-0000', 'GPU-0000-0000']);
    assert.notEqual(backends[0]?.baseUrl, backends[1]?.baseUrl, 'two servers, two ports');
    const started = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { pid: number; cuda: string | null });
    assert.deepEqual(started.map((s) => s.cuda).sort(), ['GPU-1111-0000,GPU-0000-0000', 'GPU-3333-0000,GPU-2222-0000']);
    assert.equal(new Set(started.map((s) => s.pid)).size, 2);
    const again = await pool.ensure(c);
    assert.deepEqual(
      again.map((b) => b.baseUrl),
      backends.map((b) => b.baseUrl),
      'the next run of the same configuration reuses both servers',
    );
  } finally {
    await pool.stopAll();
  }
});
