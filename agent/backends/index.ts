// Backend launchers: spec backend entry -> exact process, readiness probe and native metrics.
export type { BackendLaunch, LaunchContext, LaunchFile, MetricsEndpoint, ReadinessProbe, SecretEnvRef } from './types.ts';
export { DEFAULT_LAUNCH_CONTEXT, formatCommandLine, renderBackendLaunch, shellQuote } from './launch.ts';
export { renderPytorch } from './pytorch.ts';
export { renderTensorrt } from './tensorrt.ts';
export { clientHost, renderVllm, speculativeConfig } from './vllm.ts';
export { metricSum, parsePrometheusText, type PrometheusSample } from './prometheus.ts';
export {
  BackendMetricsRecorder,
  pytorchExtendedResults,
  tensorrtExtendedResults,
  vllmExtendedResults,
  VLLM_METRICS,
  type BackendExtendedResults,
  type ExtendedMetric,
  type FetchText,
  type VllmWindowScrapes,
} from './metrics.ts';
