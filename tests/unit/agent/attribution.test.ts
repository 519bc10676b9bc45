import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { NvmlReader } from '../../../agent/telemetry/nvml.ts';
import type { NvmlResult } from '../../../agent/telemetry/nvml-api.ts';
import { classifyProcesses, readProcessTable } from '../../../agent/telemetry/processes.ts';
import { resolveVisibleDevices } from '../../../agent/telemetry/visible-devices.ts';
import { GpuAttributionError } from '../../../lib/errors.ts';

import { MIG, fakeNvml4 as fakeNvml } from '../../support/fake-nvml.ts';

const all = [0, 1, 2, 3].map((index) => ({ index, uuid: `GPU-${index}${index}${index}${index}-0000` }));
const resolveMig = (e: string): string | null => MIG[e] ?? null;
const ok = <T>(value: T): NvmlResult<T> => ({ rc: 0, value });

void test('a MIG UUID in CUDA_VISIBLE_DEVICES selects its parent GPU and is recorded, never "all devices"', () => {
  const sel = resolveVisibleDevices(all, { cudaVisibleDevices: 'MIG-aaaa' }, resolveMig);
  assert.deepEqual(
    sel.devices.map((d) => d.uuid),
    ['GPU-2222-0000'],
  );
  assert.deepEqual(sel.mig, [{ entry: 'MIG-aaaa', parentUuid: 'GPU-2222-0000' }]);
});

void test('two MIG slices of one GPU read its counter once; slices of two GPUs read both', () => {
  assert.deepEqual(
    resolveVisibleDevices(all, { cudaVisibleDevices: 'MIG-aaaa,MIG-bbbb' }, resolveMig).devices.map((d) => d.index),
    [2],
  );
  assert.deepEqual(
    resolveVisibleDevices(all, { cudaVisibleDevices: 'MIG-cccc,MIG-aaaa' }, resolveMig).devices.map((d) => d.index),
    [3, 2],
  );
});

void test("MIG UUIDs in NVIDIA_VISIBLE_DEVICES (the device plugin's MIG strategies) select their parents", () => {
  const sel = resolveVisibleDevices(all, { nvidiaVisibleDevices: 'MIG-cccc' }, resolveMig);
  assert.deepEqual(
    sel.devices.map((d) => d.index),
    [3],
  );
  assert.equal(sel.mig.length, 1);
});

void test('an unknown MIG UUID selects nothing (CUDA would see no device) and is still recorded', () => {
  const sel = resolveVisibleDevices(all, { cudaVisibleDevices: 'MIG-zzzz' }, resolveMig);
  assert.deepEqual(sel.devices, []);
  assert.deepEqual(sel.mig, [{ entry: 'MIG-zzzz', parentUuid: null }]);
});

void test('CUDA_VISIBLE_DEVICES all, none and empty select nothing, as they do for CUDA, and "all" says why', () => {
  for (const v of ['all', 'none', ''])
    assert.deepEqual(resolveVisibleDevices(all, { cudaVisibleDevices: v }).devices, [], v);
  assert.match(resolveVisibleDevices(all, { cudaVisibleDevices: 'all' }).problems.join(), /unset it/);
  assert.equal(resolveVisibleDevices(all, { nvidiaVisibleDevices: 'all' }).devices.length, 4);
  assert.equal(resolveVisibleDevices(all, { nvidiaVisibleDevices: '' }).devices.length, 0);
});

void test('CUDA_VISIBLE_DEVICES=3 measures GPU 3, not GPU 0', () => {
  assert.deepEqual(
    resolveVisibleDevices(all, { cudaVisibleDevices: '3' }).devices.map((d) => d.uuid),
    ['GPU-3333-0000'],
  );
});

void test('the NVML reader refuses a MIG slice by default with a message that names the way out', () => {
  const reader = new NvmlReader(fakeNvml(), { cudaVisibleDevices: 'MIG-aaaa' });
  assert.throws(
    () => reader.open(),
    (e: unknown) =>
      e instanceof GpuAttributionError &&
      e.exitCode === 2 &&
      /MIG-aaaa \(on GPU-2222-0000\)/.test(e.message) &&
      /gpuAttribution: wholeDevice/.test(e.message),
  );
});

void test('a whole GPU in MIG mode is refused too (a container given a slice sees the parent)', () => {
  const reader = new NvmlReader(fakeNvml({ migEnabled: (h) => ok(h === 1) }), { cudaVisibleDevices: '1' });
  assert.throws(
    () => reader.open(),
    (e: unknown) => e instanceof GpuAttributionError && /MIG mode enabled/.test(e.message),
  );
});

void test('attribution wholeDevice measures the parent GPU and reports the MIG slice it stands for', () => {
  const env = new NvmlReader(fakeNvml(), { cudaVisibleDevices: 'MIG-bbbb' }, 'wholeDevice').open();
  assert.deepEqual(
    env.gpus.map((g) => g.uuid),
    ['GPU-2222-0000'],
  );
  assert.deepEqual(env.mig, [{ entry: 'MIG-bbbb', parentUuid: 'GPU-2222-0000' }]);
});

void test("NVML's process lists come back per GPU, with compute, graphics and MPS clients", () => {
  const reader = new NvmlReader(
    fakeNvml({
      processes: (h, kind) =>
        ok(
          h === 0 ? [{ pid: kind === 'mps' ? 77 : 42, usedGpuMemoryBytes: kind === 'graphics' ? null : 2 ** 30 }] : [],
        ),
    }),
    { cudaVisibleDevices: '0,1' },
  );
  reader.open();
  assert.deepEqual(
    reader.listProcesses().map((p) => [p.gpuUuid, p.pid, p.kind, p.usedMemoryMiB]),
    [
      ['GPU-0000-0000', 42, 'compute', 1024],
      ['GPU-0000-0000', 42, 'graphics', null],
      ['GPU-0000-0000', 77, 'mps', 1024],
    ],
  );
});

void test('our own child is ours; a process outside our tree is foreign, named from /proc', async () => {
  const child = spawn('sleep', ['5']);
  await new Promise((r) => child.once('spawn', r));
  try {
    const pid = child.pid as number;
    const verdict = classifyProcesses(
      [
        { gpuUuid: 'GPU-a', pid, kind: 'compute', usedMemoryMiB: 100 },
        { gpuUuid: 'GPU-a', pid, kind: 'graphics', usedMemoryMiB: 100 },
        { gpuUuid: 'GPU-a', pid: 1, kind: 'compute', usedMemoryMiB: 50 },
      ],
      readProcessTable(),
      process.pid,
    );
    assert.equal(verdict.own, 1);
    assert.deepEqual(
      verdict.foreign.map((f) => f.pid),
      [1],
    );
    assert.equal(typeof verdict.foreign[0]?.name, 'string');
  } finally {
    child.kill();
  }
});

void test('PIDs from another PID namespace are unverified up to our process count, and foreign beyond it', () => {
  // A fake /proc: we are 10 with one child 11; NVML lists host PIDs that are not visible here.
  const parents = new Map([
    [1, 0],
    [10, 1],
    [11, 10],
  ]);
  const table = { parentOf: (p: number) => parents.get(p), nameOf: () => null, pids: () => parents.keys() };
  const listed = (n: number): Array<{ gpuUuid: string; pid: number; kind: string; usedMemoryMiB: null }> =>
    Array.from({ length: n }, (_, i) => ({ gpuUuid: 'GPU-a', pid: 90_000 + i, kind: 'compute', usedMemoryMiB: null }));
  assert.deepEqual(classifyProcesses(listed(2), table, 10), { own: 0, foreign: [], unverified: 2 });
  const three = classifyProcesses(listed(3), table, 10);
  assert.equal(three.unverified, 2);
  assert.deepEqual(
    three.foreign.map((f) => f.pid),
    [90_002],
  );
});
