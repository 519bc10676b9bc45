// The agent: GPU telemetry, the streaming load generator, the measurement protocol, the backend
// supervisor and the mock server. Never imports controller/.
export { runAgent, AGENT_VERSION, type AgentDeps, type AgentSummary } from './runner.ts';
export {
  AgentConfigSchema,
  parseAgentConfig,
  loadAgentEnvironment,
  gpuEnvironment,
  readWorkloadFiles,
} from './config.ts';
export { parseTrace, type TraceRequest } from './load/trace.ts';
export { parseConversations, type Conversation } from './load/conversation.ts';
export type { AgentConfig, AgentConfigInput, AgentEnvironment, NatsEnv } from './config.ts';
export type { GpuTelemetry, TelemetryEnvironment, TelemetrySource, DeviceReader } from './telemetry/types.ts';
export {
  createNvmlTelemetry,
  createSimulatedGpu,
  WorkerTelemetry,
  type NvmlTelemetryOptions,
} from './telemetry/sampler.ts';
export { SimulatedReader, simulatedPowerWatts, type SimulatedGpuOptions } from './telemetry/simulated.ts';
export { selectVisibleDevices, type VisibleDevicesEnv } from './telemetry/visible-devices.ts';
export { nvmlUnavailable } from './telemetry/nvml.ts';
export { StreamingClient } from './load/client.ts';
export type { ApiKind, ErrorClass, RequestResult, StreamRequest, ClientOptions } from './load/client.ts';
export { runLoad, RequestFactory, type Workload, type LoadMode, type RequestSender } from './load/generator.ts';
export { syntheticPrompt, seededRng, drawLength, type TokenLength, type TokenDistribution } from './load/prompts.ts';
export { startMockServer, MOCK_DEFAULTS } from './mock-server.ts';
export type { MockServer, MockServerOptions, MockFaults, DelayDistribution } from './mock-server.ts';
export { startBackend, describeExit, type BackendProcess, type BackendExit } from './supervisor.ts';
export { JsonLinesBus } from './json-lines-bus.ts';
export { Publisher } from './publisher.ts';
export {
  GpuSettingsSession,
  constraintProblems,
  restoreFromMarkers,
  markerDirFrom,
  DEFAULT_MARKER_DIR,
  type AppliedGpuSettings,
} from './gpu-control/gpu-settings.ts';
export { loadNvmlControl, type NvmlControlApi } from './gpu-control/nvml-control.ts';
export { FakeNvml, simulatedSettingsCell, fakeDevice, type FakeDevice } from './gpu-control/fake-nvml.ts';
export type { GpuControlDeps } from './gpu-control/run-settings.ts';
