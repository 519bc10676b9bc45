// Which GPUs this process may use, as NVML sees them. NVML ignores CUDA_VISIBLE_DEVICES, so we
// apply the same selection ourselves. Pure: the caller passes the environment values and, for MIG
// entries, a resolver that names the parent GPU (NVML owns that knowledge).

export interface VisibleDevicesEnv {
  cudaVisibleDevices?: string | undefined;
  nvidiaVisibleDevices?: string | undefined;
}

export interface NvmlDeviceId {
  /** NVML enumeration index (PCI bus order). */
  index: number;
  uuid: string;
}

/** A MIG instance named in a visible-devices list, and the GPU whose counters it shares. */
export interface MigEntry {
  entry: string;
  /** null: NVML does not know this MIG instance. */
  parentUuid: string | null;
}

export interface VisibleSelection {
  /** Whole GPUs to read, in CUDA order; a MIG entry contributes its parent GPU (once). */
  devices: NvmlDeviceId[];
  /** MIG instances named in the lists: their energy is only readable for the whole parent GPU. */
  mig: MigEntry[];
  /** Values that select nothing for a reason worth telling the user (e.g. CUDA_VISIBLE_DEVICES=all). */
  problems: string[];
}

/** MIG-<uuid> (CUDA >= 11.1) or the legacy MIG-GPU-<uuid>/<gi>/<ci>. */
export function isMigEntry(entry: string): boolean {
  return entry.startsWith('MIG-');
}

const NO_DEVICES = new Set(['none', 'void', '']);

function entries(value: string): string[] {
  return value.split(',').map((e) => e.trim());
}

function matchEntry(devices: readonly NvmlDeviceId[], entry: string): NvmlDeviceId | undefined {
  if (/^\d+$/.test(entry)) return devices[Number(entry)];
  // CUDA accepts a unique UUID prefix ("GPU-8932f937").
  const found = devices.filter((d) => d.uuid.startsWith(entry) || d.uuid === `GPU-${entry}`);
  return found.length === 1 ? found[0] : undefined;
}

type MigResolver = (entry: string) => string | null;

/** Records the MIG entry; returns its parent GPU when it is in `pool`. */
function migParent(
  sel: VisibleSelection,
  pool: readonly NvmlDeviceId[],
  entry: string,
  resolveMig: MigResolver,
): NvmlDeviceId | undefined {
  const parentUuid = resolveMig(entry);
  sel.mig.push({ entry, parentUuid });
  return parentUuid === null ? undefined : pool.find((d) => d.uuid === parentUuid);
}

function applyNvidia(
  sel: VisibleSelection,
  all: readonly NvmlDeviceId[],
  value: string | undefined,
  resolveMig: MigResolver,
): NvmlDeviceId[] {
  const nvidia = value?.trim();
  if (nvidia === undefined || nvidia === 'all') return [...all];
  if (NO_DEVICES.has(nvidia)) return [];
  const list = entries(nvidia);
  // Numeric lists were applied by the container runtime already (NVML in the container sees only those).
  if (!list.every((e) => e.startsWith('GPU-') || isMigEntry(e))) return [...all];
  const kept: NvmlDeviceId[] = [];
  for (const e of list) {
    const d = isMigEntry(e) ? migParent(sel, all, e, resolveMig) : all.find((x) => x.uuid === e);
    if (d !== undefined && !kept.includes(d)) kept.push(d);
  }
  return all.filter((d) => kept.includes(d));
}

/**
 * NVIDIA_VISIBLE_DEVICES: the container runtime has already applied numeric lists (NVML inside the
 * container enumerates only those), so only UUID lists and `none`/`void`/empty filter here; MIG
 * UUIDs there (the Kubernetes device plugin's MIG strategies) select their parent GPU and are recorded.
 * CUDA_VISIBLE_DEVICES: applied to what remains, numeric entries index it in NVML (PCI) order —
 * the order CUDA uses with CUDA_DEVICE_ORDER=PCI_BUS_ID — and, like CUDA, the list stops at the
 * first entry that names no device (so `all` and `none` select nothing, as they do for CUDA).
 */
export function resolveVisibleDevices(
  all: readonly NvmlDeviceId[],
  env: VisibleDevicesEnv,
  resolveMig: MigResolver = () => null,
): VisibleSelection {
  const sel: VisibleSelection = { devices: [], mig: [], problems: [] };
  const pool = applyNvidia(sel, all, env.nvidiaVisibleDevices, resolveMig);
  const cuda = env.cudaVisibleDevices;
  if (cuda === undefined) {
    sel.devices = pool;
    return sel;
  }
  for (const entry of entries(cuda)) {
    const device = isMigEntry(entry) ? migParent(sel, pool, entry, resolveMig) : matchEntry(pool, entry);
    // Two MIG slices of one GPU share its counter: the parent is read once.
    if (device !== undefined && isMigEntry(entry) && sel.devices.includes(device)) continue;
    if (device === undefined || sel.devices.includes(device)) {
      if (entry === 'all')
        sel.problems.push(
          'CUDA_VISIBLE_DEVICES=all is not a CUDA value: CUDA then sees no GPU (unset it to use every GPU)',
        );
      break;
    }
    sel.devices.push(device);
  }
  return sel;
}

/** The whole GPUs selected (MIG entries contribute their parent). */
export function selectVisibleDevices(all: readonly NvmlDeviceId[], env: VisibleDevicesEnv): NvmlDeviceId[] {
  return resolveVisibleDevices(all, env).devices;
}
