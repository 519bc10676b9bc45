// Prometheus metrics of the controller. CONTROLLER_METRICS is the documented list (the Helm chart's
// dashboard test checks its panels against it): every name starts with `llem_`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricDoc {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  labels: readonly string[];
}

export const CONTROLLER_METRICS = [
  { name: 'llem_reconcile_total', type: 'counter', help: 'Reconciles by result (success, error, requeue, terminal).', labels: ['result'] },
  { name: 'llem_reconcile_errors_total', type: 'counter', help: 'Reconciles that failed and were retried with backoff.', labels: [] },
  { name: 'llem_reconcile_duration_seconds', type: 'histogram', help: 'Time spent in one reconcile.', labels: [] },
  { name: 'llem_workqueue_depth', type: 'gauge', help: 'Keys waiting in the work queue.', labels: [] },
  { name: 'llem_workqueue_queue_duration_seconds', type: 'histogram', help: 'Time a key waited in the queue before a worker took it.', labels: [] },
  { name: 'llem_workqueue_retries_total', type: 'counter', help: 'Rate-limited requeues after an error.', labels: [] },
  { name: 'llem_informer_restarts_total', type: 'counter', help: 'Informer restarts after watch errors.', labels: ['resource'] },
  { name: 'llem_messages_applied_total', type: 'counter', help: 'Wire messages applied to experiment state, by kind.', labels: ['kind'] },
  { name: 'llem_aggregator_lag_seconds', type: 'gauge', help: 'Age of the newest applied message when it was applied, per experiment.', labels: ['namespace', 'experiment'] },
  { name: 'llem_pods_created_total', type: 'counter', help: 'Agent pods created.', labels: [] },
  { name: 'llem_run_failures_total', type: 'counter', help: 'Run attempts that failed, by reason.', labels: ['reason'] },
  { name: 'llem_experiment_runs', type: 'gauge', help: 'Runs per experiment by phase.', labels: ['namespace', 'experiment', 'phase'] },
  { name: 'llem_experiment_energy_joules', type: 'gauge', help: 'GPU energy of the succeeded runs of an experiment (measurement windows only).', labels: ['namespace', 'experiment'] },
  { name: 'llem_experiment_joules_per_token', type: 'gauge', help: 'Best configuration\'s mean joules per output token.', labels: ['namespace', 'experiment'] },
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

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    const doc = (n: ControllerMetricName): { name: string; help: string; labelNames: string[]; registers: Registry[] } => {
      const d = CONTROLLER_METRICS.find((m) => m.name === n);
      return { name: n, help: d?.help ?? n, labelNames: [...(d?.labels ?? [])], registers: r };
    };
    this.reconciles = new Counter(doc('llem_reconcile_total')) as Counter<'result'>;
    this.reconcileErrors = new Counter(doc('llem_reconcile_errors_total'));
    this.reconcileDuration = new Histogram({ ...doc('llem_reconcile_duration_seconds'), buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    this.queueDepth = new Gauge(doc('llem_workqueue_depth'));
    this.queueDuration = new Histogram({ ...doc('llem_workqueue_queue_duration_seconds'), buckets: [0.001, 0.01, 0.1, 1, 10, 60] });
    this.retries = new Counter(doc('llem_workqueue_retries_total'));
    this.informerRestarts = new Counter(doc('llem_informer_restarts_total')) as Counter<'resource'>;
    this.messagesApplied = new Counter(doc('llem_messages_applied_total')) as Counter<'kind'>;
    this.aggregatorLag = new Gauge(doc('llem_aggregator_lag_seconds')) as Gauge<'namespace' | 'experiment'>;
    this.podsCreated = new Counter(doc('llem_pods_created_total'));
    this.runFailures = new Counter(doc('llem_run_failures_total')) as Counter<'reason'>;
    this.experimentRuns = new Gauge(doc('llem_experiment_runs')) as Gauge<'namespace' | 'experiment' | 'phase'>;
    this.experimentEnergy = new Gauge(doc('llem_experiment_energy_joules')) as Gauge<'namespace' | 'experiment'>;
    this.experimentJoulesPerToken = new Gauge(doc('llem_experiment_joules_per_token')) as Gauge<'namespace' | 'experiment'>;
    this.leader = new Gauge(doc('llem_leader'));
    if (opts.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'llem_process_' });
  }

  /** Drops an experiment's labelled series (it was deleted). */
  forgetExperiment(namespace: string, experiment: string): void {
    for (const g of [this.aggregatorLag, this.experimentEnergy, this.experimentJoulesPerToken]) g.remove({ namespace, experiment });
    for (const phase of ['Pending', 'Running', 'Succeeded', 'Failed']) this.experimentRuns.remove({ namespace, experiment, phase });
  }
}
