// An Aggregator for every run of a planned matrix: what both runtimes (controller, llem run) start from.
import type { RunMatrix } from '../api/matrix.ts';
import { Aggregator } from './aggregator.ts';
import type { FailurePolicy } from './state.ts';

export function newAggregator(
  experimentUid: string,
  matrix: RunMatrix,
  replicas: number,
  failurePolicy: FailurePolicy,
): Aggregator {
  return new Aggregator({
    experimentUid,
    runs: matrix.runs.map((r) => ({
      runId: r.id,
      configId: r.configurationId,
      configHash: r.configHash,
      cycle: r.cycle,
      replicas,
      failurePolicy,
    })),
  });
}
