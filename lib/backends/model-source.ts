// Where the model's weights come from, in the form each backend's command line wants.
import { posix } from 'node:path';
import type { ModelSpec } from '../../api/spec.ts';
import type { LaunchContext, SecretEnvRef } from './types.ts';

export type ModelLocation =
  { kind: 'huggingFace'; id: string; revision: string } | { kind: 'path'; path: string } | { kind: 'random' };

export function modelLocation(model: ModelSpec, ctx: LaunchContext): ModelLocation {
  const src = model.source;
  if (src.pvc !== undefined) {
    return { kind: 'path', path: posix.join(ctx.modelMountPath, posix.normalize(`/${src.pvc.path}`)) };
  }
  if (src.random !== undefined) return { kind: 'random' };
  return { kind: 'huggingFace', id: model.name, revision: model.revision };
}

/** HF_TOKEN reaches the backend only through a secretKeyRef; never as a value in args or env. */
export function hfTokenEnv(model: ModelSpec): SecretEnvRef[] {
  const ref = model.source.huggingFace?.tokenSecretRef;
  return ref === undefined ? [] : [{ name: 'HF_TOKEN', secretName: ref.name, secretKey: ref.key }];
}

/** Environment every backend gets: no telemetry to third parties, no hub access where none is needed. */
export function baseEnv(location: ModelLocation): Record<string, string> {
  const env: Record<string, string> = { DO_NOT_TRACK: '1', HF_HUB_DISABLE_TELEMETRY: '1' };
  if (location.kind !== 'huggingFace') env['HF_HUB_OFFLINE'] = '1';
  return env;
}
