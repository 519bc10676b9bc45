import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { RunSummary } from '../../../api/status.ts';
import { AttemptSpans } from '../../../controller/attempt-spans.ts';
import { experimentContext, trace } from '../../../lib/telemetry/index.ts';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });

/** Spans ended so far (the processor exports asynchronously). */
async function finished(): Promise<ReturnType<InMemorySpanExporter['getFinishedSpans']>> {
  await provider.forceFlush();
  return exporter.getFinishedSpans();
}

function run(phase: RunSummary['phase'], attempt: number, extra: Partial<RunSummary> = {}): RunSummary {
  return { id: 'r1', configurationId: 'c1', cycle: 0, phase, attempt, ...extra };
}

function hrMs(t: [number, number]): number {
  return t[0] * 1000 + t[1] / 1e6;
}

describe('llem.run.attempt spans in the cluster (pods created -> result applied)', () => {
  before(() => {
    trace.setGlobalTracerProvider(provider);
  });

  it('keeps one span open across reconciles and ends it when the result is applied, in the experiment trace', async () => {
    exporter.reset();
    const spans = new AttemptSpans();
    const ctx = spans.started('uid-1', 'r1', 0);
    // A second reconcile re-creating a replica's pod reuses the same span.
    assert.equal(trace.getSpanContext(spans.started('uid-1', 'r1', 0))?.spanId, trace.getSpanContext(ctx)?.spanId);
    assert.equal(spans.size, 1);
    // Still running in a later pass: nothing ends.
    spans.applied('uid-1', [run('Running', 0)], [run('Running', 0)], new Date());
    assert.equal((await finished()).length, 0);
    spans.applied('uid-1', [run('Running', 0)], [run('Succeeded', 0)], new Date());
    const [span] = await finished();
    assert.equal(span?.name, 'llem.run.attempt');
    assert.equal(span.attributes['llem.run.outcome'], 'succeeded');
    assert.equal(span.spanContext().traceId, trace.getSpanContext(experimentContext('uid-1'))?.traceId);
    assert.equal(span.parentSpanContext?.spanId, trace.getSpanContext(experimentContext('uid-1'))?.spanId);
    assert.equal(spans.size, 0);
  });

  it('ends a failed attempt with an error status and outcome retrying when another attempt follows', async () => {
    exporter.reset();
    const spans = new AttemptSpans();
    spans.started('uid-2', 'r1', 0);
    spans.applied(
      'uid-2',
      [run('Running', 0)],
      [run('Pending', 1, { message: 'Attempt 0 failed: PodLost: gone' })],
      new Date(),
    );
    const [span] = await finished();
    assert.equal(span?.attributes['llem.run.outcome'], 'retrying');
    assert.equal(span.status.code, 2);
    assert.match(String(span.attributes['llem.run.error']), /PodLost/);
  });

  it("after a restart, records the attempt from the run table's start time when its result is applied", async () => {
    exporter.reset();
    const spans = new AttemptSpans();
    const started = new Date(Date.now() - 90_000);
    const now = new Date();
    spans.applied(
      'uid-3',
      [run('Running', 2, { startTime: started.toISOString() })],
      [run('Failed', 2, { message: 'Attempt 2 failed: RunTimeout' })],
      now,
    );
    const [span] = await finished();
    assert.equal(span?.attributes['llem.run.attempt'], 2);
    assert.equal(span.attributes['llem.run.outcome'], 'failed');
    assert.equal(span.attributes['llem.run.start_from'], 'run-table');
    assert.ok(Math.abs(hrMs(span.startTime) - started.getTime()) < 1, "starts at the table's startTime");
    assert.ok(Math.abs(hrMs(span.endTime) - now.getTime()) < 1);
  });

  it("gives pods rendered in the attempt's context the attempt's traceparent, and ends open attempts of a deleted experiment", async () => {
    exporter.reset();
    const spans = new AttemptSpans();
    const ctx = spans.started('uid-4', 'r1', 0);
    // The active span of that context (what agentConfigFor injects as traceparent) is the attempt, not the experiment.
    assert.equal(trace.getSpanContext(ctx)?.traceId, trace.getSpanContext(experimentContext('uid-4'))?.traceId);
    assert.notEqual(trace.getSpanContext(ctx)?.spanId, trace.getSpanContext(experimentContext('uid-4'))?.spanId);
    spans.forget('uid-4', 'deleted', new Date());
    assert.equal((await finished())[0]?.attributes['llem.run.outcome'], 'deleted');
    assert.equal(spans.size, 0);
  });
});
