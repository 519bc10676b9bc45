// One class per failure mode, each with a stable code. CLI maps `exitCode` straight to the process.

export type LlemErrorCode =
  | 'LLEM_E_INVALID_SPEC'
  | 'LLEM_E_INVALID_INPUT'
  | 'LLEM_E_FILE'
  | 'LLEM_E_PROTOCOL'
  | 'LLEM_E_BUS'
  | 'LLEM_E_TELEMETRY'
  | 'LLEM_E_BACKEND'
  | 'LLEM_E_RUN'
  | 'LLEM_E_CHECKPOINT'
  | 'LLEM_E_KUBE'
  | 'LLEM_E_LOCKED'
  | 'LLEM_E_INTERRUPTED'
  | 'LLEM_E_GPU_ATTRIBUTION'
  | 'LLEM_E_GPU_NOT_EXCLUSIVE'
  | 'LLEM_E_NVML_TIMEOUT'
  | 'LLEM_E_GPU_SETTINGS_REFUSED'
  | 'LLEM_E_GPU_SETTINGS';

export class LlemError extends Error {
  override name = 'LlemError';
  readonly code: LlemErrorCode;
  /** Process exit code the CLI uses when this error reaches it. */
  readonly exitCode: number;
  constructor(code: LlemErrorCode, message: string, options: { cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** One problem in user input, located by file and dotted field path. */
export interface InputIssue {
  file: string;
  path: string;
  message: string;
}

/** Bad user input (manifest, flags, files). Exit code 2; `issues` are printed one per line. */
export class InvalidInputError extends LlemError {
  override name = 'InvalidInputError';
  readonly issues: readonly InputIssue[];
  constructor(issues: readonly InputIssue[], options: { cause?: unknown } = {}) {
    super('LLEM_E_INVALID_INPUT', issues.map(formatIssue).join('\n'), { ...options, exitCode: 2 });
    this.issues = issues;
  }
}

export function formatIssue(issue: InputIssue): string {
  const where = issue.path === '' ? issue.file : `${issue.file}: ${issue.path}`;
  return `${where}: ${issue.message}`;
}

export class ProtocolError extends LlemError {
  override name = 'ProtocolError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_PROTOCOL', message, options);
  }
}

export class BusError extends LlemError {
  override name = 'BusError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_BUS', message, options);
  }
}

export class TelemetryError extends LlemError {
  override name = 'TelemetryError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_TELEMETRY', message, options);
  }
}

/** The visible GPUs can not be measured as asked: MIG slices, too few GPUs for gpusPerRun. Exit 2: fix the setup. */
export class GpuAttributionError extends LlemError {
  override name = 'GpuAttributionError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_GPU_ATTRIBUTION', message, { ...options, exitCode: 2 });
  }
}

/** Another process used a measured GPU while requireExclusiveGpu was on. */
export class GpuNotExclusiveError extends LlemError {
  override name = 'GpuNotExclusiveError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_GPU_NOT_EXCLUSIVE', message, options);
  }
}

/**
 * GPU settings (power limit, locked clocks) asked for but not allowed here: not permitted by the
 * cluster (chart value or spec.gpu.allowDeviceControl), outside the device's constraints, or NVML
 * refused for lack of privilege. Bad input: exit 2, nothing applied.
 */
export class GpuSettingsRefusedError extends LlemError {
  override name = 'GpuSettingsRefusedError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_GPU_SETTINGS_REFUSED', message, { ...options, exitCode: 2 });
  }
}

/** Applying, reading back or restoring GPU settings failed at the driver. */
export class GpuSettingsError extends LlemError {
  override name = 'GpuSettingsError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_GPU_SETTINGS', message, options);
  }
}

/** An NVML call at a protocol boundary did not return in time (a hung driver call). */
export class NvmlTimeoutError extends LlemError {
  override name = 'NvmlTimeoutError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_NVML_TIMEOUT', message, options);
  }
}

export class BackendError extends LlemError {
  override name = 'BackendError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_BACKEND', message, options);
  }
}

/** True when a server's output says it could not bind its port (another process took it first). */
export function isAddressInUse(text: string): boolean {
  return /address already in use|EADDRINUSE/i.test(text);
}

export class CheckpointError extends LlemError {
  override name = 'CheckpointError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_CHECKPOINT', message, options);
  }
}

export class InterruptedError extends LlemError {
  override name = 'InterruptedError';
  constructor(message = 'interrupted', options: { cause?: unknown } = {}) {
    super('LLEM_E_INTERRUPTED', message, { ...options, exitCode: 130 });
  }
}

export function isLlemError(err: unknown, code?: LlemErrorCode): err is LlemError {
  return err instanceof LlemError && (code === undefined || err.code === code);
}

export function isInvalidInput(err: unknown): err is InvalidInputError {
  return err instanceof InvalidInputError;
}
