// Main-thread side of the sampler worker: a GpuTelemetry whose device calls run in a worker.
import { Worker } from 'node:worker_threads';
import type { GpuSample } from '../../api/protocol.ts';
import { TelemetryError } from '../../lib/errors.ts';
import { createLoadCell, type SimulatedGpuOptions } from './simulated.ts';
import type { GpuTelemetry, SamplerReply, SamplerRequest, TelemetryEnvironment, TelemetrySource } from './types.ts';
import type { VisibleDevicesEnv } from './visible-devices.ts';

interface Cadence {
  sampleIntervalMs: number;
  /** How often the worker posts what it sampled (one structured-clone hop per batch). */
  batchIntervalMs: number;
}

export type SamplerSpec = Cadence &
  (
    | { source: 'nvml'; libraryPath: string; visibility: VisibleDevicesEnv }
    | { source: 'simulated'; load: Int32Array; options: SimulatedGpuOptions }
  );

/**
 * From source (tsx) the worker is worker.ts beside this file. A bundle must ship the worker as a
 * second entry point, `agent-sampler-worker.mjs`, next to the bundle file (esbuild
 * agent/telemetry/worker.ts --outfile=<dir>/agent-sampler-worker.mjs).
 */
const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('./worker.ts', import.meta.url) : new URL('./agent-sampler-worker.mjs', import.meta.url);

export class WorkerTelemetry implements GpuTelemetry {
  readonly source: TelemetrySource;
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (s: GpuSample[]) => void; reject: (e: Error) => void }>();
  private readonly spec: SamplerSpec;
  private failure: Error | undefined;

  constructor(spec: SamplerSpec) {
    this.spec = spec;
    this.source = spec.source;
  }

  start(onBatch: (samples: GpuSample[]) => void): Promise<TelemetryEnvironment> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_URL, { workerData: this.spec });
      this.worker = worker;
      let opened = false;
      worker.on('message', (m: SamplerReply) => {
        if (m.type === 'opened') {
          opened = true;
          resolve(m.environment);
        } else if (m.type === 'failed') {
          reject(new TelemetryError(`GPU telemetry (${this.source}) unavailable: ${m.message}`));
          void worker.terminate();
        } else if (m.type === 'batch') {
          onBatch(m.samples);
        } else {
          this.settle(m.id, m.samples ?? []);
        }
      });
      const fail = (err: Error): void => {
        this.failure = new TelemetryError(`GPU telemetry worker stopped: ${err.message}`, { cause: err });
        if (!opened) reject(this.failure);
        for (const w of this.waiting.values()) w.reject(this.failure);
        this.waiting.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => {
        if (this.waiting.size > 0 || !opened) fail(new Error(`exit code ${code}`));
      });
    });
  }

  private settle(id: number, samples: GpuSample[]): void {
    this.waiting.get(id)?.resolve(samples);
    this.waiting.delete(id);
  }

  private request(type: SamplerRequest['type']): Promise<GpuSample[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const worker = this.worker;
    if (worker === undefined) return Promise.reject(new TelemetryError('GPU telemetry not started'));
    return this.requestOn(worker, type);
  }

  mark(): Promise<GpuSample[]> {
    return this.request('mark');
  }

  async flush(): Promise<void> {
    await this.request('flush');
  }

  observeLoad(inFlight: number): void {
    if (this.spec.source === 'simulated') Atomics.store(this.spec.load, 0, inFlight);
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    this.worker = undefined;
    const timer = setTimeout(() => void worker.terminate(), 2000);
    try {
      if (this.failure === undefined) await this.requestOn(worker, 'stop');
    } catch {
      // already gone: terminate below
    } finally {
      clearTimeout(timer);
      await worker.terminate();
    }
  }

  private requestOn(worker: Worker, type: SamplerRequest['type']): Promise<GpuSample[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ type, id } satisfies SamplerRequest);
    });
  }
}

export interface NvmlTelemetryOptions extends Partial<Cadence> {
  libraryPath?: string;
  visibility: VisibleDevicesEnv;
}

export function createNvmlTelemetry(opts: NvmlTelemetryOptions): GpuTelemetry {
  return new WorkerTelemetry({
    source: 'nvml',
    libraryPath: opts.libraryPath ?? 'libnvidia-ml.so.1',
    visibility: opts.visibility,
    sampleIntervalMs: opts.sampleIntervalMs ?? 100,
    batchIntervalMs: opts.batchIntervalMs ?? 1000,
  });
}

/** The simulated GPU: same worker path as NVML, so benchmarks exercise the real plumbing. */
export function createSimulatedGpu(opts: SimulatedGpuOptions & Partial<Cadence> = {}): GpuTelemetry {
  const { sampleIntervalMs, batchIntervalMs, ...options } = opts;
  return new WorkerTelemetry({
    source: 'simulated',
    load: createLoadCell(),
    options,
    sampleIntervalMs: sampleIntervalMs ?? 100,
    batchIntervalMs: batchIntervalMs ?? 1000,
  });
}
