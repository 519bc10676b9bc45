import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeFileAtomic } from '../../../lib/atomic-file.ts';
import { InvalidInputError } from '../../../lib/errors.ts';
import { assertSameExperiment, changedPaths, ResultsDirectory, type LocalState } from '../../../local/state.ts';
import type { RunFile } from '../../../local/results.ts';
import { RunFileIndex, RunLog } from '../../../local/run-log.ts';

function state(experiment: unknown): LocalState {
  return {
    version: 1,
    manifestFile: '/x.yaml',
    experimentUid: 'local-x',
    simulated: true,
    experiment,
    startedAt: 'now',
    runs: {},
    environment: {},
  };
}

describe('local results directory state', () => {
  it('lists the dotted paths that differ between two resolved experiments', () => {
    const a = { spec: { workload: { requests: 16, mode: 'concurrency' }, cycles: 2 } };
    const b = { spec: { workload: { requests: 20, mode: 'concurrency' }, cycles: 3 } };
    assert.deepEqual(changedPaths(a, b), ['spec.cycles', 'spec.workload.requests']);
    assert.deepEqual(changedPaths(a, a), []);
  });

  it('refuses to resume a different experiment, naming the change and the way out', () => {
    const s = state({ spec: { workload: { requests: 16 } } });
    assert.throws(
      () => assertSameExperiment(s, { spec: { workload: { requests: 20 } } }, 'exp.yaml', 'out'),
      (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.match(
          err.message,
          /^exp\.yaml: the manifest changed since out was started: spec\.workload\.requests \(16 -> 20\)\..*--fresh/,
        );
        return true;
      },
    );
    assert.doesNotThrow(() => assertSameExperiment(s, { spec: { workload: { requests: 16 } } }, 'exp.yaml', 'out'));
  });

  it('round-trips the state and says how to recover from a corrupt or foreign state file', () => {
    const dir = new ResultsDirectory(mkdtempSync(join(tmpdir(), 'llem-state-')));
    assert.equal(dir.readState(), null);
    dir.writeState(state({ a: 1 }));
    assert.deepEqual(dir.readState()?.experiment, { a: 1 });
    writeFileSync(dir.statePath, '{"version": 1, "manifestFi');
    const input =
      (re: RegExp) =>
      (e: unknown): boolean =>
        e instanceof InvalidInputError && e.exitCode === 2 && e.message.startsWith(dir.statePath) && re.test(e.message);
    assert.throws(() => dir.readState(), input(/is damaged: not readable JSON.*--fresh/));
    writeFileSync(dir.statePath, '{"version": 99}');
    assert.throws(() => dir.readState(), input(/is damaged: not a llem state file of version 1 or 2.*--fresh/));
  });

  it('a damaged aggregator checkpoint is an input error naming the file, with --fresh as the way out', () => {
    const dir = new ResultsDirectory(mkdtempSync(join(tmpdir(), 'llem-state-')));
    assert.equal(dir.restoreCheckpoint(), null);
    dir.writeCheckpoint(new Uint8Array([0xff, 0x00, 0x13, 0x37]));
    assert.throws(
      () => dir.restoreCheckpoint(),
      (e: unknown) =>
        e instanceof InvalidInputError &&
        e.exitCode === 2 &&
        e.message.startsWith(dir.checkpointPath) &&
        /is damaged: .*--fresh/.test(e.message),
    );
  });

  it('writes files atomically, leaving no temporary files behind', () => {
    const d = mkdtempSync(join(tmpdir(), 'llem-atomic-'));
    writeFileAtomic(join(d, 'f.json'), 'one');
    writeFileAtomic(join(d, 'f.json'), 'two');
    assert.equal(readFileSync(join(d, 'f.json'), 'utf8'), 'two');
    assert.deepEqual(readdirSync(d), ['f.json']);
    assert.throws(() => writeFileAtomic(join(d, 'missing', 'f.json'), 'x'), /ENOENT/);
    assert.deepEqual(readdirSync(d), ['f.json']);
  });

  it('never rewrites a completed run record, and supersedes one of an attempt measured again', () => {
    const d = mkdtempSync(join(tmpdir(), 'llem-runs-'));
    const file = (energy: number): RunFile => ({
      result: { runId: 'r-c0', metrics: { energyJoules: energy } } as unknown as RunFile['result'],
      power: [],
      marks: [],
      windowStartMs: 1,
      windowEndMs: 2,
    });
    const log = new RunLog(d);
    log.append(file(1));
    log.append(file(2));
    assert.equal(new RunFileIndex(d).get('r-c0')?.result.metrics.energyJoules, 1);
    log.supersede('r-c0');
    assert.equal(new RunFileIndex(d).has('r-c0'), false);
    new RunLog(d).append(file(3));
    assert.equal(new RunFileIndex(d).get('r-c0')?.result.metrics.energyJoules, 3);
    assert.equal(readdirSync(d).join(','), 'runs.ndjson', 'one file, however many runs');
  });
});
