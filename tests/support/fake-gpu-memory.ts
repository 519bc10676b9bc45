// Reading the fake GPU memory of tests/support/fake-vllm-tree.ts: <memDir>/<role>.pid files whose process
// is alive hold memory; the memory is released when every such process is gone.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Pids holding fake GPU memory now. */
export function memoryHolders(memDir: string): number[] {
  if (!existsSync(memDir)) return [];
  return readdirSync(memDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(memDir, f), 'utf8')))
    .filter((pid) => processAlive(pid));
}

/** Milliseconds from `t0` (performance.now()) until no process holds fake GPU memory; fails after limitMs. */
export async function memoryReleasedAfter(memDir: string, t0: number, limitMs: number): Promise<number> {
  for (;;) {
    const left = memoryHolders(memDir);
    if (left.length === 0) return Math.round(performance.now() - t0);
    if (performance.now() - t0 > limitMs) assert.fail(`processes still holding GPU memory: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function until(what: string, test: () => boolean, limitMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!test()) {
    if (Date.now() - t0 > limitMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
