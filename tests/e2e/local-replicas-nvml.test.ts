// `llem run` without --simulate, on a fake libnvidia-ml with two GPUs (tests/support/fake-libnvml.c, built here
// with cc): the NVML path end to end. Each replica's server is started with its own GPU's UUID as
// CUDA_VISIBLE_DEVICES, its agent samples exactly that GPU through NVML, and every GPU's window energy is what that
// device drew (its counter is watts x wall-clock time, the same in every process).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, runLlem } from './llem-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'llem-fake-nvml-'));
const lib = join(dir, 'libfake-nvml.so');
const cc = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', lib, join(REPO, 'tests/support/fake-libnvml.c')], {
  encoding: 'utf8',
});
const skip =
  cc.status === 0 ? false : `no C compiler to build the fake libnvidia-ml (${cc.error?.message ?? cc.stderr})`;

/** A server command that records the CUDA_VISIBLE_DEVICES it was given, then runs the mock server. */
function wrapper(log: string): string {
  const tsx = createRequire(import.meta.url).resolve('tsx');
  const script = join(dir, 'server.sh');
  writeFileSync(
    script,
    `#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES" >> "$2"\n` +
      `exec "${process.execPath}" --import "${tsx}" "${join(REPO, 'cli/main.ts')}" mock-server --host 127.0.0.1 --port "$1" --model test/tiny-random --ttft-ms 40 --itl-ms 8\n`,
  );
  chmodSync(script, 0o755);
  return `${script} {port} ${log}`;
}

interface GpuRow {
  replica: number;
  gpuUuid: string;
  energyJoules: number;
  windowSeconds: number;
}

/** small.yaml, one run, a window of at least 2 s, with these placement lines (and pytorch lines). */
function manifest(name: string, placement: string, pytorch = ''): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    readFileSync(join(REPO, 'tests/fixtures/local/small.yaml'), 'utf8')
      .replace('cycles: 2', 'cycles: 1')
      .replace('workload.concurrency: [1, 4]', 'workload.concurrency: [4]')
      .replace('minWindowSeconds: 0', 'minWindowSeconds: 2\n    extendToMinWindow: true')
      .replace('  policy:', `  placement:\n${placement}  policy:`)
      .replace('    - type: pytorch\n', `    - type: pytorch\n${pytorch}`),
  );
  return file;
}

/** A tick-aligned window spans whole 100 ms steps of the fake counter: energy = watts x a multiple of 0.1 s. */
function assertDrew(g: GpuRow | undefined, watts: number): void {
  assert.ok(g !== undefined);
  const steps = Math.round((g.energyJoules / watts) * 10);
  assert.ok(steps >= 15, `${g.gpuUuid}: ${g.energyJoules} J`);
  assert.ok(Math.abs(g.energyJoules - (watts * steps) / 10) < 1e-6, `${g.gpuUuid}: ${g.energyJoules} J at ${watts} W`);
  assert.ok(Math.abs(g.windowSeconds - steps / 10) < 0.05, `${g.gpuUuid}: ${g.windowSeconds} s`);
}

describe('llem run on a fake two-GPU NVML (no --simulate)', { timeout: 300_000, skip }, () => {
  it('runs replicas: 2 with each server on its own GPU by UUID and each agent measuring exactly that GPU', async () => {
    const log = join(dir, 'servers.log');
    writeFileSync(log, '');
    const out = join(dir, 'out');
    const r = await runLlem(
      ['run', manifest('two.yaml', '    replicas: 2\n'), '--out', out, '--server-command', wrapper(log)],
      {
        LLEM_NVML_LIBRARY: lib,
        LLEM_FAKE_NVML_WATTS: '150,450',
        CUDA_VISIBLE_DEVICES: '1,0',
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n').sort(), ['GPU-fake-nvml-0000', 'GPU-fake-nvml-0001']);
    const [run] = readFileSync(join(out, 'run-results.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: string; metrics: { energyJoules: number }; gpus: GpuRow[] });
    assert.ok(run !== undefined);
    assert.equal(run.status, 'complete');
    assert.deepEqual(
      run.gpus.map((g) => [g.replica, g.gpuUuid]),
      [
        [0, 'GPU-fake-nvml-0001'],
        [1, 'GPU-fake-nvml-0000'],
      ],
    );
    // CUDA_VISIBLE_DEVICES=1,0: replica 0 runs on device 1 (450 W), replica 1 on device 0 (150 W).
    assertDrew(run.gpus[0], 450);
    assertDrew(run.gpus[1], 150);
    const sum = run.gpus.reduce((s, g) => s + g.energyJoules, 0);
    assert.ok(Math.abs(run.metrics.energyJoules - sum) < 1e-9 * sum);
  });

  it('runs tensorParallelSize 2 on both GPUs as one replica: one server given both UUIDs, energy summed over both', async () => {
    const log = join(dir, 'servers-tp.log');
    writeFileSync(log, '');
    const out = join(dir, 'out-tp');
    const file = manifest('tp.yaml', '    gpusPerRun: 2\n', '      pytorch:\n        tensorParallelSize: 2\n');
    const r = await runLlem(['run', file, '--out', out, '--server-command', wrapper(log)], {
      LLEM_NVML_LIBRARY: lib,
      LLEM_FAKE_NVML_WATTS: '100,300',
      CUDA_VISIBLE_DEVICES: '0,1',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['GPU-fake-nvml-0000,GPU-fake-nvml-0001']);
    const run = JSON.parse(readFileSync(join(out, 'run-results.ndjson'), 'utf8').trim().split('\n')[0] ?? '{}') as {
      status: string;
      metrics: { energyJoules: number; energyPerGpuJoules: number };
      gpus: GpuRow[];
    };
    assert.equal(run.status, 'complete');
    assert.deepEqual(
      run.gpus.map((g) => [g.replica, g.gpuUuid]),
      [
        [0, 'GPU-fake-nvml-0000'],
        [0, 'GPU-fake-nvml-0001'],
      ],
    );
    assertDrew(run.gpus[0], 100);
    assertDrew(run.gpus[1], 300);
    const sum = run.gpus.reduce((s, g) => s + g.energyJoules, 0);
    assert.ok(Math.abs(run.metrics.energyJoules - sum) < 1e-9 * sum);
    assert.ok(Math.abs(run.metrics.energyPerGpuJoules - sum / 2) < 1e-9 * sum);
  });
});
