// Main-thread side of the sampler worker: a GpuTelemetry whose device calls run in a worker.
import { Worker } from 'node:worker_threads';
import type { GpuSample, Mark } from '../../api/protocol.ts';
import { GpuAttributionError, NvmlTimeoutError, TelemetryError } from '../../lib/errors.ts';
import { createLoadCell, type SimulatedGpuOptions } from './simulated.ts';
import type {
  GpuAttribution,
  GpuTelemetry,
  ProcessSighting,
  SamplerReply,
  SamplerRequest,
  TelemetryEnvironment,
  TelemetrySource,
} from './types.ts';
import type { VisibleDevicesEnv } from './visible-devices.ts';

interface Cadence {
  sampleIntervalMs: number;
  /** How often the worker posts what it sampled (one structured-clone hop per batch). */
  batchIntervalMs: number;
}

/** What the measurement asks of the sampler beyond its cadence. */
export interface SamplerPolicy {
  /** Marks wait for the counter's next step edge (ticks.ts). */
  tickAlign: boolean;
  /** List the GPUs' processes at every mark and every batch. */
  watchProcesses: boolean;
  /** A mark not answered in this long is a hung NVML call: the run aborts. */
  markTimeoutMs: number;
}

export const DEFAULT_POLICY: SamplerPolicy = { tickAlign: true, watchProcesses: true, markTimeoutMs: 10_000 };

export type SamplerSpec = Cadence &
  SamplerPolicy &
  (
    | { source: 'nvml'; libraryPath: string; visibility: VisibleDevicesEnv; attribution: GpuAttribution }
    | { source: 'simulated'; load: Int32Array; options: SimulatedGpuOptions }
  );

/**
 * From source (tsx) the worker is worker.ts beside this file. A bundle must ship the worker as a
 * second entry point, `agent-sampler-worker.mjs`, next to the bundle file (esbuild
 * agent/telemetry/worker.ts --outfile=<dir>/agent-sampler-worker.mjs).
 */
const WORKER_URL = import.meta.url.endsWith('.ts')
  ? new URL('./worker.ts', import.meta.url)
  : new URL('./agent-sampler-worker.mjs', import.meta.url);

export class WorkerTelemetry implements GpuTelemetry {
  readonly source: TelemetrySource;
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (s: GpuSample[]) => void; reject: (e: Error) => void }>();
  private readonly spec: SamplerSpec;
  private failure: Error | undefined;
  private readonly sightings: ProcessSighting[] = [];

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
          reject(
            m.code === 'LLEM_E_GPU_ATTRIBUTION'
              ? new GpuAttributionError(m.message)
              : new TelemetryError(`GPU telemetry (${this.source}) unavailable: ${m.message}`),
          );
          void worker.terminate();
        } else if (m.type === 'batch') {
          onBatch(m.samples);
        } else if (m.type === 'processes') {
          // Bounded: a long run with a neighbour keeps the first sightings and the latest.
          if (this.sightings.length >= 64) this.sightings.splice(32, 1);
          this.sightings.push(m.sighting);
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

  private request(type: SamplerRequest['type'], mark?: Mark): Promise<GpuSample[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const worker = this.worker;
    if (worker === undefined) return Promise.reject(new TelemetryError('GPU telemetry not started'));
    return this.requestOn(worker, type, mark);
  }

  /**
   * A hung NVML call blocks the worker thread inside native code, where nothing can interrupt it:
   * the mark gives up after markTimeoutMs, the telemetry is failed for good, and the worker is left
   * to terminate whenever the call returns.
   */
  mark(mark?: Mark): Promise<GpuSample[]> {
    const timeoutMs = this.spec.markTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new NvmlTimeoutError(
          `NVML did not answer within ${timeoutMs / 1000} s at ${mark ?? 'a mark'} (a hung driver call): the run is aborted`,
        );
        this.abandon(err);
        reject(err);
      }, timeoutMs);
      this.request('mark', mark)
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  }

  foreignProcesses(): ProcessSighting[] {
    return [...this.sightings];
  }

  private abandon(err: Error): void {
    this.failure = err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
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
    // Bounded either way: a worker stuck in a native call never answers nor finishes terminating.
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000);
    });
    try {
      if (this.failure === undefined) await Promise.race([this.requestOn(worker, 'stop').then(() => undefined), limit]);
    } catch {
      // already gone: terminate below
    } finally {
      clearTimeout(timer);
      await Promise.race([
        worker.terminate().then(() => undefined),
        new Promise<void>((r) => setTimeout(r, 1000).unref()),
      ]);
    }
  }

  private requestOn(worker: Worker, type: SamplerRequest['type'], mark?: Mark): Promise<GpuSample[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage((type === 'mark' ? { type, id, mark } : { type, id }) satisfies SamplerRequest);
    });
  }
}

export interface NvmlTelemetryOptions extends Partial<Cadence>, Partial<SamplerPolicy> {
  libraryPath?: string;
  visibility: VisibleDevicesEnv;
  attribution?: GpuAttribution;
}

export function createNvmlTelemetry(opts: NvmlTelemetryOptions): GpuTelemetry {
  return new WorkerTelemetry({
    ...policyOf(opts),
    source: 'nvml',
    libraryPath: opts.libraryPath ?? 'libnvidia-ml.so.1',
    visibility: opts.visibility,
    attribution: opts.attribution ?? 'exclusive',
    sampleIntervalMs: opts.sampleIntervalMs ?? 100,
    batchIntervalMs: opts.batchIntervalMs ?? 1000,
  });
}

function policyOf(p: { [K in keyof SamplerPolicy]?: SamplerPolicy[K] | undefined }): SamplerPolicy {
  return {
    tickAlign: p.tickAlign ?? DEFAULT_POLICY.tickAlign,
    watchProcesses: p.watchProcesses ?? DEFAULT_POLICY.watchProcesses,
    markTimeoutMs: p.markTimeoutMs ?? DEFAULT_POLICY.markTimeoutMs,
  };
}

/** The simulated GPU: same worker path as NVML, so benchmarks exercise the real plumbing. */
export function createSimulatedGpu(
  opts: SimulatedGpuOptions & Partial<Cadence> & Partial<SamplerPolicy> = {},
): GpuTelemetry {
  const { sampleIntervalMs, batchIntervalMs, tickAlign, watchProcesses, markTimeoutMs, ...options } = opts;
  return new WorkerTelemetry({
    ...policyOf({ tickAlign, watchProcesses, markTimeoutMs }),
    source: 'simulated',
    load: createLoadCell(),
    options,
    sampleIntervalMs: sampleIntervalMs ?? 100,
    batchIntervalMs: batchIntervalMs ?? 1000,
  });
}
