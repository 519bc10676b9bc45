// What a backend launcher produces: the exact process to start, and how to tell it is ready.
import type { BackendType } from '../../api/spec.ts';

/** Where and how the backend runs; everything not in the manifest. */
export interface LaunchContext {
  /** Address the server binds to: 127.0.0.1 locally, 0.0.0.0 in a pod. */
  host: string;
  port: number;
  /** GPUs this run replica was given (tensor x pipeline parallel must fit). */
  gpusPerRun: number;
  /** Where a `pvc` model source is mounted inside the backend container. */
  modelMountPath: string;
  /** Seed passed to backends that take one (reproducible random weights and sampling). */
  seed: number;
  /** Local runs only: the folder holding the PyTorch server package (images/pytorch), put on PYTHONPATH. */
  pytorchServerRoot?: string;
  /** Python interpreter for the PyTorch server (default `python3`). */
  python?: string;
  /** Folder for files the backend reads at start (trtllm-serve's extra options YAML). */
  scratchDir: string;
}

/**
 * A Secret key mounted as a read-only file (mode 0400) in `mountDir`/`fileName`; the backend finds the path
 * in the plain variable `pathEnv` (set in `env`). The value is never an environment variable.
 */
export interface SecretFileRef {
  pathEnv: string;
  secretName: string;
  secretKey: string;
  mountDir: string;
  fileName: string;
}

export interface LaunchFile {
  path: string;
  content: string;
}

export interface ReadinessProbe {
  /** GET this path on the server; ready when it answers 200. */
  path: string;
  /** Give up after this long (model download and load included). */
  timeoutSeconds: number;
  intervalMs: number;
}

export interface MetricsEndpoint {
  path: string;
  format: 'prometheus' | 'llem-stats';
}

export interface BackendLaunch {
  backend: BackendType;
  /** argv[0]; run without a shell. */
  command: string;
  args: string[];
  /** Plain environment additions (no secrets; a secret's file path at most). */
  env: Record<string, string>;
  /** Secrets the backend reads from files (cluster: Secret volumes; ADR 0025). */
  secretFiles: SecretFileRef[];
  /** Files to write before starting the process. */
  files: LaunchFile[];
  /** The model name clients must send in requests. */
  servedModelName: string;
  baseUrl: string;
  readiness: ReadinessProbe;
  metrics: MetricsEndpoint | null;
  /** backends[].shutdownGraceSeconds: SIGTERM -> SIGKILL grace when the server is stopped (absent: the runtime's). */
  shutdownGraceSeconds?: number;
}
