// Adaptive cycles in `llem run` (ADR 0031): before each run, the decisions of aggregator/adaptive.ts over
// what the results directory has recorded. Runs execute one at a time in plan order, so every run before
// the one being decided is finished (in this invocation or an earlier one): a resumed run decides alike.
import type { RunMatrix } from '../api/matrix.ts';
import { cyclePlan, type AdaptiveCycles, type EnergyExperimentSpec } from '../api/spec.ts';
import {
  adaptiveCharge,
  adaptiveMetricValue,
  decideAdaptive,
  type AdaptiveDecisions,
  type AdaptiveRunRecord,
  type Aggregator,
} from '../aggregator/index.ts';
import type { LocalState } from './state.ts';
import type { ProgressSink } from './progress.ts';

export class LocalAdaptive {
  /** Records of finished runs never change: computed once each. */
  private readonly finished = new Map<string, AdaptiveRunRecord>();
  private readonly costs = new Map<string, { gpusPerRun: number; replicas: number }>();

  private constructor(
    private readonly rule: AdaptiveCycles,
    private readonly spec: EnergyExperimentSpec,
    private readonly matrix: RunMatrix,
    private readonly state: LocalState,
    private readonly aggregator: Pick<Aggregator, 'runResult'>,
  ) {
    const byId = new Map(matrix.configurations.map((c) => [c.id, c]));
    for (const r of matrix.runs) {
      const c = byId.get(r.configurationId);
      this.costs.set(r.id, { gpusPerRun: c?.gpusPerRun ?? 1, replicas: c?.replicas ?? 1 });
    }
  }

  /** null when measurement.cycles is a plain count. */
  static of(
    spec: EnergyExperimentSpec,
    matrix: RunMatrix,
    state: LocalState,
    aggregator: Pick<Aggregator, 'runResult'>,
  ): LocalAdaptive | null {
    const { adaptive } = cyclePlan(spec.measurement.cycles);
    return adaptive === null ? null : new LocalAdaptive(adaptive, spec, matrix, state, aggregator);
  }

  private record(runId: string): AdaptiveRunRecord {
    const known = this.finished.get(runId);
    if (known !== undefined) return known;
    const status = this.state.runs[runId]?.status;
    if (status !== 'complete' && status !== 'failed') return { status: 'open', value: null, gpuSeconds: 0 };
    const result = this.aggregator.runResult(runId);
    const m = this.spec.measurement;
    const cost = this.costs.get(runId) ?? { gpusPerRun: 1, replicas: 1 };
    const rec: AdaptiveRunRecord = {
      status,
      value: status === 'complete' && result !== null ? adaptiveMetricValue(result, this.rule.target.metric) : null,
      gpuSeconds: adaptiveCharge(result, {
        ...cost,
        baselineSeconds: m.baselineSeconds,
        cooldownSeconds: m.cooldownSeconds,
      }),
    };
    this.finished.set(runId, rec);
    return rec;
  }

  /** A run started again (a failed run retried on resume) is open until it finishes again. */
  forget(runId: string): void {
    this.finished.delete(runId);
  }

  decide(): AdaptiveDecisions {
    return decideAdaptive({
      runs: this.matrix.runs,
      order: this.spec.measurement.order,
      rule: this.rule,
      record: (id) => this.record(id),
    });
  }
}

/** The adaptive rule says this run is not needed: reported once, and left out. */
export function skippedByAdaptive(adaptive: LocalAdaptive, runId: string, progress: ProgressSink): boolean {
  const decisions = adaptive.decide();
  if (decisions.runs.get(runId) !== 'skip') return false;
  const run = decisions.outcome.configurations.find((c) => runId.startsWith(`${c.configurationId}-c`));
  const why = run?.reason === 'budget' ? 'the GPU budget is spent' : 'the CI target is met';
  progress.event({ type: 'runEnd', runId, status: 'skipped', detail: `${why} for its configuration` });
  return true;
}
