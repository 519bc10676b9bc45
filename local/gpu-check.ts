// Without --simulate, `llem run` measures real hardware: refuse early and clearly when there is none.
import { loadNvmlApi } from '../agent/telemetry/nvml-api.ts';
import { nvmlUnavailable } from '../agent/telemetry/nvml.ts';
import { InvalidInputError } from '../lib/errors.ts';

function whyNoGpu(libraryPath: string): string | null {
  let api;
  try {
    api = loadNvmlApi(libraryPath);
  } catch (err) {
    return (err as Error).message;
  }
  const rc = api.init();
  if (rc !== 0) return `NVML init failed: ${nvmlUnavailable(rc)}`;
  try {
    const count = api.deviceCount();
    if (count.rc !== 0) return `NVML device count failed: ${nvmlUnavailable(count.rc)}`;
    return count.value === undefined || count.value === 0 ? 'NVML reports no GPU' : null;
  } finally {
    api.shutdown();
  }
}

export function assertGpuPresent(libraryPath = process.env['LLEM_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1'): void {
  const reason = whyNoGpu(libraryPath);
  if (reason !== null) {
    throw new InvalidInputError([{
      file: '--simulate',
      path: '',
      message: `no NVIDIA GPU is usable on this machine: ${reason}. Run on a GPU machine, or pass --simulate to use the simulated GPU and mock server (results are marked simulated).`,
    }]);
  }
}
