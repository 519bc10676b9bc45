// GPU telemetry: what the measurement protocol needs from a GPU, whatever reads it.
import type { GpuInfo, GpuSample } from '../../api/protocol.ts';

export type TelemetrySource = 'nvml' | 'simulated';

/** What was discovered at start: recorded in the `hello` message's environment. */
export interface TelemetryEnvironment {
  source: TelemetrySource;
  gpus: GpuInfo[];
  driverVersion: string | null;
  nvmlVersion: string | null;
  cudaVersion: string | null;
}

export interface GpuTelemetry {
  readonly source: TelemetrySource;
  /**
   * Discover the visible GPUs and start periodic sampling. `onBatch` receives compact batches of
   * periodic samples (never mark readings). Throws TelemetryError when no GPU can be read: the
   * protocol must fail at start, not mid-run.
   */
  start(onBatch: (samples: GpuSample[]) => void): Promise<TelemetryEnvironment>;
  /**
   * One immediate reading of every GPU, taken at a protocol boundary. Every periodic sample taken
   * before it has been delivered to `onBatch` when this resolves, so ordering on the wire is exact.
   */
  mark(): Promise<GpuSample[]>;
  /** Deliver the samples not yet batched. */
  flush(): Promise<void>;
  /** Requests in flight right now; only a simulated GPU uses it (its power follows the load). */
  observeLoad?(inFlight: number): void;
  stop(): Promise<void>;
}

/**
 * Synchronous device access, used inside the sampler's worker thread (NVML calls block for
 * milliseconds; they must never run on the load generator's event loop).
 */
export interface DeviceReader {
  open(): TelemetryEnvironment;
  read(): GpuSample[];
  close(): void;
}

/** Messages between the sampler worker and the main thread. */
export type SamplerRequest = { type: 'mark'; id: number } | { type: 'flush'; id: number } | { type: 'stop'; id: number };

export type SamplerReply =
  | { type: 'opened'; environment: TelemetryEnvironment }
  | { type: 'failed'; message: string }
  | { type: 'batch'; samples: GpuSample[] }
  | { type: 'done'; id: number; samples?: GpuSample[]; error?: string };
