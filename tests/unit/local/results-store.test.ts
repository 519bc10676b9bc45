import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InvalidInputError } from '../../../lib/errors.ts';
import type { RunFile } from '../../../local/results.ts';
import { RunFileIndex, RunLog } from '../../../local/run-log.ts';
import { ResultsDirectory, type LocalState } from '../../../local/state.ts';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'llem-store-'));

function state(): LocalState {
  return {
    version: 2,
    manifestFile: '/x.yaml',
    experimentUid: 'local-x',
    simulated: true,
    experiment: { spec: {} },
    startedAt: 'now',
    runs: {},
    environment: {},
  };
}

const runFile = (runId: string, energy: number): RunFile => ({
  result: { runId, metrics: { energyJoules: energy } } as unknown as RunFile['result'],
  power: [{ tMs: energy, gpuUuid: 'GPU-0', powerWatts: 100 } as unknown as RunFile['power'][number]],
  marks: [],
  windowStartMs: energy,
  windowEndMs: energy + 1,
});

describe('results store at scale (ADR 0025)', () => {
  it('journals run transitions without rewriting state.json, and a resume folds them in order', () => {
    const dir = new ResultsDirectory(tmp());
    dir.writeState(state());
    const snapshot = readFileSync(dir.statePath, 'utf8');
    for (let i = 0; i < 50; i += 1) {
      dir.recordRun(`r-${i}`, { status: 'running', attempts: 1, lastError: null });
      dir.recordRun(`r-${i}`, { status: 'complete', attempts: 1, lastError: null });
    }
    dir.recordRun('r-7', { status: 'failed', attempts: 2, lastError: 'boom' });
    assert.equal(readFileSync(dir.statePath, 'utf8'), snapshot, 'state.json is not rewritten per transition');
    const read = dir.readState();
    assert.equal(Object.keys(read?.runs ?? {}).length, 50);
    assert.deepEqual(read?.runs['r-7'], { status: 'failed', attempts: 2, lastError: 'boom' });
    assert.equal(read?.runs['r-8']?.status, 'complete');
  });

  it('skips a journal line torn by a crash mid-append, and the next transition starts on a fresh line', () => {
    const dir = new ResultsDirectory(tmp());
    dir.writeState(state());
    dir.recordRun('a', { status: 'complete', attempts: 1, lastError: null });
    appendFileSync(dir.journalPath, '{"runId":"b","status":"comp');
    assert.deepEqual(Object.keys(dir.readState()?.runs ?? {}), ['a']);
    const resumed = new ResultsDirectory(dir.dir);
    resumed.recordRun('b', { status: 'running', attempts: 1, lastError: null });
    assert.equal(resumed.readState()?.runs['b']?.status, 'running');
  });

  it('a damaged journal line before the end is an input error naming the journal, with --fresh as the way out', () => {
    const dir = new ResultsDirectory(tmp());
    dir.writeState(state());
    writeFileSync(dir.journalPath, 'garbage\n{"runId":"a","status":"complete","attempts":1,"lastError":null}\n');
    assert.throws(
      () => dir.readState(),
      (e: unknown) =>
        e instanceof InvalidInputError &&
        e.exitCode === 2 &&
        e.message.startsWith(dir.journalPath) &&
        /--fresh/.test(e.message),
    );
  });

  it('compaction writes the folded runs into state.json and empties the journal; replaying it again changes nothing', () => {
    const dir = new ResultsDirectory(tmp());
    dir.writeState(state());
    dir.recordRun('a', { status: 'complete', attempts: 1, lastError: null });
    const journal = readFileSync(dir.journalPath, 'utf8');
    const folded = dir.readState();
    assert.ok(folded !== null);
    dir.writeState(folded);
    assert.equal(JSON.parse(readFileSync(dir.statePath, 'utf8')).runs.a.status, 'complete');
    // A crash after the snapshot but before the journal was removed: the same lines fold to the same state.
    writeFileSync(dir.journalPath, journal);
    assert.deepEqual(dir.readState()?.runs, folded.runs);
  });

  it('reads a version 1 directory (every transition in state.json, runs/<id>.json files) and resumes into it', () => {
    const d = tmp();
    mkdirSync(join(d, '.llem'));
    mkdirSync(join(d, 'runs'));
    const v1 = { ...state(), version: 1, runs: { 'r-a': { status: 'complete', attempts: 1, lastError: null } } };
    writeFileSync(join(d, '.llem', 'state.json'), JSON.stringify(v1));
    writeFileSync(join(d, 'runs', 'r-a.json'), JSON.stringify(runFile('r-a', 5)));
    const dir = new ResultsDirectory(d);
    assert.equal(dir.readState()?.runs['r-a']?.status, 'complete');
    assert.equal(new RunFileIndex(d).get('r-a')?.result.metrics.energyJoules, 5);
    // Resumed by this version: new runs go to runs.ndjson, the old file is still the record of r-a.
    const log = new RunLog(d);
    log.append(runFile('r-a', 6));
    log.append(runFile('r-b', 7));
    const index = new RunFileIndex(d);
    assert.equal(index.get('r-a')?.result.metrics.energyJoules, 5);
    assert.equal(index.get('r-b')?.result.metrics.energyJoules, 7);
    dir.recordRun('r-b', { status: 'complete', attempts: 1, lastError: null });
    assert.deepEqual(Object.keys(dir.readState()?.runs ?? {}).sort(), ['r-a', 'r-b']);
    // Measuring r-a again supersedes its old file too.
    log.supersede('r-a');
    assert.equal(new RunFileIndex(d).has('r-a'), false);
  });

  it('a run log torn by a crash mid-append keeps every whole record and the next record lands on its own line', () => {
    const d = tmp();
    new RunLog(d).append(runFile('r-a', 1));
    appendFileSync(join(d, 'runs.ndjson'), '{"result":{"runId":"r-b"');
    const log = new RunLog(d);
    assert.equal(log.has('r-b'), false);
    log.append(runFile('r-c', 3));
    const index = new RunFileIndex(d);
    assert.deepEqual([...index.runIds()].sort(), ['r-a', 'r-c']);
    assert.equal(index.window('r-c')?.windowStartMs, 3);
  });
});
