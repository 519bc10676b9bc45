// Where the model's weights come from, in the form each backend's command line wants.
import { posix } from 'node:path';
import type { ModelSpec } from '../../api/spec.ts';
import type { LaunchContext, SecretFileRef } from './types.ts';

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

/** Where the HF token Secret is mounted in the backend container (read-only, mode 0400). */
export const HF_TOKEN_DIR = '/var/run/secrets/llem/huggingface';
export const HF_TOKEN_FILE = 'token';

/**
 * The HF token reaches the backend only as a file mounted from its Secret; the backend gets the file's path
 * in HF_TOKEN_PATH (huggingface_hub reads it, and with it vLLM, TensorRT-LLM and transformers), never the value
 * in its environment, where anything in the pod with the same uid could read it in /proc/<pid>/environ.
 */
export function hfTokenFiles(model: ModelSpec): SecretFileRef[] {
  const ref = model.source.huggingFace?.tokenSecretRef;
  if (ref === undefined) return [];
  return [
    {
      pathEnv: 'HF_TOKEN_PATH',
      secretName: ref.name,
      secretKey: ref.key,
      mountDir: HF_TOKEN_DIR,
      fileName: HF_TOKEN_FILE,
    },
  ];
}

/** Environment every backend gets: no telemetry to third parties, no hub access where none is needed. */
export function baseEnv(location: ModelLocation, model: ModelSpec): Record<string, string> {
  const env: Record<string, string> = { DO_NOT_TRACK: '1', HF_HUB_DISABLE_TELEMETRY: '1' };
  if (location.kind !== 'huggingFace') env['HF_HUB_OFFLINE'] = '1';
  for (const f of hfTokenFiles(model)) env[f.pathEnv] = `${f.mountDir}/${f.fileName}`;
  return env;
}
