// A finished experiment's artifact (results.json, CSVs, plots, report.html): rendering and storing take
// a second or more at 20,000 runs, so it is written in the background (ADR 0022) and no pass waits for it;
// status turns Succeeded/Failed only together with the artifact's URI.
import type { RunMatrix } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import type { RunSummary } from '../api/status.ts';
import type { AggregateResults } from '../aggregator/index.ts';
import { adaptiveDecisions } from './adaptive.ts';
import { artifactAnalysis } from './ladder-gate.ts';
import type { Logger } from '../lib/log.ts';
import { configLabelsOf, resultsFiles } from '../report/files.ts';
import { withAggregatorRunMetrics } from './aggregate-view.ts';
import type { ExperimentRef } from './pods.ts';
import { settledOrUndefined } from './settled.ts';
import type { AggregatorFailure, ExperimentFeed, ExperimentStreams } from './results.ts';
import type { Best, ConfigurationResult } from '../api/status.ts';

export type ArtifactRef = { uri: string; kind: 'objectStore' };

export interface ArtifactBody {
  experiment: ExperimentRef;
  spec: EnergyExperimentSpec;
  runs: RunSummary[];
  configurations: ConfigurationResult[];
  best: Best | undefined;
  simulated: boolean;
  completionTime: string | undefined;
  results: AggregateResults | null;
  aggregatorFailure: AggregatorFailure | null;
}

interface ArtifactWrite {
  promise: Promise<ArtifactRef>;
  done: ArtifactRef | undefined;
}

export class Artifacts {
  /** Artifacts being written (or written) for finished experiments, by uid. */
  private readonly writes = new Map<string, ArtifactWrite>();

  constructor(
    private readonly streams: ExperimentStreams,
    private readonly log: Logger,
    private readonly requeue: (key: string) => void,
  ) {}

  /**
   * Undefined until the artifact is stored, then its reference. A failed write is forgotten and
   * tried again by the next pass; the key is queued again when the write settles.
   */
  async within(
    ref: ExperimentRef,
    matrix: RunMatrix,
    feed: ExperimentFeed,
    body: () => ArtifactBody,
  ): Promise<ArtifactRef | undefined> {
    let entry = this.writes.get(ref.uid);
    if (entry === undefined) {
      const key = `${ref.namespace}/${ref.name}`;
      const e: ArtifactWrite = { promise: this.write(ref, matrix, feed, body()), done: undefined };
      e.promise.then(
        (a) => {
          e.done = a;
          this.requeue(key);
        },
        (err: unknown) => {
          this.writes.delete(ref.uid);
          this.log.warn({ err, experiment: key }, 'artifact not written; the next pass writes it again');
          this.requeue(key);
        },
      );
      this.writes.set(ref.uid, e);
      entry = e;
    }
    if (entry.done !== undefined) return entry.done;
    // Not waited for beyond this turn of the event loop: the key is queued again when the write settles.
    return await settledOrUndefined(entry.promise.catch(() => undefined));
  }

  forget(uid: string): void {
    this.writes.delete(uid);
  }

  retained(): Record<string, number> {
    return { artifactWrites: this.writes.size };
  }

  private async write(
    ref: ExperimentRef,
    matrix: RunMatrix,
    feed: ExperimentFeed,
    body: ArtifactBody,
  ): Promise<ArtifactRef> {
    // Rendering (report, CSVs, plots: ~1 s at 5,000 runs) starts after the pass that asked for it
    // returned, not inside it: the pass only records that the artifact is due (ADR 0034).
    await new Promise<void>((resolve) => setImmediate(resolve));
    const { aggregatorFailure, ...rest } = body;
    const adaptive = adaptiveDecisions(body.spec, matrix, body.runs, (id) => feed.runResult(id));
    const analysis = artifactAnalysis(body.spec, matrix, feed, body.runs, body.results);
    const doc = {
      ...rest,
      ...(analysis === undefined ? {} : { analysis }),
      ...(adaptive === null ? {} : { adaptive: adaptive.outcome }),
      runs: withAggregatorRunMetrics(body.runs, body.results),
      ...(aggregatorFailure !== null ? { aggregatorFailure } : {}),
    };
    const cdfs = feed.cdfSource();
    // No power time series: the controller keeps no raw samples.
    const files =
      body.results === null || cdfs === null
        ? new Map<string, string>()
        : resultsFiles({
            title: `llem results: ${ref.namespace}/${ref.name}${body.simulated ? ' (simulated)' : ''}`,
            simulated: body.simulated,
            manifestPath: `EnergyExperiment ${ref.namespace}/${ref.name}`,
            generatedAt: body.completionTime ?? new Date().toISOString(),
            results: body.results,
            aggregator: cdfs,
            labels: configLabelsOf(matrix),
            power: null,
            windows: [],
            environment: {},
            adaptive: adaptive?.outcome ?? null,
            analysis,
          });
    return { uri: await this.streams.putArtifact(ref, doc, files), kind: 'objectStore' };
  }
}
