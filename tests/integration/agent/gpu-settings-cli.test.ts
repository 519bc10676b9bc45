// `llem agent` with GPU settings (issue #21): refused with exit 2, before the backend starts, when the
// pod is not permitted to change them; applied and restored on the (fake, file-backed) GPU when it is,
// with requested vs effective in the summary message.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../support/ports.ts';

const FIXTURE = new URL('./fixtures/backend.mjs', import.meta.url).pathname;
const CLI = new URL('../../../cli/main.ts', import.meta.url).pathname;

async function agent(
  gpu: Record<string, unknown>,
): Promise<{ code: number | null; out: string; err: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'llem-agent-gpu-'));
  const port = await freePort();
  const config = {
    publisher: { namespace: 'ns', experimentUid: 'u', runId: 'r' },
    model: 'fixture',
    backend: { name: 'fixture', baseUrl: `http://127.0.0.1:${port}`, readinessTimeoutSeconds: 60 },
    workload: { requests: 20, concurrency: 4, inputTokens: 8, outputTokens: 4 },
    measurement: {
      warmupRequests: 1,
      baselineSeconds: 0.2,
      cooldownSeconds: 0,
      sampleIntervalMs: 50,
      telemetryBatchMs: 100,
    },
    start: { mode: 'immediate' },
    telemetry: { source: 'simulated' },
    gpu,
  };
  writeFileSync(join(dir, 'agent.json'), JSON.stringify(config));
  const pidFile = join(dir, 'backend.pid');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'agent',
      '--config',
      join(dir, 'agent.json'),
      '--',
      process.execPath,
      FIXTURE,
      String(port),
      pidFile,
    ],
    {
      env: {
        ...process.env,
        LLEM_LOG_LEVEL: 'warn',
        LLEM_NATS_URL: '',
        LLEM_SIMULATED_GPU_STATE: join(dir, 'gpu.json'),
        LLEM_GPU_STATE_DIR: join(dir, 'markers'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { code, out, err, dir };
}

test('an agent not permitted to change GPU settings exits 2 naming the field, before starting the backend', async () => {
  const r = await agent({ powerLimitWatts: 300, permitted: false });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /spec\.gpu\.powerLimitWatts set, but changing GPU settings is not permitted here/);
  assert.equal(existsSync(join(r.dir, 'backend.pid')), false, 'the backend never started');
  assert.equal(existsSync(join(r.dir, 'gpu.json')), false, 'the GPU was never touched');
});

test('a permitted agent applies the cap, reports requested vs effective, and leaves the GPU as it found it', async () => {
  const r = await agent({ powerLimitWatts: 300, smClockMHz: { min: 1200, max: 1200 }, permitted: true });
  assert.equal(r.code, 0, r.err);
  const summary = r.out
    .split('\n')
    .filter((l) => l.includes('"summary"'))
    .map((l) => JSON.parse(l) as { message: { gpuSettings?: Array<Record<string, unknown>> } })[0];
  const g = summary?.message.gpuSettings?.[0] as {
    requested: { powerLimitWatts: number };
    previous: { powerLimitWatts: number };
    effective: { powerLimitWatts: number; enforcedPowerLimitWatts: number; smClockMHz: { min: number } };
  };
  assert.equal(g.requested.powerLimitWatts, 300);
  assert.equal(g.previous.powerLimitWatts, 700);
  assert.equal(g.effective.enforcedPowerLimitWatts, 300);
  assert.equal(g.effective.smClockMHz.min, 1200);
  const dev = (
    JSON.parse(readFileSync(join(r.dir, 'gpu.json'), 'utf8')) as Array<{ powerLimitMw: number; smLocked: unknown }>
  )[0];
  assert.equal(dev?.powerLimitMw, 700_000);
  assert.equal(dev?.smLocked, null);
  assert.deepEqual(readdirSync(join(r.dir, 'markers')), []);
});
