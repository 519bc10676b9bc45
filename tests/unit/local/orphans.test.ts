import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import {
  BackendLedger,
  bootId,
  processStartTicks,
  selfIdentity,
  type LedgerEntry,
  type ProcessIdentity,
} from '../../../local/orphans.ts';

const quiet = pino({ level: 'silent' });

function sleeper(): ProcessIdentity {
  const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  child.unref();
  const pid = child.pid as number;
  return { pid, startTicks: processStartTicks(pid) as number };
}

/** The identity of a process that has exited: an `llem run` that was SIGKILLed. */
function deadOwner(): ProcessIdentity {
  const r = spawnSync('sh', ['-c', 'echo $$ $(cut -d" " -f22 /proc/$$/stat)'], { encoding: 'utf8' });
  const [pid, ticks] = r.stdout.trim().split(' ').map(Number);
  return { pid: pid!, startTicks: ticks! };
}

function killGroup(p: ProcessIdentity): void {
  try {
    process.kill(-p.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function ledgerFile(entries: LedgerEntry[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'llem-ledger-')), 'backends.json');
  writeFileSync(file, JSON.stringify({ backends: entries }));
  return file;
}

const entry = (p: ProcessIdentity, owner: ProcessIdentity, over: Partial<LedgerEntry> = {}): LedgerEntry => ({
  ...p,
  owner,
  bootId: bootId(),
  command: 'sleep 30',
  ...over,
});

void test('a server whose llem run is gone is stopped, its whole group; a reused pid never is', async (t) => {
  const a = sleeper();
  const b = sleeper();
  t.after(() => [a, b].forEach(killGroup));
  const dead = deadOwner();
  // b's pid with another start time: a reused pid must never be signalled.
  const file = ledgerFile([entry(a, dead), entry({ pid: b.pid, startTicks: b.startTicks + 1 }, dead)]);
  assert.deepEqual(await new BackendLedger(file).reap(quiet, 5_000), [a.pid]);
  assert.equal(processStartTicks(a.pid), null);
  assert.equal(processStartTicks(b.pid), b.startTicks, 'the unrelated process runs on');
  assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { backends: unknown[] }).backends, []);
});

void test("a live llem run's server is left alone (a second run on the same directory), and so is one from before a reboot", async (t) => {
  const s = sleeper();
  t.after(() => killGroup(s));
  const mine = ledgerFile([entry(s, selfIdentity())]);
  assert.deepEqual(await new BackendLedger(mine).reap(quiet), []);
  assert.equal(processStartTicks(s.pid), s.startTicks);
  assert.equal(
    (JSON.parse(readFileSync(mine, 'utf8')) as { backends: unknown[] }).backends.length,
    1,
    'the live run keeps its entry',
  );
  const rebooted = ledgerFile([entry(s, deadOwner(), { bootId: 'another-boot' })]);
  assert.deepEqual(await new BackendLedger(rebooted).reap(quiet), []);
  assert.equal(processStartTicks(s.pid), s.startTicks);
});

void test('a removed entry is not acted on; a torn or foreign ledger file is ignored; never pid 1 or llem itself', async (t) => {
  const s = sleeper();
  t.after(() => killGroup(s));
  const file = join(mkdtempSync(join(tmpdir(), 'llem-ledger-')), 'backends.json');
  const ledger = new BackendLedger(file);
  ledger.add({ pid: s.pid, startTicks: s.startTicks, command: 'sleep 30' });
  ledger.remove(s.pid);
  assert.deepEqual(await new BackendLedger(file).reap(quiet), []);
  writeFileSync(file, `{"backends": [{"pid": ${s.pid}, "start`);
  assert.deepEqual(await new BackendLedger(file).reap(quiet), []);
  const dead = deadOwner();
  const self = { ...selfIdentity(), owner: dead, bootId: bootId(), command: 'llem' };
  writeFileSync(
    file,
    JSON.stringify({
      backends: [
        { pid: 'x' },
        { pid: s.pid, owner: dead },
        { pid: 1, startTicks: processStartTicks(1), owner: dead, bootId: bootId() },
        self,
      ],
    }),
  );
  assert.deepEqual(await new BackendLedger(file).reap(quiet), []);
  assert.equal(processStartTicks(s.pid), s.startTicks);
  assert.equal(processStartTicks(2 ** 22 + 7), null, 'no such process');
});
