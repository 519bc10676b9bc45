// One entry point: a backend entry of the spec -> the process to start.
import type { BackendSpec, ModelSpec } from '../../api/spec.ts';
import { renderPytorch } from './pytorch.ts';
import { renderTensorrt } from './tensorrt.ts';
import type { BackendLaunch, LaunchContext } from './types.ts';
import { renderVllm } from './vllm.ts';

export const DEFAULT_LAUNCH_CONTEXT: LaunchContext = {
  host: '127.0.0.1',
  port: 8000,
  gpusPerRun: 1,
  modelMountPath: '/models',
  seed: 0,
  scratchDir: '/tmp/llem',
};

/**
 * Renders the exact command, args and environment for one backend entry. Throws InvalidInputError for combinations the
 * backend cannot run.
 */
export function renderBackendLaunch(
  backend: BackendSpec,
  model: ModelSpec,
  ctx: LaunchContext = DEFAULT_LAUNCH_CONTEXT,
): BackendLaunch {
  const rendered = renderFor(backend, model, ctx);
  const grace = backend.shutdownGraceSeconds;
  const launch = grace === undefined ? rendered : { ...rendered, shutdownGraceSeconds: grace };
  // The manifest's readiness timeout, when given, replaces the backend type's default.
  const timeoutSeconds = backend.readinessTimeoutSeconds;
  return timeoutSeconds === undefined ? launch : { ...launch, readiness: { ...launch.readiness, timeoutSeconds } };
}

function renderFor(backend: BackendSpec, model: ModelSpec, ctx: LaunchContext): BackendLaunch {
  switch (backend.type) {
    case 'pytorch':
      return renderPytorch(backend, model, ctx);
    case 'vllm':
      return renderVllm(backend, model, ctx);
    case 'tensorrt':
      return renderTensorrt(backend, model, ctx);
  }
}

/** The whole command line as one shell-quoted string (logs, reports, golden tests). */
export function formatCommandLine(launch: Pick<BackendLaunch, 'command' | 'args'>): string {
  return [launch.command, ...launch.args].map(shellQuote).join(' ');
}

export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
