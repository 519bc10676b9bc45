// Backend-native metrics: Prometheus parsing, vLLM window deltas, explicit nulls with reasons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BackendMetricsRecorder,
  parsePrometheusText,
  pytorchExtendedResults,
  pytorchVersion,
  vllmExtendedResults,
  metricSum,
} from '../../../agent/backends/index.ts';

function vllmText(o: {
  kv: number;
  preempt: number;
  accepted?: number;
  draft?: number;
  drafts?: number;
  hits: number;
  queries: number;
  waiting: number;
}): string {
  const lines = [
    '# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.',
    '# TYPE vllm:kv_cache_usage_perc gauge',
    `vllm:kv_cache_usage_perc{engine="0",model_name="m"} ${o.kv}`,
    '# TYPE vllm:num_preemptions_total counter',
    `vllm:num_preemptions_total{engine="0",model_name="m"} ${o.preempt}`,
    `vllm:prefix_cache_hits_total{engine="0",model_name="m"} ${o.hits}`,
    `vllm:prefix_cache_queries_total{engine="0",model_name="m"} ${o.queries}`,
    `vllm:num_requests_waiting{engine="0",model_name="m"} ${o.waiting}`,
    'vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 12',
  ];
  if (o.accepted !== undefined) {
    lines.push(`vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} ${o.accepted}`);
    lines.push(`vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} ${o.draft ?? 0}`);
    lines.push(`vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} ${o.drafts ?? 0}`);
  }
  return lines.join('\n') + '\n';
}

void test('the Prometheus parser reads labels with escapes, special values and skips malformed lines', () => {
  const samples = parsePrometheusText(
    [
      '# comment',
      'a_total 3',
      'b{x="1",y="q\\"uote,}"} 2.5 1700000000',
      'c{le="+Inf"} +Inf',
      'broken{x="1" 4',
      'd NaN',
      '',
    ].join('\n'),
  );
  assert.deepEqual(samples, [
    { name: 'a_total', labels: {}, value: 3 },
    { name: 'b', labels: { x: '1', y: 'q"uote,}' }, value: 2.5 },
    { name: 'c', labels: { le: '+Inf' }, value: Number.POSITIVE_INFINITY },
  ]);
  assert.equal(metricSum(samples, ['missing', 'a_total']), 3);
  assert.equal(metricSum(samples, ['missing']), null);
});

void test('vLLM counters are taken as deltas over the window and gauges as mean and max', () => {
  const start = parsePrometheusText(
    vllmText({ kv: 0.1, preempt: 5, accepted: 100, draft: 400, drafts: 100, hits: 10, queries: 100, waiting: 0 }),
  );
  const mid = parsePrometheusText(
    vllmText({ kv: 0.7, preempt: 6, accepted: 200, draft: 800, drafts: 200, hits: 20, queries: 200, waiting: 9 }),
  );
  const end = parsePrometheusText(
    vllmText({ kv: 0.4, preempt: 8, accepted: 400, draft: 1200, drafts: 300, hits: 60, queries: 300, waiting: 2 }),
  );
  const r = vllmExtendedResults({ start, end, during: [mid] });
  assert.equal(r.source, 'vllm-prometheus');
  assert.ok(Math.abs((r.metrics['kvCacheUsageMeanFraction']?.value ?? 0) - 0.4) < 1e-12);
  assert.equal(r.metrics['kvCacheUsageMaxFraction']?.value, 0.7);
  assert.equal(r.metrics['preemptions']?.value, 3);
  assert.equal(r.metrics['specDecodeAcceptanceRate']?.value, 300 / 800);
  assert.equal(r.metrics['specDecodeMeanAcceptedLength']?.value, 1 + 300 / 200);
  assert.equal(r.metrics['prefixCacheHitRate']?.value, 50 / 200);
  assert.equal(r.metrics['maxRequestsWaiting']?.value, 9);
  for (const m of Object.values(r.metrics)) assert.equal(m.reason, null);
});

void test('missing speculative-decoding counters give null with a reason, not zero', () => {
  const s = parsePrometheusText(vllmText({ kv: 0.2, preempt: 0, hits: 0, queries: 0, waiting: 0 }));
  const r = vllmExtendedResults({ start: s, end: s, during: [] });
  assert.equal(r.metrics['specDecodeAcceptanceRate']?.value, null);
  assert.match(r.metrics['specDecodeAcceptanceRate']?.reason ?? '', /did not export/);
  assert.equal(r.metrics['prefixCacheHitRate']?.value, null);
  assert.match(r.metrics['prefixCacheHitRate']?.reason ?? '', /no prefix-cache query events/);
  assert.equal(r.metrics['preemptions']?.value, 0);
});

void test('an unreachable metrics endpoint makes every vLLM metric null with the error as reason', async () => {
  const recorder = new BackendMetricsRecorder(
    { backend: 'vllm', baseUrl: 'http://127.0.0.1:1', metrics: { path: '/metrics', format: 'prometheus' } },
    () => Promise.reject(new Error('connect ECONNREFUSED')),
  );
  await recorder.markWindowStart();
  const r = await recorder.markWindowEnd();
  assert.ok(Object.keys(r.metrics).length >= 5);
  for (const m of Object.values(r.metrics)) {
    assert.equal(m.value, null);
    assert.match(m.reason ?? '', /ECONNREFUSED/);
  }
});

void test('the recorder scrapes vLLM at the window bounds and in between, and records its version', async () => {
  const texts = [
    vllmText({ kv: 0.1, preempt: 1, hits: 0, queries: 10, waiting: 0 }),
    vllmText({ kv: 0.9, preempt: 1, hits: 0, queries: 20, waiting: 4 }),
    vllmText({ kv: 0.5, preempt: 4, hits: 5, queries: 30, waiting: 1 }),
  ];
  const urls: string[] = [];
  const recorder = new BackendMetricsRecorder(
    { backend: 'vllm', baseUrl: 'http://127.0.0.1:8000', metrics: { path: '/metrics', format: 'prometheus' } },
    (url) => {
      urls.push(url);
      if (url.endsWith('/version')) return Promise.resolve('{"version": "0.11.0"}');
      return Promise.resolve(texts[urls.filter((u) => u.endsWith('/metrics')).length - 1] ?? '');
    },
  );
  await recorder.markWindowStart();
  await recorder.sample();
  const r = await recorder.markWindowEnd();
  assert.deepEqual(
    urls.filter((u) => u.endsWith('/metrics')),
    Array(3).fill('http://127.0.0.1:8000/metrics'),
  );
  assert.equal(r.version, 'vllm 0.11.0');
  assert.equal(r.metrics['kvCacheUsageMaxFraction']?.value, 0.9);
  assert.equal(r.metrics['preemptions']?.value, 3);
  assert.equal(r.metrics['prefixCacheHitRate']?.value, 0.25);
});

void test('PyTorch /stats gives load and inference peak memory separately, and batch rows and step time over the window only', async () => {
  // The server keeps running totals: 100 steps of 2 rows before the window, then 50 steps of 8 rows.
  const before = {
    memory: { loadPeakBytes: 2_000, inferencePeakBytes: 2_500, inferencePeakAboveLoadBytes: 500 },
    engine: { decodeSteps: 100, meanBatchRows: 2, decodeSeconds: 1, prefillBatches: 10, prefillSeconds: 0.5 },
  };
  const endStats = {
    memory: { loadPeakBytes: 2_000, inferencePeakBytes: 3_000, inferencePeakAboveLoadBytes: 1_000 },
    engine: { decodeSteps: 150, meanBatchRows: 4, decodeSeconds: 2, prefillBatches: 14, prefillSeconds: 0.6 },
  };
  const texts = [JSON.stringify(before), JSON.stringify(endStats)];
  const urls: string[] = [];
  const recorder = new BackendMetricsRecorder(
    { backend: 'pytorch', baseUrl: 'http://h:1', metrics: { path: '/stats', format: 'llem-stats' } },
    (url) => {
      urls.push(url);
      return Promise.resolve(texts[urls.length - 1] ?? '');
    },
  );
  await recorder.markWindowStart();
  await recorder.sample();
  const r = await recorder.markWindowEnd();
  assert.deepEqual(
    urls,
    ['http://h:1/stats', 'http://h:1/stats'],
    'read at the start and the end (not every sample: it is JSON totals)',
  );
  assert.equal(r.metrics['loadPeakMemoryBytes']?.value, 2_000);
  assert.equal(r.metrics['inferencePeakMemoryBytes']?.value, 3_000);
  assert.equal(r.metrics['decodeSteps']?.value, 50);
  assert.equal(r.metrics['meanBatchRows']?.value, 8, "the window's mean, not the since-start mean of 4");
  assert.equal(r.metrics['meanDecodeStepMs']?.value, 20);
  assert.equal(r.metrics['prefillBatches']?.value, 4);
  assert.ok(Math.abs((r.metrics['meanPrefillMs']?.value ?? 0) - 25) < 1e-9, "the window's 0.1 s over its 4 prefills");
  assert.equal(r.version, null, 'a /stats without server and version fields names no version');
  assert.equal(
    pytorchVersion({
      server: 'llem-pytorch',
      version: '0.1.0',
      torchVersion: '2.11.0+cu130',
      transformersVersion: '5.17.0',
    }),
    'llem-pytorch 0.1.0 (torch 2.11.0+cu130, transformers 5.17.0)',
  );
  const fake = pytorchExtendedResults({
    memory: { loadPeakBytes: null, reason: 'fake runner: no device memory' },
    engine: {},
  });
  assert.equal(fake.metrics['loadPeakMemoryBytes']?.value, null);
  assert.equal(fake.metrics['loadPeakMemoryBytes']?.reason, 'fake runner: no device memory');
  assert.match(
    pytorchExtendedResults(null, 'timeout').metrics['loadPeakMemoryBytes']?.reason ?? '',
    /not read: timeout/,
  );
});

void test('PyTorch batch rows without a start reading, or with no step in the window, are null with the reason', () => {
  const endStats = { memory: {}, engine: { decodeSteps: 150, meanBatchRows: 4, decodeSeconds: 2 } };
  const noStart = pytorchExtendedResults(endStats);
  assert.equal(noStart.metrics['meanBatchRows']?.value, null);
  assert.match(noStart.metrics['meanBatchRows']?.reason ?? '', /not read at the window's start/);
  const idle = pytorchExtendedResults(endStats, undefined, endStats);
  assert.equal(idle.metrics['decodeSteps']?.value, 0);
  assert.equal(idle.metrics['meanDecodeStepMs']?.value, null);
  assert.equal(idle.metrics['meanBatchRows']?.reason, 'no decode step in the window');
  assert.equal(idle.metrics['prefillBatches']?.value, null, 'an older server without prefill totals');
  assert.equal(idle.metrics['meanPrefillMs']?.reason, '/stats has no engine.prefillBatches');
  const withPrefill = { memory: {}, engine: { ...endStats.engine, prefillBatches: 3, prefillSeconds: 0.1 } };
  const noPrefill = pytorchExtendedResults(withPrefill, undefined, withPrefill);
  assert.equal(noPrefill.metrics['prefillBatches']?.value, 0);
  assert.equal(noPrefill.metrics['meanPrefillMs']?.reason, 'no prefill in the window');
});
