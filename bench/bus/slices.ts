// The bus bench's payload: a real agent's slice bodies (the envelope is the Publisher's), shared by
// the bench and its publisher worker threads; and the plan its consumers aggregate.
import type { SketchMessage } from '../../api/protocol.ts';
import type { SketchBody } from '../../agent/slices.ts';
import type { AggregatorPlan } from '../../aggregator/index.ts';
import { makePlan, replicaMessages } from '../../tests/support/streams.ts';

/**
 * 1 s slices of 16 requests x ~64 output tokens (four LogHistograms, ~2.5 KB of JSON each), made before
 * the timed window (a real agent builds its sketches as requests finish, not on the bus path). Each
 * sketch is its serialized bytes, as agent/slices.ts gives them (ADR 0036, amended); the Publisher
 * sends them as they are in binary batches and as base64 in JSON ones, so each format pays its own cost.
 */
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
        // The test streams carry base64 (JSON's form); the agent gives bytes.
        sketches: Object.fromEntries(
          Object.entries(sketches).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v, 'base64') : v]),
        ),
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
