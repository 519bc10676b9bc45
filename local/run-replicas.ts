// One attempt of one run: start its replicas' agents against the (shared) backend, wait for them,
// and report how it ended. Completeness is decided by the aggregator, not here.
import {
  createSimulatedGpu,
  createNvmlTelemetry,
  parseAgentConfig,
  readWorkloadFiles,
  runAgent,
} from '../agent/index.ts';
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
  backend: RunningBackend;
  bus: Bus;
  simulate: boolean;
  /** The GPUs this `llem run` measures, in order (empty with --simulate). */
  gpuUuids: readonly string[];
  signal: AbortSignal;
  logger: Logger;
  /** NVML control for spec.gpu (the fake one, sharing its state with the simulated GPU, under --simulate). */
  gpuControl: LocalGpuControl;
}

/**
 * The GPUs replica r measures: [r*g, (r+1)*g) of the GPUs this `llem run` may use, by UUID (see
 * gpu-check.ts), the same UUIDs the backend is given as its CUDA_VISIBLE_DEVICES.
 */
export function replicaGpus(gpuUuids: readonly string[], replica: number, gpusPerRun: number): string[] {
  return gpuUuids.slice(replica * gpusPerRun, (replica + 1) * gpusPerRun);
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
  const parsed = parseAgentConfig(
    {
      ...base,
      backend: {
        ...(base['backend'] as Record<string, unknown>),
        baseUrl: input.backend.baseUrl,
        readinessPath: '/health',
        metrics: input.backend.metrics,
      },
      model: input.backend.servedModelName,
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
  return readWorkloadFiles(parsed);
}

/** Runs every replica; resolves with the first failure message, or null when all finished. */
export async function runReplicas(input: ReplicaRunInput): Promise<string | null> {
  const stop = new AbortController();
  const signals = AbortSignal.any([
    input.signal,
    stop.signal,
    AbortSignal.timeout(input.experiment.spec.policy.runTimeoutSeconds * 1000),
  ]);
  void input.backend.exited.then((why) => stop.abort(new BackendError(`backend ${why} during run ${input.run.id}`)));
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
      const telemetry = input.simulate
        ? createSimulatedGpu({ ...policy, gpuCount: input.configuration.gpusPerRun, settings: input.gpuControl.cell })
        : createNvmlTelemetry({
            ...policy,
            visibility: {
              cudaVisibleDevices: replicaGpus(input.gpuUuids, replica, input.configuration.gpusPerRun).join(','),
            },
            attribution: t.attribution,
          });
      return runAgent(config, {
        bus: input.bus,
        telemetry,
        createSketch: createLatencySketch,
        signal: signals,
        simulatedBackend: input.backend.simulated,
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
