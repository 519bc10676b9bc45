import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTrace, traceRequest } from '../../../agent/load/trace.ts';
import {
  traceSchedule,
  runLoad,
  RequestFactory,
  type RequestSender,
  type Workload,
} from '../../../agent/load/generator.ts';
import { parseConversations } from '../../../agent/load/conversation.ts';
import {
  pytorchExtendedResults,
  tensorrtExtendedResults,
  vllmExtendedResults,
} from '../../../agent/backends/metrics.ts';
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

void describe('multi-turn and shared-prefix workloads', () => {
  const base: Workload = {
    api: 'chat',
    model: 'm',
    mode: 'concurrency',
    concurrency: 2,
    ratePerSecond: 1,
    inputTokens: 8,
    outputTokens: 4,
    ignoreEos: true,
    temperature: 0,
    seed: 1,
  };

  void it('puts every earlier turn and its answer into the next prompt, and waits think time after the answer', async () => {
    const conversations = parseConversations(
      [
        '{"turns": [{"user": "first question", "thinkTimeMs": 30}, {"user": "second", "outputTokens": 9}, {"user": "third"}]}',
        '{"turns": [{"user": "other one"}, {"user": "other two"}]}',
      ].join('\n'),
      'c.jsonl',
    );
    const sent: Array<{ prompt: string; at: number; maxTokens: number }> = [];
    let answered = 0;
    const sender: RequestSender = {
      send: async (req) => {
        sent.push({ prompt: req.prompt, at: performance.now(), maxTokens: req.maxTokens });
        assert.equal(req.collectText, true);
        await new Promise((r) => setTimeout(r, 5));
        const text = ` answer${++answered}`;
        const now = performance.now();
        return {
          ok: true,
          startMs: now,
          endMs: now,
          ttftMs: 1,
          itlMs: [],
          e2eMs: 1,
          tpotMs: null,
          inputTokens: 1,
          outputTokens: 1,
          text,
        };
      },
    };
    const w: Workload = { ...base, concurrency: 1, conversations };
    await runLoad(sender, new RequestFactory(w), w, {
      requests: 5,
      signal: new AbortController().signal,
      onResult: () => undefined,
    });
    assert.equal(sent.length, 5);
    assert.equal(sent[0]?.prompt, 'User: first question\nAssistant:');
    assert.equal(sent[1]?.prompt, 'User: first question\nAssistant:  answer1\nUser: second\nAssistant:');
    assert.ok(sent[2]?.prompt.startsWith(`${sent[1]?.prompt ?? '?'}  answer2\nUser: third`));
    assert.equal(sent[3]?.prompt, 'User: other one\nAssistant:', 'the next conversation starts fresh');
    assert.equal(sent[1]?.maxTokens, 9);
    assert.equal(sent[0]?.maxTokens, 4, "a turn without outputTokens takes the workload's");
    assert.ok((sent[1]?.at ?? 0) - (sent[0]?.at ?? 0) >= 30 + 5 - 1, 'think time after the answer');
  });

  void it('names file:line for a conversation line without turns or with a bad turn', () => {
    const text = ['{"turns": []}', '{"turns": [{"user": ""}]}', '{"turns": [{"user": "a", "thinkTimeMs": -1}]}'].join(
      '\n',
    );
    assert.deepEqual(
      issuesOf(() => parseConversations(text, 'c.jsonl')),
      [
        'c.jsonl:1: has no "turns" list (each line: {"turns": [{"user": "..."}]})',
        'c.jsonl:2: turns[0].user must be a non-empty string',
        'c.jsonl:3: turns[0].thinkTimeMs must be a number >= 0 (got -1)',
      ],
    );
  });

  void it('starts every synthetic prompt with one of N shared prefixes, the same ones for warm-up and window', () => {
    const w: Workload = { ...base, sharedPrefix: { prefixes: 3, prefixTokens: 20 } };
    const window = new RequestFactory(w);
    const warm = new RequestFactory(w, 1000);
    const prefixOf = (p: string): string => p.split(' ').slice(0, 20).join(' ');
    const reqs = Array.from({ length: 60 }, () => window.next());
    const prefixes = new Set(reqs.map((r) => prefixOf(r.prompt)));
    assert.equal(prefixes.size, 3);
    for (const r of reqs) {
      assert.equal(r.promptTokens, 28);
      assert.equal(r.prompt.split(' ').length, 28);
    }
    for (let i = 0; i < 20; i++) assert.ok(prefixes.has(prefixOf(warm.next().prompt)));
    // Suffixes differ: the prefix is shared, the request is not.
    assert.equal(new Set(reqs.map((r) => r.prompt)).size, 60);
  });
});

void describe('prefix-cache hit rate', () => {
  void it('is null with the reason on backends that report none, and computed from vLLM counters over the window', () => {
    const py = pytorchExtendedResults({ version: '1' }).metrics['prefixCacheHitRate'];
    assert.equal(py?.value, null);
    assert.match(py?.reason ?? '', /no prefix cache/);
    assert.match(tensorrtExtendedResults().metrics['prefixCacheHitRate']?.reason ?? '', /no Prometheus metrics/);
    const sample = (name: string, value: number): { name: string; labels: Record<string, string>; value: number } => ({
      name,
      labels: {},
      value,
    });
    const v = vllmExtendedResults({
      start: [sample('vllm:prefix_cache_hits_total', 100), sample('vllm:prefix_cache_queries_total', 400)],
      end: [sample('vllm:prefix_cache_hits_total', 400), sample('vllm:prefix_cache_queries_total', 800)],
      during: [],
    });
    assert.equal(v.metrics['prefixCacheHitRate']?.value, 0.75);
  });
});
