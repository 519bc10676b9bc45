// The run table outside status (ADR 0014): chunked in the checkpoint bucket, only changed chunks
// written, read back exactly, a malformed chunk an error; and status stays small at 20,000 runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { EnergyExperimentStatusSchema, type RunSummary } from '../../../api/status.ts';
import { RunTable, CHUNK_RUNS, runChunkKey } from '../../../controller/run-table.ts';
import { boundConfigurations, boundRuns, configurationResults, progressOf } from '../../../controller/status.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import type { CheckpointRecord } from '../../../lib/bus/types.ts';
import { CheckpointError } from '../../../lib/errors.ts';

function bigMatrix() {
  const seq = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'big' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      workload: { requests: 64 },
      sweep: { axes: { 'pytorch.maxBatchSize': seq(50), 'workload.concurrency': seq(40) } },
      measurement: { cycles: 10 },
    },
  });
  assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.issues));
  return v.matrix;
}

class CountingBus extends InProcessBus {
  puts: string[] = [];
  override async putCheckpoint(key: string, record: CheckpointRecord): Promise<void> {
    this.puts.push(key);
    await super.putCheckpoint(key, record);
  }
}

void test('a 20,000-run table writes only the chunks that changed and reads back exactly', async () => {
  const matrix = bigMatrix();
  assert.equal(matrix.runs.length, 20_000);
  const bus = new CountingBus();
  await bus.ensureLayout();
  const table = await RunTable.load(bus, 'ns.uid', matrix.runs, []);
  assert.equal(table.list().length, 20_000);
  const next = table.list().slice();
  next[0] = { ...next[0]!, phase: 'Running', attempt: 0, startTime: '2026-01-01T00:00:00Z' };
  next[CHUNK_RUNS * 7 + 3] = { ...next[CHUNK_RUNS * 7 + 3]!, phase: 'Succeeded', attempt: 2 };
  table.update(next);
  await table.persist();
  assert.deepEqual(bus.puts.sort(), [runChunkKey('ns.uid', 0), runChunkKey('ns.uid', 7)]);
  table.update(table.list());
  await table.persist();
  assert.equal(bus.puts.length, 2, 'nothing changed: nothing written');
  const again = await RunTable.load(bus, 'ns.uid', matrix.runs, []);
  assert.deepEqual(again.list(), next);
  await bus.close();
});

void test('a malformed run table chunk is a checkpoint error, never a silent reset to attempt 0', async () => {
  const matrix = bigMatrix();
  const bus = new InProcessBus();
  await bus.ensureLayout();
  await bus.putCheckpoint(runChunkKey('ns.uid', 3), {
    state: new TextEncoder().encode('{"v":1,"runs":[{"id":7}]}'),
    lastStreamSeq: 0,
  });
  await assert.rejects(RunTable.load(bus, 'ns.uid', matrix.runs, []), CheckpointError);
  await bus.close();
});

void test('status stays under 256 KB at 20,000 runs and 2,000 configurations with every metric set', () => {
  const matrix = bigMatrix();
  const runs: RunSummary[] = matrix.runs.map((r, i) => ({
    id: r.id,
    configurationId: r.configurationId,
    cycle: r.cycle,
    phase: i % 97 === 0 ? 'Failed' : 'Succeeded',
    attempt: i % 97 === 0 ? 3 : 0,
    startTime: '2026-01-01T00:00:00.000Z',
    completionTime: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
    ...(i % 97 === 0 ? { message: 'Attempt 3 failed: OOMKilled: '.padEnd(900, 'x') } : {}),
  }));
  const stat = { n: 10, mean: 0.123456, std: 0.0123456, ci95Low: 0.111111, ci95High: 0.135791 };
  const names = [
    'joulesPerToken',
    'tokensPerJoule',
    'energyJoules',
    'averagePowerWatts',
    'baselinePowerWatts',
    'outputTokensPerSecond',
    'requestsPerSecond',
    'ttftMsP50',
    'ttftMsP99',
    'itlMsP50',
    'itlMsP99',
    'e2eMsP50',
    'e2eMsP99',
    'tpotMsP50',
  ];
  const metrics = new Map(matrix.configurations.map((c) => [c.id, Object.fromEntries(names.map((n) => [n, stat]))]));
  const status = EnergyExperimentStatusSchema.parse({
    phase: 'Succeeded',
    progress: progressOf(runs),
    runs: boundRuns(runs),
    configurations: boundConfigurations(configurationResults(matrix.configurations, runs, metrics)),
    conditions: [],
  });
  const bytes = Buffer.byteLength(JSON.stringify(status));
  assert.ok(bytes < 256 * 1024, `status is ${bytes} bytes`);
  assert.ok(
    status.runs.some((r) => r.phase === 'Failed'),
    'failed runs are shown',
  );
  assert.equal(status.progress?.total, 20_000);
});
