// The agent's configuration for one pod (contract: agent/config.ts, read from LLEM_AGENT_CONFIG).
// Built from the validated spec by both runtimes (controller pods, llem run); neither imports agent/,
// so this is plain data.
import type { Configuration, PlannedRun } from '../../api/matrix.ts';
import type { EnergyExperimentSpec, TokenDistribution, WorkloadSpec } from '../../api/spec.ts';
import type { BackendLaunch } from './types.ts';
import { DATASET_FILE, SERVER_PORT, workloadFilePath } from './server-command.ts';
import { traceparentOf } from '../telemetry/index.ts';

/** One replica of one attempt of a planned run: what a runtime launches. */
export interface RunLaunchRequest {
  experiment: { namespace: string; uid: string };
  spec: EnergyExperimentSpec;
  configuration: Configuration;
  run: PlannedRun;
  attempt: number;
  replica: number;
  /**
   * The runtime lets runs change GPU settings (power limit, clocks): the chart value gpuControl.enabled
   * in a cluster; the agent also needs spec.gpu.allowDeviceControl. Absent: not allowed.
   */
  gpuControlAllowed?: boolean;
}

type Distribution = Omit<TokenDistribution, never>;

function distribution(d: TokenDistribution): Distribution {
  return Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as Distribution;
}

/** Output length of inline prompts when sampling.maxTokens does not set one. */
export const PROMPT_OUTPUT_TOKENS = 128;

function workloadConfig(w: WorkloadSpec): Record<string, unknown> {
  const synthetic = w.dataset.synthetic;
  return {
    api: w.api,
    mode: w.mode,
    requests: w.requests,
    concurrency: w.concurrency,
    ...(w.ratePerSecond !== undefined ? { ratePerSecond: w.ratePerSecond } : {}),
    ...(synthetic !== undefined
      ? {
          inputTokens: distribution(synthetic.inputTokens),
          outputTokens: distribution(synthetic.outputTokens),
          seed: synthetic.seed,
          ...(synthetic.sharedPrefix === undefined ? {} : { sharedPrefix: synthetic.sharedPrefix }),
        }
      : {}),
    ...(w.dataset.prompts !== undefined
      ? { prompts: w.dataset.prompts, outputTokens: w.sampling.maxTokens ?? PROMPT_OUTPUT_TOKENS }
      : {}),
    ...(w.dataset.configMapRef !== undefined
      ? { promptsFile: DATASET_FILE, outputTokens: w.sampling.maxTokens ?? PROMPT_OUTPUT_TOKENS }
      : {}),
    ...(w.dataset.trace !== undefined
      ? { traceFile: workloadFilePath('trace', w.dataset.trace), traceTimeScale: w.dataset.trace.timeScale }
      : {}),
    ...(w.dataset.conversations !== undefined
      ? { conversationsFile: workloadFilePath('conversations', w.dataset.conversations) }
      : {}),
    ignoreEos: w.ignoreEos,
    temperature: w.sampling.temperature,
    topP: w.sampling.topP,
    ...(w.sampling.maxTokens !== undefined ? { maxTokens: w.sampling.maxTokens } : {}),
    requestTimeoutSeconds: w.requestTimeoutSeconds,
  };
}

function backendConfig(type: string, launch: BackendLaunch | undefined): Record<string, unknown> {
  if (launch === undefined) return { name: type, baseUrl: `http://127.0.0.1:${SERVER_PORT}`, readinessPath: '/health' };
  return {
    name: type,
    baseUrl: launch.baseUrl,
    readinessPath: launch.readiness.path,
    readinessTimeoutSeconds: launch.readiness.timeoutSeconds,
    metrics: launch.metrics,
    ...(launch.shutdownGraceSeconds === undefined ? {} : { shutdownGraceSeconds: launch.shutdownGraceSeconds }),
  };
}

/** Replica r's simulated GPUs are the machine's [r*g, (r+1)*g): replicas never share a simulated UUID. */
function simulatedGpus(gpusPerRun: number, replica: number): Record<string, number> {
  return replica === 0 ? { gpuCount: gpusPerRun } : { gpuCount: gpusPerRun, firstDevice: replica * gpusPerRun };
}

function optionalTraceparent(): { traceparent?: string } {
  const tp = traceparentOf();
  return tp === undefined ? {} : { traceparent: tp };
}

/**
 * JSON-ready AgentConfig input for one (run, attempt, replica). `launch`, when given, is the backend
 * the agent supervises (address, readiness probe, served model name, start-up files); local mode
 * starts its backends itself and fills those fields in.
 */
export function agentConfigFor(
  req: RunLaunchRequest,
  simulate: boolean,
  launch?: BackendLaunch,
): Record<string, unknown> {
  const { experiment, configuration, spec, run } = req;
  const m = spec.measurement;
  return {
    publisher: {
      namespace: experiment.namespace,
      experimentUid: experiment.uid,
      runId: run.id,
      attempt: req.attempt,
      replica: req.replica,
    },
    backend: backendConfig(configuration.backend.type, launch),
    model: launch?.servedModelName ?? spec.model.name,
    configHash: configuration.configHash,
    // The active span (the runtime's run attempt) becomes the agent's parent; absent when not traced.
    ...optionalTraceparent(),
    workload: workloadConfig(configuration.workload),
    measurement: {
      warmupRequests: m.warmupRequests,
      baselineSeconds: m.baselineSeconds,
      sampleIntervalMs: m.sampleIntervalMs,
      minWindowSeconds: m.minWindowSeconds,
      extendToMinWindow: m.extendToMinWindow,
      cooldownSeconds: m.cooldownSeconds,
      steadyState: m.steadyState,
    },
    start: { mode: 'signal', timeoutSeconds: Math.max(60, spec.policy.runTimeoutSeconds) },
    telemetry: {
      source: simulate ? 'simulated' : 'nvml',
      ...(simulate ? { simulated: simulatedGpus(spec.placement.gpusPerRun, req.replica) } : {}),
      expectedGpus: spec.placement.gpusPerRun,
      attribution: m.gpuAttribution,
      requireExclusiveGpu: m.requireExclusiveGpu ?? true,
      minClockFraction: m.minClockFraction,
    },
    gpu: { ...configuration.gpu, permitted: req.gpuControlAllowed === true && spec.gpu.allowDeviceControl },
    ...(spec.slo === undefined ? {} : { slo: spec.slo }),
    ...(launch !== undefined && launch.files.length > 0
      ? { files: launch.files.map((f) => ({ path: f.path, content: f.content })) }
      : {}),
  };
}
