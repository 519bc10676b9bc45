// Backend readiness: poll its health endpoint until it answers 2xx, the timeout passes, or the run
// is aborted (SIGTERM, backend exited).
import http from 'node:http';
import { BackendError } from '../lib/errors.ts';
import { abortableSleep } from './load/generator.ts';

function probe(url: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

export interface ReadinessOptions {
  url: string;
  timeoutMs: number;
  pollMs?: number;
  signal: AbortSignal;
}

/** Resolves once ready; throws BackendError with the last probe result on timeout; returns early on abort. */
export async function awaitBackendReady(opts: ReadinessOptions): Promise<void> {
  const deadline = performance.now() + opts.timeoutMs;
  while (!opts.signal.aborted) {
    const last = await probe(opts.url, Math.min(5000, opts.timeoutMs));
    if (typeof last === 'number' && last >= 200 && last < 300) return;
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new BackendError(
        `backend not ready after ${Math.round(opts.timeoutMs / 1000)} s: GET ${opts.url} last answered ${String(last)} ` +
          '(raise spec.backends[].readinessTimeoutSeconds in the manifest, or check the backend logs)',
      );
    }
    await abortableSleep(Math.min(opts.pollMs ?? 500, left), opts.signal);
  }
}
