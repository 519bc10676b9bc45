import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RequestHooks, RequestResult, StreamRequest } from '../../../agent/load/client.ts';
import { RequestFactory, runLoad, type RequestSender, type Workload } from '../../../agent/load/generator.ts';

const workload = (over: Partial<Workload> = {}): Workload => ({
  api: 'completions',
  model: 'm',
  mode: 'concurrency',
  concurrency: 4,
  ratePerSecond: 100,
  inputTokens: 8,
  outputTokens: 4,
  ignoreEos: true,
  temperature: 0,
  seed: 1,
  ...over,
});

/** Answers every request after `ms`, tracking the peak number in flight. */
class FakeSender implements RequestSender {
  inFlight = 0;
  peak = 0;
  sent: StreamRequest[] = [];
  startTimes: number[] = [];
  private readonly ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  async send(req: StreamRequest, signal?: AbortSignal, hooks?: RequestHooks): Promise<RequestResult> {
    this.sent.push(req);
    this.startTimes.push(performance.now());
    this.peak = Math.max(this.peak, ++this.inFlight);
    const startMs = performance.now();
    await new Promise((r) => setTimeout(r, this.ms / 2));
    hooks?.onFirstToken?.();
    await new Promise((r) => setTimeout(r, this.ms / 2));
    this.inFlight--;
    const aborted = signal?.aborted === true;
    return {
      ok: !aborted,
      startMs,
      endMs: performance.now(),
      ttftMs: this.ms / 2,
      itlMs: [],
      e2eMs: this.ms,
      tpotMs: null,
      inputTokens: req.promptTokens,
      outputTokens: req.maxTokens,
      ...(aborted ? { errorClass: 'cancelled' as const } : {}),
    };
  }
}

const noop = (): void => undefined;

void test('offline mode sends every request at once', async () => {
  const s = new FakeSender(20);
  const w = workload({ mode: 'offline' });
  const stats = await runLoad(s, new RequestFactory(w), w, {
    requests: 25,
    signal: new AbortController().signal,
    onResult: noop,
  });
  assert.equal(stats.completed, 25);
  assert.equal(s.peak, 25);
});

void test('concurrency mode keeps exactly N in flight and never more', async () => {
  const s = new FakeSender(10);
  const w = workload({ concurrency: 3 });
  const results: RequestResult[] = [];
  await runLoad(s, new RequestFactory(w), w, {
    requests: 30,
    signal: new AbortController().signal,
    onResult: (r) => results.push(r),
  });
  assert.equal(results.length, 30);
  assert.equal(s.peak, 3);
});

void test('rate mode issues open-loop Poisson arrivals at about the requested rate', async () => {
  const s = new FakeSender(5);
  const w = workload({ mode: 'rate', ratePerSecond: 200, seed: 5 });
  const stats = await runLoad(s, new RequestFactory(w), w, {
    requests: 100,
    signal: new AbortController().signal,
    onResult: noop,
  });
  const span = (s.startTimes.at(-1) ?? 0) - (s.startTimes[0] ?? 0);
  const rate = 99 / (span / 1000);
  assert.equal(stats.completed, 100);
  assert.ok(rate > 120 && rate < 320, `observed ${rate.toFixed(0)} req/s`);
});

void test('the request stream is reproducible from the seed', () => {
  const a = new RequestFactory(workload({ inputTokens: { distribution: 'uniform', min: 5, max: 50 } }));
  const b = new RequestFactory(workload({ inputTokens: { distribution: 'uniform', min: 5, max: 50 } }));
  for (let i = 0; i < 10; i++) assert.deepEqual(a.next(), b.next());
});

void test('inline prompts are used round-robin', () => {
  const f = new RequestFactory(workload({ prompts: ['first prompt', 'second one here'] }));
  assert.deepEqual(
    [f.next().prompt, f.next().prompt, f.next().prompt],
    ['first prompt', 'second one here', 'first prompt'],
  );
});

void test('a minimum duration keeps issuing beyond the request count', async () => {
  const s = new FakeSender(10);
  const w = workload({ concurrency: 2 });
  const stats = await runLoad(s, new RequestFactory(w), w, {
    requests: 2,
    minDurationMs: 150,
    signal: new AbortController().signal,
    onResult: noop,
  });
  assert.ok(stats.completed > 4 && stats.durationMs >= 150);
});

void test('steady state opens when the batch is full and closes when the tail starts', async () => {
  const s = new FakeSender(20);
  const w = workload({ concurrency: 4 });
  const events: string[] = [];
  await runLoad(s, new RequestFactory(w), w, {
    requests: 12,
    signal: new AbortController().signal,
    onResult: () => events.push('result'),
    onSaturated: () => events.push('open'),
    onDraining: () => events.push('close'),
  });
  assert.equal(events.filter((e) => e === 'open').length, 1);
  assert.equal(events.filter((e) => e === 'close').length, 1);
  assert.ok(events.indexOf('open') < events.indexOf('result'));
  // After the close the last in-flight requests (the tail) still report.
  assert.equal(events.length - events.indexOf('close') - 1, 4);
});

void test('aborting stops issuing new requests', async () => {
  const s = new FakeSender(10);
  const w = workload({ concurrency: 2 });
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 60);
  const stats = await runLoad(s, new RequestFactory(w), w, { requests: 10_000, signal: ac.signal, onResult: noop });
  assert.ok(stats.issued < 100, `issued ${stats.issued}`);
});

void test("sampling.maxTokens caps each request's output length and topP reaches the request; the request stream is otherwise unchanged", () => {
  const base = workload({ outputTokens: { distribution: 'uniform', min: 10, max: 100 } });
  const capped = { ...base, maxTokens: 30, topP: 0.9 };
  const a = new RequestFactory(base);
  const b = new RequestFactory(capped);
  for (let i = 0; i < 50; i++) {
    const x = a.next();
    const y = b.next();
    assert.equal(y.prompt, x.prompt, 'same prompts: the cap draws no extra random numbers');
    assert.equal(y.maxTokens, Math.min(x.maxTokens, 30));
    assert.equal(y.topP, 0.9);
  }
});

void test('rate mode: a sender that throws ends the load with that error, never an unhandled rejection', async () => {
  let n = 0;
  const sender: RequestSender = {
    send: async (req) => {
      n++;
      if (n === 3) throw new Error('client thread died');
      await new Promise((r) => setTimeout(r, 5));
      return {
        ok: true,
        startMs: 0,
        endMs: 1,
        ttftMs: 1,
        itlMs: [],
        e2eMs: 1,
        tpotMs: null,
        inputTokens: req.promptTokens,
        outputTokens: req.maxTokens,
      };
    },
  };
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const w = workload({ mode: 'rate', ratePerSecond: 200 });
    await assert.rejects(
      runLoad(sender, new RequestFactory(w), w, {
        requests: 50,
        signal: new AbortController().signal,
        onResult: () => undefined,
      }),
      /client thread died/,
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, []);
    assert.ok(n < 50, `arrivals stopped after the failure (${n} sent)`);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
