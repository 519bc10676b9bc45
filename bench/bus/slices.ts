// The bus bench's payload: a real agent's slice bodies (the envelope is the Publisher's), shared by
// the bench and its publisher worker threads; and the plan its consumers aggregate.
import type { SketchMessage } from '../../api/protocol.ts';
import type { SketchBody } from '../../agent/slices.ts';
import type { AggregatorPlan } from '../../aggregator/index.ts';
import { makePlan, replicaMessages } from '../../tests/support/streams.ts';

/** 1 s slices of 16 requests x ~64 output tokens (four LogHistograms, ~2.5 KB of JSON each). */
export function slicePool(): SketchBody[] {
  const plan = makePlan({ configs: 1, cycles: 1 });
  const run = plan.runs[0] as (typeof plan.runs)[number];
  const opts = { seed: 5, slices: 64, requestsPerSlice: 16, outputTokensPerRequest: 64 };
  return replicaMessages(run, 0, plan.experimentUid, opts)
    .filter((m): m is SketchMessage => m.kind === 'sketch')
    .map((m) => {
      const { slice, sliceStartMs, sliceEndMs, requestsOk, requestsFailed, errorClasses } = m;
      const { inputTokens, outputTokens, sketches } = m;
      return {
        slice,
        sliceStartMs,
        sliceEndMs,
        requestsOk,
        requestsFailed,
        errorClasses,
        inputTokens,
        outputTokens,
        sketches,
      };
    });
}

/** The benchmark's plan: one run (`run-<p>`) per publisher, one configuration, strict. */
export function benchRuns(publishers: number): AggregatorPlan['runs'] {
  return Array.from({ length: publishers }, (_, p) => ({
    runId: `run-${p}`,
    configId: 'c',
    configHash: 'h',
    cycle: 0,
    replicas: 1,
    failurePolicy: 'strict',
  }));
}
