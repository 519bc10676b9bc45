// Prometheus metrics of the controller. CONTROLLER_METRICS is the documented list (the Helm chart's
// dashboard test checks its panels against it): every name starts with `llem_`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WireMessage } from '../api/protocol.ts';

export interface MetricDoc {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  labels: readonly string[];
}

export const CONTROLLER_METRICS = [
  {
    name: 'llem_reconcile_total',
    type: 'counter',
    help: 'Reconciles by result (success, error, requeue, terminal).',
    labels: ['result'],
  },
  {
    name: 'llem_reconcile_errors_total',
    type: 'counter',
    help: 'Reconciles that failed and were retried with backoff.',
    labels: [],
  },
  { name: 'llem_reconcile_duration_seconds', type: 'histogram', help: 'Time spent in one reconcile.', labels: [] },
  { name: 'llem_workqueue_depth', type: 'gauge', help: 'Keys waiting in the work queue.', labels: [] },
  {
    name: 'llem_workqueue_queue_duration_seconds',
    type: 'histogram',
    help: 'Time a key waited in the queue before a worker took it.',
    labels: [],
  },
  { name: 'llem_workqueue_retries_total', type: 'counter', help: 'Rate-limited requeues after an error.', labels: [] },
  {
    name: 'llem_informer_restarts_total',
    type: 'counter',
    help: 'Informer restarts after watch errors.',
    labels: ['resource'],
  },
  {
    name: 'llem_messages_applied_total',
    type: 'counter',
    help: 'Wire messages applied to experiment state, by kind.',
    labels: ['kind'],
  },
  {
    name: 'llem_aggregator_lag_seconds',
    type: 'gauge',
    help: 'Age of the newest applied message when it was applied, per experiment.',
    labels: ['namespace', 'experiment'],
  },
  { name: 'llem_pods_created_total', type: 'counter', help: 'Agent pods created.', labels: [] },
  {
    name: 'llem_run_failures_total',
    type: 'counter',
    help: 'Run attempts that failed, by reason.',
    labels: ['reason'],
  },
  {
    name: 'llem_experiment_runs',
    type: 'gauge',
    help: 'Runs per experiment by phase.',
    labels: ['namespace', 'experiment', 'phase'],
  },
  {
    name: 'llem_experiment_energy_joules',
    type: 'gauge',
    help: 'GPU energy of the succeeded runs of an experiment (measurement windows only).',
    labels: ['namespace', 'experiment'],
  },
  {
    name: 'llem_experiment_joules_per_token',
    type: 'gauge',
    help: "Best configuration's mean joules per output token.",
    labels: ['namespace', 'experiment'],
  },
  {
    name: 'llem_run_power_watts',
    type: 'gauge',
    help: "Sampled GPU board power of a running run, summed over its replicas' GPUs (latest telemetry).",
    labels: ['namespace', 'experiment', 'run'],
  },
  { name: 'llem_leader', type: 'gauge', help: '1 while this replica holds the leader lease.', labels: [] },
] as const satisfies readonly MetricDoc[];

export type ControllerMetricName = (typeof CONTROLLER_METRICS)[number]['name'];

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileErrors: Counter;
  readonly reconcileDuration: Histogram;
  readonly queueDepth: Gauge;
  readonly queueDuration: Histogram;
  readonly retries: Counter;
  readonly informerRestarts: Counter<'resource'>;
  readonly messagesApplied: Counter<'kind'>;
  readonly aggregatorLag: Gauge<'namespace' | 'experiment'>;
  readonly podsCreated: Counter;
  readonly runFailures: Counter<'reason'>;
  readonly experimentRuns: Gauge<'namespace' | 'experiment' | 'phase'>;
  readonly experimentEnergy: Gauge<'namespace' | 'experiment'>;
  readonly experimentJoulesPerToken: Gauge<'namespace' | 'experiment'>;
  readonly leader: Gauge;
  readonly runPower: RunPowerGauge;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    const doc = (
      n: ControllerMetricName,
    ): { name: string; help: string; labelNames: string[]; registers: Registry[] } => {
      const d = CONTROLLER_METRICS.find((m) => m.name === n);
      return { name: n, help: d?.help ?? n, labelNames: [...(d?.labels ?? [])], registers: r };
    };
    this.reconciles = new Counter(doc('llem_reconcile_total')) as Counter<'result'>;
    this.reconcileErrors = new Counter(doc('llem_reconcile_errors_total'));
    this.reconcileDuration = new Histogram({
      ...doc('llem_reconcile_duration_seconds'),
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.queueDepth = new Gauge(doc('llem_workqueue_depth'));
    this.queueDuration = new Histogram({
      ...doc('llem_workqueue_queue_duration_seconds'),
      buckets: [0.001, 0.01, 0.1, 1, 10, 60],
    });
    this.retries = new Counter(doc('llem_workqueue_retries_total'));
    this.informerRestarts = new Counter(doc('llem_informer_restarts_total')) as Counter<'resource'>;
    this.messagesApplied = new Counter(doc('llem_messages_applied_total')) as Counter<'kind'>;
    this.aggregatorLag = new Gauge(doc('llem_aggregator_lag_seconds')) as Gauge<'namespace' | 'experiment'>;
    this.podsCreated = new Counter(doc('llem_pods_created_total'));
    this.runFailures = new Counter(doc('llem_run_failures_total')) as Counter<'reason'>;
    this.experimentRuns = new Gauge(doc('llem_experiment_runs')) as Gauge<'namespace' | 'experiment' | 'phase'>;
    this.experimentEnergy = new Gauge(doc('llem_experiment_energy_joules')) as Gauge<'namespace' | 'experiment'>;
    this.experimentJoulesPerToken = new Gauge(doc('llem_experiment_joules_per_token')) as Gauge<
      'namespace' | 'experiment'
    >;
    this.leader = new Gauge(doc('llem_leader'));
    this.runPower = new RunPowerGauge(new Gauge(doc('llem_run_power_watts')) as Gauge<RunPowerLabel>);
    if (opts.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'llem_process_' });
  }

  /** Drops an experiment's labelled series (it was deleted). */
  forgetExperiment(namespace: string, experiment: string): void {
    for (const g of [this.aggregatorLag, this.experimentEnergy, this.experimentJoulesPerToken])
      g.remove({ namespace, experiment });
    for (const phase of ['Pending', 'Running', 'Succeeded', 'Failed', 'Skipped'])
      this.experimentRuns.remove({ namespace, experiment, phase });
    this.runPower.forgetExperiment(namespace, experiment);
  }
}

type RunPowerLabel = 'namespace' | 'experiment' | 'run';

interface RunPower {
  attempt: number;
  /** Latest sampled watts per `<replica>/<gpuUuid>`. */
  watts: Map<string, number>;
  /** Replicas that sent their summary or abort marker. */
  ended: Set<number>;
}

/**
 * llem_run_power_watts, fed by the wire messages the controller consumes: each GPU's latest sampled
 * board power (NVML powerWatts), summed over the run's replicas. A newer attempt replaces an older
 * one; the series goes away once the attempt's replicas have all ended (summary or aborted).
 */
export class RunPowerGauge {
  /** `<namespace>/<experiment>` -> run id -> state. */
  private readonly runs = new Map<string, Map<string, RunPower>>();

  constructor(readonly gauge: Gauge<RunPowerLabel>) {}

  /** `experiment` is the resource name (the label the other experiment metrics use). */
  observe(namespace: string, experiment: string, msg: WireMessage): void {
    if (msg.kind !== 'telemetry' && msg.kind !== 'summary' && msg.kind !== 'aborted') return;
    const run = this.current(`${namespace}/${experiment}`, msg.runId, msg.attempt);
    if (run === undefined || run.ended.has(msg.replica)) return;
    const labels = { namespace, experiment, run: msg.runId };
    if (msg.kind === 'telemetry') {
      // Samples are in time order within a batch: the last one per GPU is the current reading.
      for (const s of msg.samples)
        if (s.powerWatts !== null) run.watts.set(`${msg.replica}/${s.gpuUuid}`, s.powerWatts);
    } else {
      // The entry stays (with `ended`), so a late batch from an ended replica cannot revive the series.
      run.ended.add(msg.replica);
      for (const k of [...run.watts.keys()]) if (k.startsWith(`${msg.replica}/`)) run.watts.delete(k);
    }
    if (run.watts.size > 0) this.gauge.set(labels, sum(run.watts));
    else this.gauge.remove(labels);
  }

  /** The state of `attempt`, replacing an older attempt's; undefined for a message of an older attempt. */
  private current(key: string, runId: string, attempt: number): RunPower | undefined {
    const runs = this.runs.get(key) ?? new Map<string, RunPower>();
    this.runs.set(key, runs);
    const run = runs.get(runId);
    if (run !== undefined && attempt < run.attempt) return undefined;
    if (run !== undefined && attempt === run.attempt) return run;
    const fresh = { attempt, watts: new Map<string, number>(), ended: new Set<number>() };
    runs.set(runId, fresh);
    return fresh;
  }

  /** The run is no longer running (succeeded, failed, pending a retry): its series goes. */
  endRun(namespace: string, experiment: string, runId: string): void {
    const run = this.runs.get(`${namespace}/${experiment}`)?.get(runId);
    if (run === undefined || run.watts.size === 0) return;
    run.watts.clear();
    this.gauge.remove({ namespace, experiment, run: runId });
  }

  forgetExperiment(namespace: string, experiment: string): void {
    const key = `${namespace}/${experiment}`;
    for (const run of this.runs.get(key)?.keys() ?? []) this.gauge.remove({ namespace, experiment, run });
    this.runs.delete(key);
  }
}

function sum(values: Map<string, number>): number {
  let total = 0;
  for (const v of values.values()) total += v;
  return total;
}
