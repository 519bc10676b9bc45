import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectVisibleDevices } from '../../../agent/telemetry/visible-devices.ts';

const all = [
  { index: 0, uuid: 'GPU-aaaa1111-0000' },
  { index: 1, uuid: 'GPU-bbbb2222-0000' },
  { index: 2, uuid: 'GPU-cccc3333-0000' },
];
const uuids = (env: Parameters<typeof selectVisibleDevices>[1]): string[] =>
  selectVisibleDevices(all, env).map((d) => d.uuid);

void test('every GPU is visible when neither variable is set', () => {
  assert.deepEqual(
    uuids({}),
    all.map((d) => d.uuid),
  );
});

void test('CUDA_VISIBLE_DEVICES indices select and order GPUs', () => {
  assert.deepEqual(uuids({ cudaVisibleDevices: '2,0' }), ['GPU-cccc3333-0000', 'GPU-aaaa1111-0000']);
});

void test('CUDA_VISIBLE_DEVICES accepts full and unique-prefix UUIDs', () => {
  assert.deepEqual(uuids({ cudaVisibleDevices: 'GPU-bbbb2222-0000,GPU-cccc' }), [
    'GPU-bbbb2222-0000',
    'GPU-cccc3333-0000',
  ]);
});

void test('CUDA_VISIBLE_DEVICES stops at the first entry naming no device, like CUDA', () => {
  assert.deepEqual(uuids({ cudaVisibleDevices: '1,7,0' }), ['GPU-bbbb2222-0000']);
  assert.deepEqual(uuids({ cudaVisibleDevices: '' }), []);
});

void test('NVIDIA_VISIBLE_DEVICES none or void hides every GPU', () => {
  assert.deepEqual(uuids({ nvidiaVisibleDevices: 'none' }), []);
  assert.deepEqual(uuids({ nvidiaVisibleDevices: 'void' }), []);
});

void test('NVIDIA_VISIBLE_DEVICES UUIDs filter, and CUDA indices then index what remains', () => {
  const env = { nvidiaVisibleDevices: 'GPU-cccc3333-0000,GPU-bbbb2222-0000', cudaVisibleDevices: '1' };
  assert.deepEqual(uuids(env), ['GPU-cccc3333-0000']);
});

void test('numeric NVIDIA_VISIBLE_DEVICES is left to the container runtime', () => {
  assert.deepEqual(uuids({ nvidiaVisibleDevices: '0,1' }).length, 3);
  assert.deepEqual(uuids({ nvidiaVisibleDevices: 'all' }).length, 3);
});
