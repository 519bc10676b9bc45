// Runs the PyTorch backend server's own tests (pytest) inside the one node:test run CI reads.
// The Python environment is prepared by scripts/ensure-deps.d/python.sh (torch included unless
// LLEM_PYTORCH_TORCH_TESTS=0); without it, python3 is used. Tensor parallelism has its own test (and its own
// time budget): two ranks on gloo must generate exactly what one rank does.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const cache = process.env['LLEM_CACHE'] ?? join(process.env['HOME'] ?? '/root', '.cache', 'llem');
const venvPython = join(cache, 'venv-pytorch', 'bin', 'python');
const python = existsSync(venvPython) ? venvPython : 'python3';
const TP_TESTS = 'images/pytorch/tests/test_tensor_parallel.py';

function pytest(args: string[]): { status: number | null; output: string; summary: string } {
  const run = spawnSync(python, ['-m', 'pytest', ...args, '-q', '-p', 'no:cacheprovider'], {
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  // pytest's summary line, e.g. "33 passed in 20.1s" or "29 passed, 4 skipped in 12.0s".
  const summary = output.trim().split('\n').at(-1) ?? '';
  console.log(`pytest ${args[0]} (${python}): ${summary}`);
  return { status: run.status, output, summary };
}

void test('the PyTorch server passes its pytest suite (HTTP, SSE, batching, and the torch runner where installed)', () => {
  const r = pytest(['images/pytorch/tests', '--ignore', TP_TESTS]);
  assert.equal(r.status, 0, `pytest failed:\n${r.output.slice(-8000)}`);
  assert.match(r.summary, /\d+ passed/);
});

void test('tensor parallelism on gloo: two ranks generate exactly what one rank generates, and stop together', () => {
  const r = pytest([TP_TESTS]);
  assert.equal(r.status, 0, `pytest failed:\n${r.output.slice(-8000)}`);
  // python.sh installs torch unless told not to: then these tests must run, not skip.
  if (process.env['LLEM_PYTORCH_TORCH_TESTS'] === '0') assert.match(r.summary, /passed|skipped/);
  else assert.match(r.summary, /^1 passed/, `the tensor-parallel tests did not run (${python}): ${r.summary}`);
});
