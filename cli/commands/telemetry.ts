// `llem gpu-info`: discover the GPUs this process may measure and print a few samples as JSON,
// through exactly the path the agent uses (NVML in the sampler worker). First thing to run on a
// new GPU node; --simulate exercises the same plumbing without one.
import { parseArgs } from 'node:util';
import { gpuEnvironment } from '../../agent/config.ts';
import { createNvmlTelemetry, createSimulatedGpu } from '../../agent/telemetry/sampler.ts';
import type { GpuSample } from '../../api/protocol.ts';
import { InvalidInputError } from '../../lib/errors.ts';

const USAGE = `usage: llem gpu-info [--samples N] [--interval-ms MS] [--simulate]

Prints {environment, samples, marks} as JSON: discovered GPUs (UUID, name, memory, power limit),
driver/NVML/CUDA versions, N periodic samples per GPU, and N immediate "mark" readings with
how long each took (the energy-counter call costs milliseconds on an H200).
Honours CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES and LLEM_NVML_LIBRARY.
`;

function positive(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidInputError([
      { file: 'llem gpu-info', path: flag, message: `must be a positive integer, got "${raw}"` },
    ]);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        samples: { type: 'string' },
        'interval-ms': { type: 'string' },
        simulate: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new InvalidInputError([{ file: 'llem gpu-info', path: '', message: `${(err as Error).message}\n${USAGE}` }]);
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const count = positive(values.samples, '--samples', 3);
  const intervalMs = positive(values['interval-ms'], '--interval-ms', 100);
  const cadence = { sampleIntervalMs: intervalMs, batchIntervalMs: intervalMs };
  const gpu = gpuEnvironment(process.env);
  const telemetry =
    values.simulate === true
      ? createSimulatedGpu(cadence)
      : createNvmlTelemetry({ ...cadence, libraryPath: gpu.nvmlLibrary, visibility: gpu.visibility });
  const samples: GpuSample[] = [];
  try {
    const environment = await telemetry.start((batch) => samples.push(...batch));
    await new Promise((r) => setTimeout(r, intervalMs * (count + 1)));
    const marks: Array<{ tookMs: number; samples: GpuSample[] }> = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const s = await telemetry.mark();
      marks.push({ tookMs: Number((performance.now() - t0).toFixed(3)), samples: s });
    }
    const perGpu = environment.gpus.length;
    const out = {
      simulated: environment.source === 'simulated',
      environment,
      samples: samples.slice(0, count * perGpu),
      marks,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  } finally {
    await telemetry.stop();
  }
}
