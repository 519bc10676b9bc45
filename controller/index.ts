// The Kubernetes controller's public surface (the local runtime lives in controller/local/,
// the aggregator in aggregator/).
export { Controller, TerminalError } from './manager.ts';
export type { ControllerOptions, LeaderElectionConfig } from './manager.ts';
export { Reconciler } from './reconciler.ts';
export type { ReconcileResult, ReconcilerDeps } from './reconciler.ts';
export { WorkQueue, RetryRateLimiter, DEFAULT_RATE_LIMITS } from './workqueue.ts';
export type { RateLimiterOptions, WorkQueueStats } from './workqueue.ts';
export { ResilientInformer, experimentInformer, podInformer } from './informer.ts';
export type { ObjectStore, ChangeHandler } from './informer.ts';
export { LeaderElector } from './leader.ts';
export type { LeaderElectionOptions } from './leader.ts';
export { ControllerMetrics, CONTROLLER_METRICS } from './metrics.ts';
export type { MetricDoc, ControllerMetricName } from './metrics.ts';
export { buildPod, podName, podLabels, labelValue } from './pods.ts';
export type { PodBuilderOptions, PodRequest, ExperimentRef } from './pods.ts';
export { agentConfigFor } from '../lib/backends/agent-config.ts';
export { backendLaunch, serverCommand, SERVER_PORT } from '../lib/backends/server-command.ts';
export { stepRuns, podFailure } from './runs.ts';
export type { RunInputs, RunPlanOutput, RunEvent, RunJudge } from './runs.ts';
export { RunTable, CHUNK_RUNS } from './run-table.ts';
export { experimentStatus, isReleased } from './status-view.ts';
export { BusExperimentStreams, durableName } from './results.ts';
export type { ExperimentStreams, ExperimentFeed, FeedEvents, FeedPlan, AggregatorFailure } from './results.ts';
export { stat, decidePhase, statusChanged, configurationResults, bestConfiguration } from './status.ts';
export { startProbeServer } from './http.ts';
export type { ProbeServer, HealthSource } from './http.ts';
export {
  ClientNodeWriter,
  ClientNodeLeases,
  KubeError,
  isNotFound,
  isConflict,
  FINALIZER,
  LABEL_EXPERIMENT,
  LABEL_EXPERIMENT_UID,
  LABEL_RUN,
  LABEL_ATTEMPT,
  LABEL_REPLICA,
} from './kube.ts';
export type { KubeWriter, LeaseClient, ExperimentObject, EventType } from './kube.ts';
