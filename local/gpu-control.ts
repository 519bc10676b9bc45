// GPU settings for `llem run` (spec.gpu): one NVML control for the whole experiment, opened only when
// needed; under --simulate the fake NVML, whose power limit and locked clock the simulated GPU obeys.
// At start it restores what a killed earlier run left on these GPUs (markers), and checks every
// configuration's settings against the devices' constraints before any run starts.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  constraintProblems,
  FakeNvml,
  loadNvmlControl,
  markerDirFrom,
  restoreFromMarkers,
  simulatedSettingsCell,
  type GpuControlDeps,
  type NvmlControlApi,
} from '../agent/index.ts';
import { NVML_ERROR_NO_PERMISSION } from '../agent/gpu-control/nvml-control.ts';
import type { Configuration } from '../api/matrix.ts';
import { hasGpuSettings } from '../api/spec-gpu.ts';
import { GpuSettingsRefusedError, InvalidInputError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';

export interface LocalGpuControl {
  deps: GpuControlDeps;
  /** Shared with the simulated GPU (undefined for real GPUs). */
  cell: Int32Array | undefined;
}

/** The UUIDs the simulated GPU reports (agent/telemetry/simulated.ts). */
const simulatedUuids = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `GPU-simulated-${String(i).padStart(4, '0')}`);

export interface LocalGpuControlOptions {
  simulate: boolean;
  gpuCount: number;
  /** The results directory's state folder: markers of simulated GPUs live there. */
  stateDir: string;
  env: NodeJS.ProcessEnv;
  nvmlLibrary: string;
}

export function localGpuControl(o: LocalGpuControlOptions): LocalGpuControl {
  if (o.simulate) {
    const cell = simulatedSettingsCell();
    // LLEM_SIMULATED_GPU_STATE keeps the fake device's state in a file: it outlives a killed llem run.
    const fake = new FakeNvml({
      uuids: simulatedUuids(Math.max(1, o.gpuCount)),
      stateFile: o.env['LLEM_SIMULATED_GPU_STATE'],
      permitted: o.env['LLEM_SIMULATED_GPU_PERMITTED'] !== '0',
      cell,
    });
    const markerDir = o.env['LLEM_GPU_STATE_DIR'] ?? join(o.stateDir, 'gpu-state');
    return { deps: { api: () => fake, markerDir }, cell };
  }
  let api: NvmlControlApi | undefined;
  return {
    deps: { api: () => (api ??= loadNvmlControl(o.nvmlLibrary)), markerDir: markerDirFrom(o.env) },
    cell: undefined,
  };
}

/**
 * Before any run: undo what a killed llem run or agent left on these GPUs, then refuse settings outside
 * the devices' constraints (exit 2, naming the configuration and field). Returns what was restored.
 */
export function prepareGpuSettings(
  control: LocalGpuControl,
  configurations: readonly Configuration[],
  uuids: readonly string[],
  file: string,
  log: Logger,
): string[] {
  const dir = control.deps.markerDir;
  const markers = existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.json'));
  const wanted = configurations.filter((c) => hasGpuSettings(c.gpu));
  const shared = wanted.find((c) => c.replicas > 1);
  if (shared !== undefined)
    throw new InvalidInputError([
      {
        file,
        path: 'spec.placement.replicas',
        message: `is ${shared.replicas} with spec.gpu settings: llem run applies GPU settings to one replica's GPUs only; set replicas to 1, or leave spec.gpu out`,
      },
    ]);
  if (!markers && wanted.length === 0) return [];
  const api = control.deps.api();
  const restored = markers ? restoreFromMarkers(api, dir, null, log) : [];
  const targets = uuids.length > 0 ? uuids : api.deviceUuids();
  const issues = wanted.flatMap((c) =>
    constraintProblems(api, targets, c.gpu).map((message) => ({
      file,
      path: `spec.gpu (configuration ${c.id})`,
      message: `${message}; choose values inside the range, or leave the field out`,
    })),
  );
  if (issues.length > 0) throw new InvalidInputError(issues);
  if (wanted.length > 0) assertPrivileged(api, targets);
  return restored;
}

/**
 * NVML has no "may I" query: setting each GPU's power limit to the value it already has is a no-op
 * that needs the same privilege as any change, so a run without it stops here (exit 2), not per run.
 */
function assertPrivileged(api: NvmlControlApi, uuids: readonly string[]): void {
  for (const u of uuids) {
    const now = api.powerLimitMw(u);
    if (now.rc !== 0) continue;
    const rc = api.setPowerLimitMw(u, now.value as number);
    if (rc === NVML_ERROR_NO_PERMISSION)
      throw new GpuSettingsRefusedError(
        `spec.gpu: changing GPU ${u}'s settings needs root (or CAP_SYS_ADMIN): NVML says ${api.errorString(rc)}; ` +
          'run llem as root, or remove the gpu settings',
      );
  }
}
