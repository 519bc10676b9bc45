// Runs the PyTorch backend server's own tests (pytest) inside the one node:test run CI reads.
// The Python environment is prepared by scripts/ensure-deps.d/python.sh; without it, python3 is used.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const cache = process.env['LLEM_CACHE'] ?? join(process.env['HOME'] ?? '/root', '.cache', 'llem');
const venvPython = join(cache, 'venv-pytorch', 'bin', 'python');
const python = existsSync(venvPython) ? venvPython : 'python3';

void test('the PyTorch server passes its pytest suite (HTTP, SSE, batching, and the torch runner where installed)', () => {
  const run = spawnSync(python, ['-m', 'pytest', 'images/pytorch/tests', '-q', '-p', 'no:cacheprovider'], {
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  // pytest's summary line, e.g. "33 passed in 20.1s" or "29 passed, 4 skipped in 12.0s".
  const summary = output.trim().split('\n').at(-1) ?? '';
  console.log(`pytest (${python}): ${summary}`);
  assert.equal(run.status, 0, `pytest failed:\n${output.slice(-8000)}`);
  assert.match(summary, /\d+ passed/);
});
