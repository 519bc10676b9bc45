// Without --simulate, `llem run` measures real hardware: refuse early and clearly when there is none.
import koffi from 'koffi';
import { InvalidInputError } from '../lib/errors.ts';

export async function assertGpuPresent(libraryPath = process.env['LLEM_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1'): Promise<void> {
  let reason: string | null = null;
  try {
    const lib = koffi.load(libraryPath);
    const init = lib.func('int nvmlInit_v2()');
    const count = lib.func('int nvmlDeviceGetCount_v2(_Out_ unsigned int *count)');
    const rc = init() as number;
    const n: [number] = [0];
    if (rc !== 0) reason = `nvmlInit failed with NVML error ${rc}`;
    else if ((count(n) as number) !== 0 || n[0] === 0) reason = 'NVML reports no GPU';
  } catch (err) {
    reason = `cannot load ${libraryPath} (${(err as Error).message.split('\n')[0] ?? 'unknown error'})`;
  }
  if (reason !== null) {
    throw new InvalidInputError([{
      file: '--simulate',
      path: '',
      message: `no NVIDIA GPU is usable on this machine: ${reason}. Run on a GPU machine, or pass --simulate to use the simulated GPU and mock server (results are marked simulated).`,
    }]);
  }
}
