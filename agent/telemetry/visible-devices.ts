// Which GPUs this process may use, as NVML sees them. NVML ignores CUDA_VISIBLE_DEVICES, so we
// apply the same selection ourselves. Pure: the caller passes the environment values.

export interface VisibleDevicesEnv {
  cudaVisibleDevices?: string | undefined;
  nvidiaVisibleDevices?: string | undefined;
}

export interface NvmlDeviceId {
  /** NVML enumeration index (PCI bus order). */
  index: number;
  uuid: string;
}

const NO_DEVICES = new Set(['none', 'void', '']);

function entries(value: string): string[] {
  return value.split(',').map((e) => e.trim());
}

function matchEntry(devices: readonly NvmlDeviceId[], entry: string): NvmlDeviceId | undefined {
  if (/^\d+$/.test(entry)) return devices[Number(entry)];
  // CUDA accepts a unique UUID prefix ("GPU-8932f937"); MIG- entries name a MIG instance whose
  // energy counter is the parent GPU's, which NVML can not attribute: not matched here.
  const found = devices.filter((d) => d.uuid.startsWith(entry) || d.uuid === `GPU-${entry}`);
  return found.length === 1 ? found[0] : undefined;
}

/**
 * NVIDIA_VISIBLE_DEVICES: the container runtime has already applied numeric lists (NVML inside the
 * container enumerates only those), so only UUID lists and `none`/`void` filter here.
 * CUDA_VISIBLE_DEVICES: applied to what remains, numeric entries index it in NVML (PCI) order —
 * the order CUDA uses with CUDA_DEVICE_ORDER=PCI_BUS_ID — and, like CUDA, the list stops at the
 * first entry that names no device.
 */
export function selectVisibleDevices(all: readonly NvmlDeviceId[], env: VisibleDevicesEnv): NvmlDeviceId[] {
  let devices = [...all];
  const nvidia = env.nvidiaVisibleDevices?.trim();
  if (nvidia !== undefined) {
    if (NO_DEVICES.has(nvidia)) return [];
    const list = entries(nvidia);
    if (nvidia !== 'all' && list.every((e) => e.startsWith('GPU-'))) {
      devices = devices.filter((d) => list.includes(d.uuid));
    }
  }
  const cuda = env.cudaVisibleDevices;
  if (cuda === undefined) return devices;
  const selected: NvmlDeviceId[] = [];
  for (const entry of entries(cuda)) {
    const device = matchEntry(devices, entry);
    if (device === undefined || selected.includes(device)) break;
    selected.push(device);
  }
  return selected;
}
