// Drives `llem` as a real child process for the end-to-end tests (exit codes, signals, resume).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface LlemProcess {
  child: ChildProcess;
  stderr(): string;
  /** Resolves when stderr matches `pattern` (rejects after timeoutMs). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<Finished>;
}

export function startLlem(args: string[], env: NodeJS.ProcessEnv = {}): LlemProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `${REPO}cli/main.ts`, ...args], {
    cwd: REPO,
    env: { ...process.env, LLEM_CLI_ENTRY: '1', LLEM_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters]) {
      if (w.pattern.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const done = new Promise<Finished>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err })),
  );
  return {
    child,
    stderr: () => err,
    done,
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        if (pattern.test(err)) return resolve();
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern} in stderr:\n${err}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void done.then(() => {
          clearTimeout(timer);
          if (!pattern.test(err)) reject(new Error(`llem exited before ${pattern}:\n${err}`));
        });
      }),
  };
}

export async function runLlem(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return startLlem(args, env).done;
}
