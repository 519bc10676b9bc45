// GPU telemetry: what the measurement protocol needs from a GPU, whatever reads it.
import type { GpuInfo, GpuSample, Mark } from '../../api/protocol.ts';
import type { ListedProcess, ProcessVerdict } from './processes.ts';
import type { CounterReading } from './ticks.ts';
import type { MigEntry } from './visible-devices.ts';

export type TelemetrySource = 'nvml' | 'simulated';

/**
 * exclusive: every measured GPU is a whole GPU this run owns (MIG refused). wholeDevice: MIG
 * instances are measured as their whole parent GPU (every slice's energy), and every result says so.
 */
export type GpuAttribution = 'exclusive' | 'wholeDevice';

/** What was discovered at start: recorded in the `hello` message's environment. */
export interface TelemetryEnvironment {
  source: TelemetrySource;
  gpus: GpuInfo[];
  driverVersion: string | null;
  nvmlVersion: string | null;
  cudaVersion: string | null;
  /** MIG instances behind the measured GPUs (measured whole, under attribution wholeDevice). */
  mig?: MigEntry[];
}

/** Foreign processes seen on the measured GPUs at one moment. */
export interface ProcessSighting {
  tMs: number;
  verdict: ProcessVerdict;
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
   * One reading of every GPU, taken at a protocol boundary: at the counter's next step edge (see
   * ticks.ts). Every periodic sample taken before it has been delivered to `onBatch` when this
   * resolves, so ordering on the wire is exact. Rejects with NvmlTimeoutError when NVML hangs.
   */
  mark(mark?: Mark): Promise<GpuSample[]>;
  /** Deliver the samples not yet batched. */
  flush(): Promise<void>;
  /** Requests in flight right now; only a simulated GPU uses it (its power follows the load). */
  observeLoad?(inFlight: number): void;
  /** Every listing since start that showed a process that is not ours (at marks and once a batch). */
  foreignProcesses?(): ProcessSighting[];
  stop(): Promise<void>;
}

/**
 * Synchronous device access, used inside the sampler's worker thread (NVML calls block for
 * milliseconds; they must never run on the load generator's event loop).
 */
export interface DeviceReader {
  open(): TelemetryEnvironment;
  read(): GpuSample[];
  /** The energy counters alone: the fast path polled around boundaries. */
  readCounters(): CounterReading[];
  /** Processes with a context on each measured GPU; null when this reader cannot list them. */
  listProcesses(): ListedProcess[] | null;
  /** The counter's step period when the reader knows it by construction (the simulated GPU); else measured. */
  readonly knownTickPeriodMs?: number | undefined;
  /** Called before a mark's reads (a test double uses it to stand for a hung NVML call). */
  beforeMark?(mark: Mark | undefined): void;
  close(): void;
}

/** Messages between the sampler worker and the main thread. */
export type SamplerRequest =
  { type: 'mark'; id: number; mark?: Mark | undefined } | { type: 'flush'; id: number } | { type: 'stop'; id: number };

export type SamplerReply =
  | { type: 'opened'; environment: TelemetryEnvironment }
  | { type: 'failed'; message: string; code?: string }
  | { type: 'batch'; samples: GpuSample[] }
  | { type: 'processes'; sighting: ProcessSighting }
  | { type: 'done'; id: number; samples?: GpuSample[]; error?: string };
