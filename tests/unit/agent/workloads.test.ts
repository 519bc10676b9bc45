import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTrace, traceRequest } from '../../../agent/load/trace.ts';
import { traceSchedule, RequestFactory, type Workload } from '../../../agent/load/generator.ts';
import { drawEmpirical, drawLength, seededRng } from '../../../agent/load/prompts.ts';
import { InvalidInputError } from '../../../lib/errors.ts';
import { TokenDistributionSchema } from '../../../api/spec.ts';

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidInputError);
    return err.message.split('\n');
  }
  assert.fail('no error');
}

void describe('realistic workloads', () => {
  void it('reads llem, Mooncake, Azure and BurstGPT trace lines with times relative to the first', () => {
    const text = [
      '{"timestampMs": 1000, "inputTokens": 10, "outputTokens": 5}',
      '{"timestamp": 1500, "input_length": 20, "output_length": 6, "hash_ids": [1]}',
      '{"Timestamp": 2.5, "Request tokens": 30, "Response tokens": 7}',
    ].join('\n');
    assert.deepEqual(parseTrace(text, 't.jsonl'), [
      { atMs: 0, inputTokens: 10, outputTokens: 5 },
      { atMs: 500, inputTokens: 20, outputTokens: 6 },
      { atMs: 1500, inputTokens: 30, outputTokens: 7 },
    ]);
    const azure = [
      '{"TIMESTAMP": "2023-11-16 18:15:46.6805900", "ContextTokens": 374, "GeneratedTokens": 44}',
      '{"TIMESTAMP": "2023-11-16 18:15:47.1805900", "ContextTokens": 396, "GeneratedTokens": 109}',
    ].join('\n');
    assert.deepEqual(
      parseTrace(azure, 'a.jsonl').map((r) => r.atMs),
      [0, 500],
    );
  });

  void it('names file:line for a negative length, unsorted times, a non-object line and an empty trace', () => {
    const bad = [
      '{"timestampMs": 20, "inputTokens": 10, "outputTokens": 5}',
      '{"timestampMs": 30, "inputTokens": -3, "outputTokens": 5}',
      '{"timestampMs": 5, "inputTokens": 3, "outputTokens": 5}',
      '[1, 2]',
      '{"inputTokens": 3, "outputTokens": 5}',
    ].join('\n');
    assert.deepEqual(
      issuesOf(() => parseTrace(bad, 'x.jsonl')),
      [
        'x.jsonl:2: inputTokens must be a positive integer token count (got -3)',
        'x.jsonl:3: arrives before the line above it: sort the trace by time',
        'x.jsonl:4: is not a JSON object',
        'x.jsonl:5: has no arrival time (one of timestampMs, timestamp, TIMESTAMP, Timestamp)',
      ],
    );
    assert.match(issuesOf(() => parseTrace('\n\n', 'e.jsonl'))[0] ?? '', /^e\.jsonl: holds no requests/);
  });

  void it('replays a trace with its gaps, scaled, and its lengths, repeating past its end', () => {
    const trace = parseTrace(
      [
        '{"timestampMs": 0, "inputTokens": 10, "outputTokens": 5}',
        '{"timestampMs": 400, "inputTokens": 20, "outputTokens": 6}',
      ].join('\n'),
      't',
    );
    const gap = traceSchedule(trace, 0.5);
    // The repeat starts one mean gap (400 ms) after the last request.
    assert.deepEqual([gap(0), gap(1), gap(2)], [200, 200, 200]);
    assert.deepEqual(traceRequest(trace, 3), { atMs: 1200, inputTokens: 20, outputTokens: 6 });
    const w: Workload = {
      api: 'completions',
      model: 'm',
      mode: 'rate',
      concurrency: 1,
      ratePerSecond: 1,
      inputTokens: 1,
      outputTokens: 1,
      ignoreEos: true,
      temperature: 0,
      seed: 0,
      trace,
    };
    const f = new RequestFactory(w);
    const reqs = [f.next(), f.next(), f.next()];
    assert.deepEqual(
      reqs.map((r) => [r.promptTokens, r.maxTokens, r.prompt.split(' ').length]),
      [
        [10, 5, 10],
        [20, 6, 20],
        [10, 5, 10],
      ],
    );
  });

  void it('samples an empirical distribution in proportion to its weights', () => {
    const rng = seededRng(5);
    const counts = new Map<number, number>();
    for (let i = 0; i < 20000; i++) {
      const v = drawLength({ distribution: 'empirical', values: [64, 256, 1024], weights: [1, 2, 1] }, rng);
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    assert.deepEqual(
      [...counts.keys()].sort((a, b) => a - b),
      [64, 256, 1024],
    );
    assert.ok(Math.abs((counts.get(256) ?? 0) / 20000 - 0.5) < 0.02);
    assert.ok(Math.abs((counts.get(64) ?? 0) / 20000 - 0.25) < 0.02);
    assert.equal(drawEmpirical([7], undefined, rng), 7);
    const bad = TokenDistributionSchema.safeParse({ distribution: 'empirical', values: [1, 2], weights: [1] });
    assert.deepEqual(bad.error?.issues[0]?.path, ['weights']);
    const none = TokenDistributionSchema.safeParse({ distribution: 'empirical' });
    assert.deepEqual(none.error?.issues[0]?.path, ['values']);
  });
});
