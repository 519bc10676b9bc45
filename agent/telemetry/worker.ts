// Sampler worker: owns the DeviceReader, samples on its own event loop, posts compact batches.
// Blocking NVML calls (milliseconds each) happen here, never on the load generator's loop.
import { parentPort, workerData } from 'node:worker_threads';
import type { GpuSample } from '../../api/protocol.ts';
import type { DeviceReader, SamplerReply, SamplerRequest } from './types.ts';
import type { SamplerSpec } from './sampler.ts';

async function createReader(spec: SamplerSpec): Promise<DeviceReader> {
  if (spec.source === 'simulated') {
    const { SimulatedReader } = await import('./simulated.ts');
    return new SimulatedReader(spec.load, spec.options);
  }
  const [{ loadNvmlApi }, { NvmlReader }] = await Promise.all([import('./nvml-api.ts'), import('./nvml.ts')]);
  return new NvmlReader(loadNvmlApi(spec.libraryPath), spec.visibility);
}

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const spec = workerData as SamplerSpec;
  const post = (m: SamplerReply): void => port.postMessage(m);
  let reader: DeviceReader;
  try {
    reader = await createReader(spec);
    post({ type: 'opened', environment: reader.open() });
  } catch (err) {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  let pending: GpuSample[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    post({ type: 'batch', samples: pending });
    pending = [];
  };
  const sampler = setInterval(() => pending.push(...reader.read()), spec.sampleIntervalMs);
  const batcher = setInterval(flush, spec.batchIntervalMs);
  port.on('message', (req: SamplerRequest) => {
    flush();
    if (req.type === 'mark') {
      post({ type: 'done', id: req.id, samples: reader.read() });
    } else if (req.type === 'flush') {
      post({ type: 'done', id: req.id });
    } else {
      clearInterval(sampler);
      clearInterval(batcher);
      reader.close();
      post({ type: 'done', id: req.id });
      port.close();
    }
  });
}

await main();
