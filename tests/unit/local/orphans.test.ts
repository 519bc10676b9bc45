import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { BackendLedger, processStartTicks } from '../../../local/orphans.ts';

const quiet = pino({ level: 'silent' });

function sleeper(): { pid: number; startTicks: number } {
  const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  child.unref();
  const pid = child.pid as number;
  return { pid, startTicks: processStartTicks(pid) as number };
}

void test('the ledger stops a listed process group only while the pid is still the same process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-ledger-'));
  const file = join(dir, 'backends.json');
  const a = sleeper();
  const b = sleeper();
  t.after(() => {
    for (const p of [a, b]) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  const ledger = new BackendLedger(file);
  ledger.add({ pid: a.pid, startTicks: a.startTicks, command: 'sleep 30' });
  // b's pid with another start time: a reused pid must never be signalled.
  ledger.add({ pid: b.pid, startTicks: b.startTicks + 1, command: 'something else' });
  const stopped = await new BackendLedger(file).reap(quiet, 5_000);
  assert.deepEqual(stopped, [a.pid]);
  assert.equal(processStartTicks(a.pid), null);
  assert.equal(processStartTicks(b.pid), b.startTicks, 'the unrelated process runs on');
  assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { backends: unknown[] }).backends, []);
});

void test('a removed entry is not acted on; a torn or foreign ledger file is ignored, never pid 1 or llem itself', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-ledger-'));
  const file = join(dir, 'backends.json');
  const s = sleeper();
  t.after(() => process.kill(-s.pid, 'SIGKILL'));
  const ledger = new BackendLedger(file);
  ledger.add({ pid: s.pid, startTicks: s.startTicks, command: 'sleep 30' });
  ledger.remove(s.pid);
  assert.deepEqual(await new BackendLedger(file).reap(quiet), []);
  assert.equal(processStartTicks(s.pid), s.startTicks);
  writeFileSync(file, `{"backends": [{"pid": ${s.pid}, "start`);
  assert.deepEqual(await new BackendLedger(file).reap(quiet), []);
  // Shapes it must refuse: no start time, pid 1 (kill(-1) would signal everything), this process.
  const self = { pid: process.pid, startTicks: processStartTicks(process.pid), command: 'llem' };
  writeFileSync(file, JSON.stringify({ backends: [{ pid: 'x' }, { pid: s.pid }, { pid: 1, startTicks: processStartTicks(1) }, self] }));
  assert.deepEqual(await new BackendLedger(file).reap(quiet), []);
  assert.equal(processStartTicks(s.pid), s.startTicks);
  assert.equal(processStartTicks(2 ** 22 + 7), null, 'no such process');
});
