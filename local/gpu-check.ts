// Without --simulate, `llem run` measures real hardware: refuse early and clearly when there is none,
// and decide once which GPUs the runs use. The user's CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES
// are resolved through NVML to GPU UUIDs (or MIG UUIDs); each backend is started with exactly those
// as its CUDA_VISIBLE_DEVICES and the sampler reads exactly those GPUs, so the two cannot disagree.
import { loadNvmlApi, type NvmlApi } from '../agent/telemetry/nvml-api.ts';
import { migRefusal, nvmlUnavailable } from '../agent/telemetry/nvml.ts';
import { resolveVisibleDevices, type VisibleSelection } from '../agent/telemetry/visible-devices.ts';
import type { LoadedExperiment } from '../lib/manifest/index.ts';
import { BackendError, InvalidInputError } from '../lib/errors.ts';

export interface LocalGpus {
  /** CUDA_VISIBLE_DEVICES entries, in order: GPU UUIDs, or MIG UUIDs under gpuAttribution wholeDevice. */
  entries: string[];
  /** The whole GPUs measured (a MIG entry's parent). */
  measuredUuids: string[];
}

function noGpu(reason: string): InvalidInputError {
  return new InvalidInputError([
    {
      file: '--simulate',
      path: '',
      message: `no NVIDIA GPU is usable on this machine: ${reason}. Run on a GPU machine, or pass --simulate to use the simulated GPU and mock server (results are marked simulated).`,
    },
  ]);
}

function openApi(libraryPath: string): NvmlApi {
  let api: NvmlApi;
  try {
    api = loadNvmlApi(libraryPath);
  } catch (err) {
    throw noGpu((err as Error).message);
  }
  const rc = api.init();
  if (rc !== 0) throw noGpu(`NVML init failed: ${nvmlUnavailable(rc)}`);
  return api;
}

function enumerate(api: NvmlApi): Array<{ index: number; uuid: string; handle: unknown }> {
  const count = api.deviceCount();
  if (count.rc !== 0 || count.value === undefined)
    throw noGpu(`NVML device count failed: ${nvmlUnavailable(count.rc)}`);
  if (count.value === 0) throw noGpu('NVML reports no GPU');
  const out: Array<{ index: number; uuid: string; handle: unknown }> = [];
  for (let index = 0; index < count.value; index++) {
    const h = api.handleByIndex(index);
    if (h.rc !== 0) throw noGpu(`NVML device ${index}: ${nvmlUnavailable(h.rc)}`);
    const uuid = api.uuid(h.value);
    if (uuid.rc !== 0 || uuid.value === undefined)
      throw noGpu(`NVML device ${index} UUID: ${nvmlUnavailable(uuid.rc)}`);
    out.push({ index, uuid: uuid.value, handle: h.value });
  }
  return out;
}

function envText(env: NodeJS.ProcessEnv): string {
  return `CUDA_VISIBLE_DEVICES=${env['CUDA_VISIBLE_DEVICES'] ?? '(unset)'}, NVIDIA_VISIBLE_DEVICES=${env['NVIDIA_VISIBLE_DEVICES'] ?? '(unset)'}`;
}

function checkMig(loaded: LoadedExperiment, sel: VisibleSelection, partitioned: string[]): void {
  if (sel.mig.length === 0 && partitioned.length === 0) return;
  if (loaded.experiment.spec.measurement.gpuAttribution === 'wholeDevice') return;
  throw new InvalidInputError([
    { file: loaded.file, path: 'spec.measurement.gpuAttribution', message: migRefusal(sel.mig, partitioned) },
  ]);
}

/**
 * Every replica gets its own gpusPerRun GPUs (one server each): fewer visible GPUs than replicas x gpusPerRun
 * is bad input, named by the field that asks for more (replicas when there are several).
 */
function tooFewGpus(loaded: LoadedExperiment, visible: number, why: string): void {
  const c = [...loaded.matrix.configurations].sort((a, b) => b.gpusPerRun * b.replicas - a.gpusPerRun * a.replicas)[0];
  if (c === undefined || visible >= c.gpusPerRun * c.replicas) return;
  const need = c.gpusPerRun * c.replicas;
  const are = `${visible} ${visible === 1 ? 'is' : 'are'} visible to llem run (${why})`;
  const issue =
    c.replicas > 1
      ? {
          path: 'spec.placement.replicas',
          message:
            `is ${c.replicas} with gpusPerRun ${c.gpusPerRun}: each replica runs its own server on its own GPUs, so a run ` +
            `needs ${need} GPUs, but ${are}; lower replicas or gpusPerRun, or make more GPUs visible`,
        }
      : {
          path: 'spec.placement.gpusPerRun',
          message: `needs ${need} GPU(s) per run, but ${are}; lower gpusPerRun or make more GPUs visible`,
        };
  throw new InvalidInputError([{ file: loaded.file, ...issue }]);
}

/**
 * The GPUs `llem run` uses, checked against every configuration's placement.gpusPerRun before
 * anything is measured. `api` is for tests (a fake NVML); it is initialised and shut down here.
 */
export function resolveLocalGpus(
  loaded: LoadedExperiment,
  env: NodeJS.ProcessEnv = process.env,
  api?: NvmlApi,
): LocalGpus {
  const nvml = api ?? openApi(env['LLEM_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1');
  if (api !== undefined && api.init() !== 0) throw noGpu('NVML init failed');
  try {
    const all = enumerate(nvml);
    const sel = resolveVisibleDevices(
      all,
      { cudaVisibleDevices: env['CUDA_VISIBLE_DEVICES'], nvidiaVisibleDevices: env['NVIDIA_VISIBLE_DEVICES'] },
      (entry) => nvml.migParentUuid(entry).value ?? null,
    );
    const partitioned = sel.devices
      .filter((d) => nvml.migEnabled(all[d.index]?.handle).value === true)
      .map((d) => d.uuid);
    checkMig(loaded, sel, partitioned);
    const entries =
      sel.mig.length > 0
        ? sel.mig.filter((m) => m.parentUuid !== null).map((m) => m.entry)
        : sel.devices.map((d) => d.uuid);
    tooFewGpus(loaded, entries.length, `${envText(env)}${sel.problems.map((p) => `; ${p}`).join('')}`);
    return { entries, measuredUuids: sel.devices.map((d) => d.uuid) };
  } finally {
    nvml.shutdown();
  }
}

/** GPU memory in use per measured GPU, MiB (NVML on this thread: between runs only, never during a window). */
export function gpuMemoryUsedMiB(uuids: readonly string[], api: NvmlApi): Map<string, number> {
  const out = new Map<string, number>();
  const all = enumerate(api);
  for (const u of uuids) {
    const d = all.find((x) => x.uuid === u);
    const mem = d === undefined ? undefined : api.memoryBytes(d.handle).value;
    if (mem !== undefined) out.set(u, mem.used / 1048576);
  }
  return out;
}

export interface ReleaseWaitOptions {
  /** Memory within this much of the baseline counts as released (the driver keeps a little). */
  toleranceMiB?: number;
  timeoutMs?: number;
  pollMs?: number;
  read: () => Map<string, number>;
}

/**
 * Waits until every GPU's used memory is back at the level measured before the first backend
 * started: a server that is still releasing its memory (or a zombie holding it) would otherwise
 * sit in the next configuration's idle baseline.
 */
export async function awaitGpuMemoryReleased(
  baseline: ReadonlyMap<string, number>,
  o: ReleaseWaitOptions,
): Promise<void> {
  const tolerance = o.toleranceMiB ?? 256;
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  for (;;) {
    const now = o.read();
    const held = [...baseline].filter(([u, base]) => (now.get(u) ?? base) > base + tolerance);
    if (held.length === 0) return;
    if (Date.now() >= deadline) {
      const what = held
        .map(
          ([u, base]) =>
            `${u}: ${Math.round(now.get(u) ?? 0)} MiB used, ${Math.round(base)} MiB before the first backend`,
        )
        .join('; ');
      throw new BackendError(
        `GPU memory was not released after the previous backend stopped (${what}): another process may hold it`,
      );
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
  }
}

/** NVML-backed memory reader for awaitGpuMemoryReleased (opens NVML once, for the whole `llem run`). */
export function nvmlMemoryReader(
  uuids: readonly string[],
  libraryPath = process.env['LLEM_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1',
): { read: () => Map<string, number>; close: () => void } {
  const api = openApi(libraryPath);
  return { read: () => gpuMemoryUsedMiB(uuids, api), close: () => void api.shutdown() };
}
