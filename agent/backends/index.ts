// Backend launchers (rendered in lib/backends, re-exported here) and the backends' native metrics.
export type {
  BackendLaunch,
  LaunchContext,
  LaunchFile,
  MetricsEndpoint,
  ReadinessProbe,
  SecretFileRef,
} from '../../lib/backends/index.ts';
export {
  DEFAULT_LAUNCH_CONTEXT,
  formatCommandLine,
  renderBackendLaunch,
  shellQuote,
  renderPytorch,
  renderTensorrt,
  clientHost,
  renderVllm,
  speculativeConfig,
} from '../../lib/backends/index.ts';
export { metricSum, parsePrometheusText, type PrometheusSample } from './prometheus.ts';
export {
  BackendMetricsRecorder,
  pytorchExtendedResults,
  pytorchVersion,
  tensorrtExtendedResults,
  vllmExtendedResults,
  VLLM_METRICS,
  type BackendExtendedResults,
  type ExtendedMetric,
  type FetchText,
  type VllmWindowScrapes,
} from './metrics.ts';
