// One attempt of one run: start its replicas' agents, each against its own server and measuring exactly
// that server's GPUs, wait for them, and report how it ended. The start barrier (every replica ready, then
// one start signal) is local/experiment.ts's; completeness is decided by the aggregator, not here.
import { createSimulatedGpu, createNvmlTelemetry, parseAgentConfig, runAgent } from '../agent/index.ts';
import type { Configuration, PlannedRun } from '../api/matrix.ts';
import type { EnergyExperiment } from '../api/spec.ts';
import { agentConfigFor } from '../lib/backends/agent-config.ts';
import type { Bus } from '../lib/bus/types.ts';
import { createLatencySketch } from '../lib/sketch/index.ts';
import { BackendError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { RunningBackend } from './backends.ts';
import type { LocalGpuControl } from './gpu-control.ts';

export const LOCAL_NAMESPACE = 'local';

export interface ReplicaRunInput {
  experiment: EnergyExperiment;
  experimentUid: string;
  configuration: Configuration;
  run: PlannedRun;
  attempt: number;
  /** One server per replica (index = replica), each started on that replica's GPUs. */
  backends: readonly RunningBackend[];
  bus: Bus;
  simulate: boolean;
  /** libnvidia-ml to load (LLEM_NVML_LIBRARY, as the GPU check used); absent: libnvidia-ml.so.1. */
  nvmlLibrary?: string | undefined;
  /** --simulate: constant power per simulated GPU by machine-wide index (LLEM_SIMULATED_GPU_WATTS). */
  simulatedDeviceWatts?: readonly number[] | undefined;
  signal: AbortSignal;
  logger: Logger;
  /** NVML control for spec.gpu (the fake one, sharing its state with the simulated GPU, under --simulate). */
  gpuControl: LocalGpuControl;
}

/** The GPUs replica r measures; the same UUIDs its server is given as CUDA_VISIBLE_DEVICES. */
export { replicaGpus } from './backends.ts';

function backendOf(input: ReplicaRunInput, replica: number): RunningBackend {
  const b = input.backends[replica];
  if (b === undefined || b.replica !== replica)
    throw new BackendError(`run ${input.run.id}: no server for replica ${replica} (${input.backends.length} started)`);
  return b;
}

function agentConfig(input: ReplicaRunInput, replica: number): ReturnType<typeof parseAgentConfig> {
  const { experiment, configuration, run } = input;
  const base = agentConfigFor(
    {
      experiment: { name: experiment.metadata.name, namespace: LOCAL_NAMESPACE, uid: input.experimentUid },
      spec: experiment.spec,
      configuration,
      run,
      attempt: input.attempt,
      replica,
    } as Parameters<typeof agentConfigFor>[0],
    input.simulate,
  );
  const replicas = configuration.replicas;
  const backend = backendOf(input, replica);
  return parseAgentConfig(
    {
      ...base,
      backend: {
        ...(base['backend'] as Record<string, unknown>),
        baseUrl: backend.baseUrl,
        readinessPath: '/health',
        metrics: backend.metrics,
      },
      model: backend.servedModelName,
      start: { mode: replicas > 1 ? 'signal' : 'immediate', timeoutSeconds: experiment.spec.policy.runTimeoutSeconds },
      // llem run changes GPU settings as the user who runs it (root, or NVML refuses): no cluster gate.
      gpu: { ...input.configuration.gpu, permitted: true },
      // One's own workstation often has a desktop or a notebook on the GPU: warn unless asked to fail.
      telemetry: {
        ...(base['telemetry'] as Record<string, unknown>),
        requireExclusiveGpu: experiment.spec.measurement.requireExclusiveGpu ?? false,
      },
    },
    `run ${run.id} agent config`,
  );
}

/** Runs every replica; resolves with the first failure message, or null when all finished. */
export async function runReplicas(input: ReplicaRunInput): Promise<string | null> {
  const stop = new AbortController();
  const signals = AbortSignal.any([
    input.signal,
    stop.signal,
    AbortSignal.timeout(input.experiment.spec.policy.runTimeoutSeconds * 1000),
  ]);
  for (const b of input.backends) {
    const which = input.backends.length > 1 ? ` (replica ${b.replica})` : '';
    void b.exited.then((why) => stop.abort(new BackendError(`backend${which} ${why} during run ${input.run.id}`)));
  }
  const replicas = Array.from({ length: input.configuration.replicas }, (_, r) => r);
  const results = await Promise.allSettled(
    replicas.map(async (replica) => {
      const config = agentConfig(input, replica);
      const t = config.telemetry;
      const policy = {
        sampleIntervalMs: config.measurement.sampleIntervalMs,
        tickAlign: t.tickAlign,
        markTimeoutMs: t.markTimeoutSeconds * 1000,
      };
      const backend = backendOf(input, replica);
      const g = input.configuration.gpusPerRun;
      const telemetry = input.simulate
        ? createSimulatedGpu({
            ...policy,
            gpuCount: g,
            firstDevice: replica * g,
            deviceWatts: input.simulatedDeviceWatts === undefined ? undefined : [...input.simulatedDeviceWatts],
            settings: input.gpuControl.cell,
          })
        : createNvmlTelemetry({
            ...policy,
            ...(input.nvmlLibrary === undefined ? {} : { libraryPath: input.nvmlLibrary }),
            // Exactly what its server was started with: the two cannot disagree on which GPUs are the run's.
            visibility: { cudaVisibleDevices: backend.cudaVisibleDevices ?? '' },
            attribution: t.attribution,
          });
      return runAgent(config, {
        bus: input.bus,
        telemetry,
        createSketch: createLatencySketch,
        signal: signals,
        simulatedBackend: backend.simulated,
        logger: input.logger, // the runner binds run and replica
        gpuControl: input.gpuControl.deps,
      });
    }),
  );
  stop.abort('run finished');
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return null;
  const reason: unknown = failed.reason;
  return reason instanceof Error ? reason.message : String(reason);
}
