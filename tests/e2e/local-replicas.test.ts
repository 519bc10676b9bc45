// Data-parallel replicas and multi-GPU runs on one host (issue #24): `llem run` starts one server per
// replica, each replica's agent measures only its own GPUs, the replicas start together, and the run's
// energy is the sum over every GPU of every replica. Simulated GPUs draw the constant power
// LLEM_SIMULATED_GPU_WATTS gives each, so each GPU's figures can be checked against what that device drew.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, runLlem } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');

interface GpuRow {
  replica: number;
  gpuUuid: string;
  energyJoules: number | null;
  windowSeconds: number | null;
  meanPowerWatts: number | null;
  ticks: { aligned: boolean; edgeUncertaintyMs: number } | null;
}
interface RunRow {
  runId: string;
  status: string;
  simulated: boolean;
  metrics: { energyJoules: number | null; energyPerGpuJoules: number | null };
  gpus: GpuRow[];
}

/** small.yaml, one cycle of one configuration, with `placement` (YAML lines under it) and `pytorch` params. */
function manifest(dir: string, placement: string, pytorch = ''): string {
  const file = join(dir, 'multi.yaml');
  const text = readFileSync(SMALL, 'utf8')
    .replace('cycles: 2', 'cycles: 1')
    // A window of at least 2 s: the counter's edges are timed to a few ms, a small share of it.
    .replace('minWindowSeconds: 0', 'minWindowSeconds: 2\n    extendToMinWindow: true')
    .replace('workload.concurrency: [1, 4]', 'workload.concurrency: [4]')
    .replace('  policy:', `  placement:\n${placement}  policy:`)
    .replace('    - type: pytorch\n', `    - type: pytorch\n${pytorch}`);
  writeFileSync(file, text);
  return file;
}

function runResults(out: string): RunRow[] {
  return readFileSync(join(out, 'run-results.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RunRow);
}

/**
 * Each GPU drew its configured watts over its window: the energy equals watts x window length to within the
 * timing of the window's two counter edges (each known to +- edgeUncertaintyMs) and 1%.
 */
function assertEachGpuDrew(run: RunRow, expected: Array<[number, string, number]>): void {
  assert.deepEqual(
    run.gpus.map((g) => [g.replica, g.gpuUuid]),
    expected.map(([r, u]) => [r, u]),
    'every replica reports exactly its own GPUs',
  );
  for (const [i, g] of run.gpus.entries()) {
    const watts = expected[i]?.[2] ?? NaN;
    assert.ok(g.energyJoules !== null && g.windowSeconds !== null && g.meanPowerWatts !== null, JSON.stringify(g));
    assert.ok(g.ticks?.aligned === true && g.windowSeconds > 1.5, JSON.stringify(g));
    const slackJ = (watts * (2 * g.ticks.edgeUncertaintyMs)) / 1000 + 0.01 * watts * g.windowSeconds;
    assert.ok(
      Math.abs(g.energyJoules - watts * g.windowSeconds) <= slackJ,
      `${g.gpuUuid}: ${g.energyJoules} J over ${g.windowSeconds} s (${g.meanPowerWatts} W), drew ${watts} W`,
    );
  }
  const sum = run.gpus.reduce((s, g) => s + (g.energyJoules ?? 0), 0);
  assert.ok(Math.abs((run.metrics.energyJoules ?? NaN) - sum) < 1e-6 * sum, 'the run is the sum of its GPUs');
  assert.ok(Math.abs((run.metrics.energyPerGpuJoules ?? NaN) - sum / run.gpus.length) < 1e-6 * sum);
}

describe('llem run with several replicas and GPUs on one host (simulated)', { timeout: 600_000 }, () => {
  it('runs placement.replicas: 2 with one server per replica, each measured on its own GPU, the energy summed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-replicas-'));
    const out = join(dir, 'out');
    const file = manifest(dir, '    replicas: 2\n');
    const r = await runLlem(['run', file, '--simulate', '--out', out], { LLEM_SIMULATED_GPU_WATTS: '150,450' });
    assert.equal(r.code, 0, r.stderr);
    const [run, ...rest] = runResults(out);
    assert.ok(run !== undefined && rest.length === 0);
    assert.equal(run.status, 'complete');
    assert.equal(run.simulated, true);
    assertEachGpuDrew(run, [
      [0, 'GPU-simulated-0000', 150],
      [1, 'GPU-simulated-0001', 450],
    ]);
    // runs.csv keeps each GPU's share beside the sum.
    const [header, row] = readFileSync(join(out, 'runs.csv'), 'utf8').trim().split('\n');
    const cols = (header ?? '').split(',');
    const cells = (row ?? '').split(',');
    const cell = (name: string): string => cells[cols.indexOf(name)] ?? '';
    assert.equal(cell('gpus'), '2');
    assert.equal(
      cell('gpu_energy_j'),
      run.gpus.map((g) => `r${g.replica}/${g.gpuUuid}=${String(g.energyJoules)}`).join(';'),
    );
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /<h2>Energy per GPU<\/h2>.*GPU-simulated-0001/s);
  });

  it('runs tensorParallelSize 2 x replicas 2 on four GPUs, replica r measuring GPUs 2r and 2r+1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-tp-dp-'));
    const out = join(dir, 'out');
    const file = manifest(
      dir,
      '    replicas: 2\n    gpusPerRun: 2\n',
      '      pytorch:\n        tensorParallelSize: 2\n',
    );
    const r = await runLlem(['run', file, '--simulate', '--out', out], {
      LLEM_SIMULATED_GPU_WATTS: '100,200,300,400',
    });
    assert.equal(r.code, 0, r.stderr);
    const [run] = runResults(out);
    assert.ok(run !== undefined);
    assert.equal(run.status, 'complete');
    assertEachGpuDrew(run, [
      [0, 'GPU-simulated-0000', 100],
      [0, 'GPU-simulated-0001', 200],
      [1, 'GPU-simulated-0002', 300],
      [1, 'GPU-simulated-0003', 400],
    ]);
  });

  it('refuses LLEM_SIMULATED_GPU_WATTS that is not a list of watts, naming it, exit 2, nothing written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-watts-'));
    const out = join(dir, 'out');
    const r = await runLlem(['run', manifest(dir, '    replicas: 2\n'), '--simulate', '--out', out], {
      LLEM_SIMULATED_GPU_WATTS: '150,lots',
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /LLEM_SIMULATED_GPU_WATTS: must be comma-separated non-negative watts.*entry 2 is "lots"/);
    assert.equal(existsSync(out), false);
  });
});
