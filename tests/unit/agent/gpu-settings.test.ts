// GPU settings (issue #21, ADR 0024) against a fake NVML: apply, read back, restore on every exit
// path (success, failure mid-apply, process exit, uncaught error, SIGKILL + marker), refusal when
// not permitted or not privileged, and validation against the device's constraints.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeNvml } from '../../../agent/gpu-control/fake-nvml.ts';
import { constraintProblems, GpuSettingsSession, restoreFromMarkers } from '../../../agent/gpu-control/gpu-settings.ts';
import { applyRunGpuSettings } from '../../../agent/gpu-control/run-settings.ts';
import { parseAgentConfig } from '../../../agent/config.ts';
import { GpuSettingsError, GpuSettingsRefusedError } from '../../../lib/errors.ts';
import { rootLogger } from '../../../lib/log.ts';

const U = 'GPU-fake-0';
const dir = (): string => mkdtempSync(join(tmpdir(), 'llem-gpu-settings-'));

describe('GPU settings against a fake NVML', () => {
  it('applies a power cap and an SM lock, reads back effective and enforced values, and restores both', () => {
    const api = new FakeNvml({ uuids: [U] });
    const markerDir = dir();
    const s = GpuSettingsSession.apply(
      api,
      [U],
      { powerLimitWatts: 350, smClockMHz: { min: 1400, max: 1400 } },
      { markerDir },
    );
    assert.equal(api.device(U)?.powerLimitMw, 350_000);
    assert.deepEqual(api.device(U)?.smLocked, { min: 1400, max: 1400 });
    const a = s.applied[0];
    assert.equal(a?.previous.powerLimitWatts, 700);
    assert.equal(a?.effective.powerLimitWatts, 350);
    assert.equal(a?.effective.enforcedPowerLimitWatts, 350);
    // 1400 is not an H100 clock step (1980 - 15k): the driver snaps it, and the result says so.
    assert.deepEqual(a?.effective.smClockMHz, { min: 1395, max: 1395 });
    assert.match(a?.notes.join(' ') ?? '', /snaps to supported 1395-1395/);
    assert.equal(readdirSync(markerDir).length, 1, 'a marker while settings are applied');
    s.restore();
    assert.equal(api.device(U)?.powerLimitMw, 700_000);
    assert.equal(api.device(U)?.smLocked, null);
    assert.deepEqual(readdirSync(markerDir), [], 'the marker goes with a complete restore');
    s.restore(); // idempotent
    assert.equal(api.calls.filter((c) => c.startsWith('setPowerLimit')).length, 2);
  });

  it('restores the exact previous limit, not the default, when someone had set another', () => {
    const api = new FakeNvml({ uuids: [U] });
    assert.equal(api.setPowerLimitMw(U, 600_000), 0);
    const s = GpuSettingsSession.apply(api, [U], { powerLimitWatts: 300 }, { markerDir: dir() });
    s.restore();
    assert.equal(api.device(U)?.powerLimitMw, 600_000);
  });

  it('refuses values outside the device constraints before changing anything, naming the field and the range', () => {
    const api = new FakeNvml({ uuids: [U] });
    const cases = [
      [{ powerLimitWatts: 150 }, /gpu\.powerLimitWatts: 150 W is outside GPU-fake-0's range 200-700 W/],
      [{ powerLimitWatts: 701 }, /outside GPU-fake-0's range 200-700 W/],
      [{ smClockMHz: { min: 100, max: 100 } }, /gpu\.smClockMHz: 100 MHz is outside .* 210-1980 MHz/],
      [{ memClockMHz: { min: 2619, max: 9000 } }, /gpu\.memClockMHz: 2619-9000 MHz/],
    ] as const;
    for (const [req, message] of cases) {
      assert.match(constraintProblems(api, [U], req).join('\n'), message);
      assert.throws(
        () => GpuSettingsSession.apply(api, [U], req, { markerDir: dir() }),
        (e: unknown) => e instanceof GpuSettingsRefusedError && e.exitCode === 2 && message.test(e.message),
      );
    }
    assert.deepEqual(api.calls, [], 'no set call was made');
    assert.deepEqual(constraintProblems(api, [U], { powerLimitWatts: 200, smClockMHz: { min: 210, max: 1980 } }), []);
  });

  it('refuses with exit 2 when NVML says the process lacks the privilege, and leaves no marker or change behind', () => {
    const api = new FakeNvml({ uuids: [U], permitted: false });
    const markerDir = dir();
    assert.throws(
      () => GpuSettingsSession.apply(api, [U], { powerLimitWatts: 300 }, { markerDir }),
      (e: unknown) =>
        e instanceof GpuSettingsRefusedError && e.exitCode === 2 && /needs root \(or CAP_SYS_ADMIN\)/.test(e.message),
    );
    assert.equal(api.device(U)?.powerLimitMw, 700_000);
    assert.deepEqual(readdirSync(markerDir), [], 'nothing was changed, so nothing is left to restore');
  });

  it('refuses a setting the GPU does not support (locked memory clocks on an H100) with exit 2, undoing the rest', () => {
    const api = new FakeNvml({ uuids: [U] });
    api.setMemLockedClocks = (): number => 3; // NVML_ERROR_NOT_SUPPORTED
    assert.throws(
      () =>
        GpuSettingsSession.apply(
          api,
          [U],
          { powerLimitWatts: 300, memClockMHz: { min: 2619, max: 2619 } },
          { markerDir: dir() },
        ),
      (e: unknown) => e instanceof GpuSettingsRefusedError && e.exitCode === 2 && /does not support it/.test(e.message),
    );
    assert.equal(api.device(U)?.powerLimitMw, 700_000);
  });

  it('undoes the power cap already set when locking the clock then fails', () => {
    const api = new FakeNvml({ uuids: [U] });
    api.setSmLockedClocks = (): number => 999; // a driver error on the second setting
    const markerDir = dir();
    assert.throws(
      () =>
        GpuSettingsSession.apply(
          api,
          [U],
          { powerLimitWatts: 300, smClockMHz: { min: 1200, max: 1200 } },
          { markerDir },
        ),
      GpuSettingsError,
    );
    assert.equal(api.device(U)?.powerLimitMw, 700_000, 'the cap was restored');
    assert.deepEqual(readdirSync(markerDir), []);
  });

  it('refuses settings the runtime does not permit, naming the fields and what permits them', () => {
    const config = parseAgentConfig(
      { publisher: { namespace: 'n', experimentUid: 'u', runId: 'r' }, model: 'm', gpu: { powerLimitWatts: 300 } },
      'test',
    );
    const env = { source: 'simulated' as const, gpus: [], driverVersion: null, nvmlVersion: null, cudaVersion: null };
    const api = new FakeNvml({ uuids: [U] });
    assert.throws(
      () => applyRunGpuSettings(config, env, { api: () => api, markerDir: dir() }, rootLogger),
      (e: unknown) =>
        e instanceof GpuSettingsRefusedError &&
        e.exitCode === 2 &&
        /spec\.gpu\.powerLimitWatts set, but .*gpuControl\.enabled=true and spec\.gpu\.allowDeviceControl: true/.test(
          e.message,
        ),
    );
    assert.deepEqual(api.calls, []);
    const none = parseAgentConfig({ publisher: { namespace: 'n', experimentUid: 'u', runId: 'r' }, model: 'm' }, 't');
    assert.equal(applyRunGpuSettings(none, env, undefined, rootLogger), null, 'no settings: nothing needed');
  });
});

describe('GPU settings survive the agent dying', { timeout: 60_000 }, () => {
  const child = fileURLToPath(new URL('../../fixtures/gpu/apply-then.ts', import.meta.url));
  const start = (stateFile: string, markerDir: string, how: string) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, stateFile, markerDir, how], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const applied = new Promise<void>((resolve) =>
      p.stdout.on('data', (d: Buffer) => d.includes('applied') && resolve()),
    );
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    return { p, applied, exited };
  };
  const device = (stateFile: string) =>
    (JSON.parse(readFileSync(stateFile, 'utf8')) as Array<{ powerLimitMw: number; smLocked: unknown }>)[0];

  for (const how of ['exit', 'throw'] as const) {
    it(`restores in the exit hook when the process ends by ${how === 'exit' ? 'process.exit' : 'an uncaught error'}`, async () => {
      const d = dir();
      const c = start(join(d, 'gpu.json'), join(d, 'markers'), how);
      await c.applied;
      assert.notEqual(await c.exited, 0);
      assert.equal(device(join(d, 'gpu.json'))?.powerLimitMw, 700_000);
      assert.equal(device(join(d, 'gpu.json'))?.smLocked, null);
      assert.deepEqual(readdirSync(join(d, 'markers')), []);
    });
  }

  it('leaves a marker after SIGKILL, from which the next agent restores the previous values', async () => {
    const d = dir();
    const stateFile = join(d, 'gpu.json');
    const markerDir = join(d, 'markers');
    const c = start(stateFile, markerDir, 'hang');
    await c.applied;
    c.p.kill('SIGKILL');
    await c.exited;
    assert.equal(device(stateFile)?.powerLimitMw, 250_000, 'SIGKILL ran nothing: the cap is still on');
    assert.equal(readdirSync(markerDir).length, 1);
    const next = new FakeNvml({ uuids: [U], stateFile });
    const lines = restoreFromMarkers(next, markerDir, [U]);
    assert.match(
      lines.join('\n'),
      new RegExp(`restored GPU ${U} left by PID ${String(c.p.pid)}.*power limit 700 W, SM clocks unlocked`),
    );
    assert.equal(device(stateFile)?.powerLimitMw, 700_000);
    assert.equal(device(stateFile)?.smLocked, null);
    assert.equal(existsSync(join(markerDir, `${U}.json`)), false);
  });
});
