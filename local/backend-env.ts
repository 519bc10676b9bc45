// The environment of a backend started by `llem run` (ADR 0025): the launcher's own variables, the few
// that any process needs to run at all (taken from the user's environment), and the names the user listed
// with --pass-env. Nothing else: the user's shell holds tokens (HF_TOKEN, AWS_*, GITHUB_TOKEN...) that any
// process with the same uid could read in /proc/<pid>/environ of a server that got them all.
import { InvalidInputError } from '../lib/errors.ts';

/**
 * Process basics, never credentials: where programs and libraries are, the user's home (huggingface_hub reads
 * its token file, ~/.cache/huggingface/token, from there: the token stays a file), locale, temp and caches.
 */
export const LOCAL_BACKEND_BASE_ENV = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'TERM',
  'LD_LIBRARY_PATH',
  'CUDA_HOME',
  'CUDA_PATH',
  'VIRTUAL_ENV',
  'CONDA_PREFIX',
  'XDG_CACHE_HOME',
  'HF_HOME',
  'HF_HUB_CACHE',
  'TRITON_CACHE_DIR',
] as const;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `--pass-env A,B --pass-env C` -> [A, B, C]; a malformed name is bad input naming the flag. */
export function parsePassEnv(values: readonly string[] | undefined): string[] {
  const names = (values ?? []).flatMap((v) => v.split(',')).map((n) => n.trim());
  const bad = names.filter((n) => !NAME.test(n));
  if (bad.length > 0) {
    throw new InvalidInputError([
      {
        file: 'llem run',
        path: '--pass-env',
        message: `${bad.map((b) => JSON.stringify(b)).join(', ')} is not an environment variable name; list names (letters, digits, _), comma-separated`,
      },
    ]);
  }
  return [...new Set(names)];
}

export function backendEnvironment(
  parent: NodeJS.ProcessEnv,
  declared: Record<string, string>,
  passEnv: readonly string[],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...LOCAL_BACKEND_BASE_ENV, ...passEnv]) {
    const value = parent[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...declared };
}
