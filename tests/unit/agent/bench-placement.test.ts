import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import {
  allowedCpus,
  hasTaskset,
  pinProcess,
  planPlacement,
  realtimeMainThread,
  schedPolicy,
} from '../../../bench/placement.ts';

test('bench/agent puts the mock on the last core and the client on the others when there are two or more', () => {
  assert.deepEqual(planPlacement(2, true, undefined), { client: '0', server: '1' });
  assert.deepEqual(planPlacement(8, true, undefined), { client: '0-6', server: '7' });
  assert.deepEqual(planPlacement(4, true, 'all'), { client: '0-2', server: '3' });
});

test('bench/agent leaves placement to the scheduler on one core, without taskset, or with LLEM_BENCH_PIN=0', () => {
  assert.equal(planPlacement(1, true, undefined), null);
  assert.equal(planPlacement(0, true, undefined), null);
  assert.equal(planPlacement(Number.NaN, true, undefined), null);
  assert.equal(planPlacement(2, false, undefined), null);
  assert.equal(planPlacement(16, true, '0'), null);
});

/** Runs `check` on the pid of an idle child Node process, killed afterwards. */
async function withIdleChild(check: (pid: number) => void): Promise<void> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
  try {
    check(child.pid as number);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
}

const pinnable = process.platform === 'linux' && availableParallelism() >= 2 && hasTaskset();

test('pinning a process sets its main thread to the CPU list the kernel then reports', { skip: !pinnable }, () =>
  withIdleChild((pid) => {
    const before = allowedCpus(pid);
    assert.notEqual(before, '1', 'a fresh process is not pinned to one core already');
    pinProcess(pid, '1');
    assert.equal(allowedCpus(pid), '1');
    pinProcess(pid, '0-1', true);
    assert.equal(allowedCpus(pid), '0-1');
  }),
);

test('pinning a process that does not exist throws, naming the command', { skip: !pinnable }, () => {
  assert.throws(() => pinProcess(2 ** 22 + 12345, '0'), /taskset .*-c 0 .* failed/);
});

const canRealtime = process.platform === 'linux' && process.getuid?.() === 0 && spawnSync('chrt', ['-m']).status === 0;

test('the opt-in realtime setting makes a main thread SCHED_FIFO, as /proc then reports', { skip: !canRealtime }, () =>
  withIdleChild((pid) => {
    assert.equal(schedPolicy(pid), 0, 'a fresh process is SCHED_OTHER');
    realtimeMainThread(pid);
    assert.equal(schedPolicy(pid), 1);
  }),
);
