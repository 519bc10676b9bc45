// The controller gives a released large experiment's memory back: one reclaim soon after the release,
// then a few more while the release's aftermath (pod deletions, watch events) settles, spaced apart.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryReclaimer, RECLAIM_MIN_RUNS } from '../../../controller/memory.ts';
import { rootLogger } from '../../../lib/log.ts';

void test('a released large experiment is reclaimed once soon, then three more times 10 s apart, and no more', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  try {
    const m = new MemoryReclaimer(rootLogger.child({}, { level: 'silent' }));
    m.released(RECLAIM_MIN_RUNS - 1);
    mock.timers.tick(60_000);
    assert.equal(m.reclaims, 0, 'a small experiment leaves too little to be worth a pause');
    m.released(20_000);
    mock.timers.tick(999);
    assert.equal(m.reclaims, 0);
    mock.timers.tick(1);
    assert.equal(m.reclaims, 1, 'one second after the release');
    for (const n of [2, 3, 4]) {
      mock.timers.tick(9_999);
      assert.equal(m.reclaims, n - 1, 'never closer than 10 s');
      mock.timers.tick(1);
      assert.equal(m.reclaims, n);
    }
    mock.timers.tick(120_000);
    assert.equal(m.reclaims, 4, 'then it stops');
    m.stop();
  } finally {
    mock.timers.reset();
  }
});
