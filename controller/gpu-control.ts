// Cluster mode for spec.gpu (issue #21, ADR 0024): changing a GPU's power limit or clocks needs a
// privileged capability, so it is off unless both the chart (gpuControl.enabled -> --gpu-control)
// and the experiment (spec.gpu.allowDeviceControl) ask for it. Otherwise the experiment is refused
// at validation, naming the field: no pod starts. When permitted, only run pods whose configuration
// sets GPU settings get the capability, in their one container (the agent applies the settings and
// starts the backend as uid 10001, which holds no capability), plus a host directory for the
// restore-on-start markers, so the next agent on that node restores what a killed one left.
import type { V1SecurityContext, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Configuration, RunMatrix } from '../api/matrix.ts';
import { hasGpuSettings } from '../api/spec-gpu.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import type { SpecIssue } from '../api/validation.ts';

/** The host directory holding markers (agent/gpu-control/gpu-settings.ts DEFAULT_MARKER_DIR). */
export const GPU_STATE_HOST_DIR = '/var/lib/llem/gpu-state';
/** The unprivileged user the agent starts the backend as, when it runs as root to change GPU settings. */
export const BACKEND_UID = 10001;

/** Why this experiment may not change GPU settings here; empty: it may, or sets none. */
export function gpuControlIssues(spec: EnergyExperimentSpec, matrix: RunMatrix, chartAllows: boolean): SpecIssue[] {
  const c = matrix.configurations.find((x) => hasGpuSettings(x.gpu));
  if (c === undefined) return [];
  const fields = Object.keys(c.gpu)
    .map((k) => `spec.gpu.${k}`)
    .join(', ');
  if (!chartAllows)
    return [
      {
        path: 'spec.gpu',
        message: `${fields} would change GPU settings, which this cluster does not permit (Helm value gpuControl.enabled is false); ask the operator (docs/security.md) or remove them`,
      },
    ];
  if (!spec.gpu.allowDeviceControl)
    return [
      {
        path: 'spec.gpu.allowDeviceControl',
        message: `must be true for ${fields}: run pods then get the capability to change GPU settings (docs/security.md)`,
      },
    ];
  return [];
}

export function wantsGpuControl(
  configuration: Configuration,
  chartAllows: boolean,
  spec: EnergyExperimentSpec,
): boolean {
  return chartAllows && spec.gpu.allowDeviceControl && hasGpuSettings(configuration.gpu);
}

/**
 * The run container when it changes GPU settings: root with CAP_SYS_ADMIN only (NVML's set calls need
 * both), no privilege escalation, every other capability dropped. The agent drops to BACKEND_UID for the
 * backend process, so the inference server never holds the capability.
 */
export function gpuControlSecurityContext(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    runAsUser: 0,
    runAsNonRoot: false,
    capabilities: { drop: ['ALL'], add: ['SYS_ADMIN'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function gpuStateVolume(): { volume: V1Volume; mount: V1VolumeMount } {
  return {
    volume: { name: 'llem-gpu-state', hostPath: { path: GPU_STATE_HOST_DIR, type: 'DirectoryOrCreate' } },
    mount: { name: 'llem-gpu-state', mountPath: GPU_STATE_HOST_DIR },
  };
}
