// The agent's side of spec.gpu: refuse when not permitted, otherwise apply the configuration's GPU
// settings to exactly the GPUs this replica measures, and show the effective limit in the hello.
import { hasGpuSettings, type RequestedGpuSettings } from '../../api/spec-gpu.ts';
import { GpuSettingsError, GpuSettingsRefusedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { AgentConfig } from '../config.ts';
import type { TelemetryEnvironment } from '../telemetry/types.ts';
import { GpuSettingsSession } from './gpu-settings.ts';
import type { NvmlControlApi } from './nvml-control.ts';

export interface GpuControlDeps {
  /** Opened only when a run asks for settings (loading NVML on the main thread costs ~100 ms). */
  api: () => NvmlControlApi;
  markerDir: string;
}

export function requestedOf(c: AgentConfig): RequestedGpuSettings {
  const g = c.gpu;
  return {
    ...(g.powerLimitWatts === undefined ? {} : { powerLimitWatts: g.powerLimitWatts }),
    ...(g.smClockMHz === undefined ? {} : { smClockMHz: g.smClockMHz }),
    ...(g.memClockMHz === undefined ? {} : { memClockMHz: g.memClockMHz }),
  };
}

/** The fields set, for messages: "gpu.powerLimitWatts, gpu.smClockMHz". */
function fieldsOf(req: RequestedGpuSettings): string {
  return (Object.keys(req) as (keyof RequestedGpuSettings)[]).map((k) => `spec.gpu.${k}`).join(', ');
}

export function applyRunGpuSettings(
  c: AgentConfig,
  env: TelemetryEnvironment,
  deps: GpuControlDeps | undefined,
  log: Logger,
): GpuSettingsSession | null {
  const req = requestedOf(c);
  if (!hasGpuSettings(req)) return null;
  if (!c.gpu.permitted)
    throw new GpuSettingsRefusedError(
      `${fieldsOf(req)} set, but changing GPU settings is not permitted here: it needs the chart value ` +
        'gpuControl.enabled=true and spec.gpu.allowDeviceControl: true (docs/security.md)',
    );
  if (deps === undefined) throw new GpuSettingsError('GPU settings requested but this agent has no NVML control');
  const session = GpuSettingsSession.apply(
    deps.api(),
    env.gpus.map((g) => g.uuid),
    req,
    { markerDir: deps.markerDir, logger: log },
  );
  for (const line of session.restoredBefore) log.warn(line);
  for (const a of session.applied) {
    const g = env.gpus.find((x) => x.uuid === a.gpuUuid);
    const limit = a.effective.enforcedPowerLimitWatts ?? a.effective.powerLimitWatts;
    // The hello's limit bounds plausible power (aggregator/plausibility.ts): the one in force for this run.
    if (g !== undefined && limit !== null) g.powerLimitWatts = limit;
    log.info({ gpu: a.gpuUuid, requested: a.requested, effective: a.effective }, 'GPU settings applied');
  }
  return session;
}
