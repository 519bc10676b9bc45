// Backend launchers (pure rendering, no I/O): spec backend entry -> exact process, environment,
// files and readiness probe. Shared by the controller's pod builder, the agent and local mode.
export type {
  BackendLaunch,
  LaunchContext,
  LaunchFile,
  MetricsEndpoint,
  ReadinessProbe,
  SecretFileRef,
} from './types.ts';
export { DEFAULT_LAUNCH_CONTEXT, formatCommandLine, renderBackendLaunch, shellQuote } from './launch.ts';
export { renderPytorch } from './pytorch.ts';
export { renderTensorrt } from './tensorrt.ts';
export { clientHost, renderVllm, speculativeConfig } from './vllm.ts';
export { agentConfigFor, PROMPT_OUTPUT_TOKENS, type RunLaunchRequest } from './agent-config.ts';
export * from './server-command.ts';
