import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drawLength, poissonGapMs, seededRng, syntheticPrompt } from '../../../agent/load/prompts.ts';
import { SseParser } from '../../../agent/load/sse.ts';

void test('the same seed gives the same synthetic prompts', () => {
  const a = seededRng(7);
  const b = seededRng(7);
  assert.equal(syntheticPrompt(50, a), syntheticPrompt(50, b));
  assert.notEqual(syntheticPrompt(50, seededRng(8)), syntheticPrompt(50, seededRng(7)));
});

void test('a synthetic prompt has one word per requested token', () => {
  assert.equal(syntheticPrompt(512, seededRng(1)).split(' ').length, 512);
});

void test('token-length distributions stay within their bounds and near their mean', () => {
  const rng = seededRng(3);
  const uniform = Array.from({ length: 2000 }, () => drawLength({ distribution: 'uniform', min: 10, max: 20 }, rng));
  assert.ok(uniform.every((x) => x >= 10 && x <= 20));
  assert.equal(new Set(uniform).size, 11);
  const normal = Array.from({ length: 4000 }, () =>
    drawLength({ distribution: 'normal', mean: 200, stddev: 20, max: 230 }, rng),
  );
  const mean = normal.reduce((s, x) => s + x, 0) / normal.length;
  assert.ok(Math.abs(mean - 200) < 3, `normal mean ${mean}`);
  assert.ok(Math.max(...normal) <= 230);
  const logn = Array.from({ length: 4000 }, () =>
    drawLength({ distribution: 'lognormal', mean: 100, stddev: 50 }, rng),
  );
  const lmean = logn.reduce((s, x) => s + x, 0) / logn.length;
  assert.ok(Math.abs(lmean - 100) < 6, `lognormal mean ${lmean}`);
  assert.equal(drawLength({ distribution: 'fixed', mean: 64 }, rng), 64);
});

void test('Poisson gaps average to the inverse rate', () => {
  const rng = seededRng(11);
  const gaps = Array.from({ length: 20_000 }, () => poissonGapMs(50, rng));
  const mean = gaps.reduce((s, x) => s + x, 0) / gaps.length;
  assert.ok(Math.abs(mean - 20) < 0.6, `mean gap ${mean} ms`);
});

void test('the SSE parser yields events split across arbitrary chunk boundaries', () => {
  const stream = 'data: {"a":1}\n\n: comment\r\ndata: {"b":2}\r\n\r\nevent: x\ndata: [DONE]\n\n';
  for (const size of [1, 3, 7, stream.length]) {
    const parser = new SseParser();
    const got: string[] = [];
    for (let i = 0; i < stream.length; i += size) parser.push(stream.slice(i, i + size), (d) => got.push(d));
    assert.deepEqual(got, ['{"a":1}', '{"b":2}', '[DONE]'], `chunk size ${size}`);
  }
});

void test('the SSE parser keeps a UTF-8 character split across two reads, and reads from a reused buffer', () => {
  const bytes = Buffer.from('data: {"text":"héllo ✓"}\n\ndata: [DONE]\n\n');
  for (let cut = 1; cut < bytes.length; cut++) {
    const parser = new SseParser();
    const got: string[] = [];
    // One buffer reused for every read, as the client's socket reads are: the parser copies what it keeps.
    const reused = Buffer.alloc(bytes.length);
    for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
      part.copy(reused);
      parser.push(reused.subarray(0, part.length), (d) => got.push(d));
      reused.fill(0);
    }
    assert.deepEqual(got, ['{"text":"héllo ✓"}', '[DONE]'], `cut at byte ${cut}`);
  }
});
