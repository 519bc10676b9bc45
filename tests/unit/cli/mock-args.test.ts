import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { llem } from './run-cli.ts';

const SMALL = 'tests/fixtures/local/small.yaml';

void test('llem run: a bad --mock-args stops before anything is written, naming the flag', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'llem-mock-args-')), 'out');
  const bad = llem(['run', SMALL, '--simulate', '--out', out, '--mock-args=--ttft-ms -3']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--mock-args/);
  const port = llem(['run', SMALL, '--simulate', '--out', out, '--mock-args=--port 9']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /--mock-args: --host, --port and --model are set by llem run/);
  const real = llem(['run', SMALL, '--out', out, '--mock-args=--ttft-ms 5']);
  assert.equal(real.code, 2);
  assert.match(real.stderr, /--mock-args: applies only with --simulate/);
  assert.equal(existsSync(out), false);
});
