import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `llem ...args` as a real process, the way a user would. */
export function llem(args: string[], cwd = REPO): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', `${REPO}cli/main.ts`, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, LLEM_CLI_ENTRY: '1', LLEM_DEBUG: '' },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
