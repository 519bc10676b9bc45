// One attempt of one run: start its replicas' agents against the (shared) backend, wait for them,
// and report how it ended. Completeness is decided by the aggregator, not here.
import { createSimulatedGpu, createNvmlTelemetry, parseAgentConfig, runAgent } from '../agent/index.ts';
import type { Configuration, PlannedRun } from '../api/matrix.ts';
import type { EnergyExperiment } from '../api/spec.ts';
import { agentConfigFor } from '../lib/backends/agent-config.ts';
import type { Bus } from '../lib/bus/types.ts';
import { createLatencySketch } from '../lib/sketch/index.ts';
import { BackendError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { RunningBackend } from './backends.ts';

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
  signal: AbortSignal;
  logger: Logger;
}

/** Disjoint GPU indices per replica: replica r gets [r*g, (r+1)*g). */
function visibleDevices(replica: number, gpusPerRun: number): string {
  return Array.from({ length: gpusPerRun }, (_, i) => String(replica * gpusPerRun + i)).join(',');
}

function agentConfig(input: ReplicaRunInput, replica: number): ReturnType<typeof parseAgentConfig> {
  const { experiment, configuration, run } = input;
  const base = agentConfigFor({
    experiment: { name: experiment.metadata.name, namespace: LOCAL_NAMESPACE, uid: input.experimentUid },
    spec: experiment.spec,
    configuration,
    run,
    attempt: input.attempt,
    replica,
  } as Parameters<typeof agentConfigFor>[0], input.simulate);
  const replicas = configuration.replicas;
  return parseAgentConfig({
    ...base,
    backend: { ...(base['backend'] as Record<string, unknown>), baseUrl: input.backend.baseUrl, readinessPath: '/health', metrics: input.backend.metrics },
    model: input.backend.servedModelName,
    start: { mode: replicas > 1 ? 'signal' : 'immediate', timeoutSeconds: experiment.spec.policy.runTimeoutSeconds },
  }, `run ${run.id} agent config`);
}

/** Runs every replica; resolves with the first failure message, or null when all finished. */
export async function runReplicas(input: ReplicaRunInput): Promise<string | null> {
  const stop = new AbortController();
  const signals = AbortSignal.any([input.signal, stop.signal, AbortSignal.timeout(input.experiment.spec.policy.runTimeoutSeconds * 1000)]);
  void input.backend.exited.then((why) => stop.abort(new BackendError(`backend ${why} during run ${input.run.id}`)));
  const replicas = Array.from({ length: input.configuration.replicas }, (_, r) => r);
  const results = await Promise.allSettled(replicas.map(async (replica) => {
    const config = agentConfig(input, replica);
    const telemetry = input.simulate
      ? createSimulatedGpu({ gpuCount: input.configuration.gpusPerRun, sampleIntervalMs: config.measurement.sampleIntervalMs })
      : createNvmlTelemetry({
        visibility: { cudaVisibleDevices: visibleDevices(replica, input.configuration.gpusPerRun) },
        sampleIntervalMs: config.measurement.sampleIntervalMs,
      });
    return runAgent(config, {
      bus: input.bus, telemetry, createSketch: createLatencySketch, signal: signals, simulatedBackend: input.backend.simulated,
      logger: input.logger, // the runner binds run and replica
    });
  }));
  stop.abort('run finished');
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return null;
  const reason: unknown = failed.reason;
  return reason instanceof Error ? reason.message : String(reason);
}
