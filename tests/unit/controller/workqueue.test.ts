import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryRateLimiter, WorkQueue } from '../../../controller/workqueue.ts';

void test('a key added twice while queued is processed once', async () => {
  const q = new WorkQueue();
  q.add('a/x');
  q.add('a/x');
  q.add('a/y');
  assert.equal(q.stats().depth, 2);
  assert.equal(await q.get(), 'a/x');
  assert.equal(await q.get(), 'a/y');
});

void test('a key added while being processed is not handed out again until done', async () => {
  const q = new WorkQueue();
  q.add('k');
  const k = await q.get();
  q.add('k');
  assert.equal(q.stats().depth, 0, 'not queued while processing');
  let second: string | undefined;
  void q.get().then((v) => (second = v));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(second, undefined);
  q.done(k ?? '');
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(second, 'k');
});

void test('per-item backoff doubles and forget resets it', () => {
  const rl = new RetryRateLimiter({ baseDelayMs: 5, maxDelayMs: 1000, bucketQps: 1000, bucketBurst: 1000 });
  assert.deepEqual([rl.when('k'), rl.when('k'), rl.when('k'), rl.when('k')], [5, 10, 20, 40]);
  rl.forget('k');
  assert.equal(rl.when('k'), 5);
  for (let i = 0; i < 20; i++) rl.when('k');
  assert.equal(rl.when('k'), 1000, 'capped');
});

void test('the global bucket delays retries once its burst is spent', () => {
  let now = 0;
  const rl = new RetryRateLimiter({ baseDelayMs: 1, maxDelayMs: 10, bucketQps: 10, bucketBurst: 2 }, () => now);
  assert.equal(rl.when('a'), 1);
  assert.equal(rl.when('b'), 1);
  assert.equal(rl.when('c'), 100, 'third key waits for a token');
  now = 1000;
  assert.equal(rl.when('d'), 1);
});

void test('shutdown releases waiting workers', async () => {
  const q = new WorkQueue();
  const waiting = q.get();
  q.shutdown();
  assert.equal(await waiting, undefined);
});
