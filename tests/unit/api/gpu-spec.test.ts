// spec.gpu (issue #21): sweepable, in the config hash, validated by the schema.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { at, validManifest } from './fixtures.ts';

function validate(edit: (spec: Record<string, unknown>) => void) {
  const m = validManifest();
  edit(at(m, 'spec'));
  return validateEnergyExperiment(m);
}

describe('spec.gpu', () => {
  it('sweeps gpu.powerLimitWatts and gpu.smClockMHz as axes, each value its own configuration and hash', () => {
    const v = validate((s) => {
      s['sweep'] = { axes: { 'gpu.powerLimitWatts': [700, 500, 350, 250] }, points: [{ 'gpu.smClockMHz': 1410 }] };
    });
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.matrix.configurations.length, 5);
    assert.equal(new Set(v.matrix.configurations.map((c) => c.configHash)).size, 5);
    assert.deepEqual(
      v.matrix.configurations.map((c) => c.gpu),
      [
        { powerLimitWatts: 700 },
        { powerLimitWatts: 500 },
        { powerLimitWatts: 350 },
        { powerLimitWatts: 250 },
        { smClockMHz: { min: 1410, max: 1410 } },
      ],
    );
  });

  it('keeps the hash of a configuration without GPU settings as it was, and lets the permission flag change nothing', () => {
    const plain = validate(() => undefined);
    const allowed = validate((s) => {
      s['gpu'] = { allowDeviceControl: true };
    });
    assert.ok(plain.ok && allowed.ok);
    assert.equal(plain.matrix.configurations[0]?.configHash, allowed.matrix.configurations[0]?.configHash);
    const capped = validate((s) => {
      s['gpu'] = { powerLimitWatts: 300 };
    });
    assert.ok(capped.ok);
    assert.notEqual(capped.matrix.configurations[0]?.configHash, plain.matrix.configurations[0]?.configHash);
  });

  it('takes a locked range and refuses a range whose upper end is below its lower end, naming the field', () => {
    const ok = validate((s) => {
      s['gpu'] = { smClockMHz: 1200, smClockMaxMHz: 1600, memClockMHz: 2619 };
    });
    assert.ok(ok.ok);
    assert.deepEqual(ok.matrix.configurations[0]?.gpu, {
      smClockMHz: { min: 1200, max: 1600 },
      memClockMHz: { min: 2619, max: 2619 },
    });
    const bad = validate((s) => {
      s['gpu'] = { smClockMHz: 1600, smClockMaxMHz: 1200 };
    });
    assert.equal(bad.ok, false);
    assert.match(JSON.stringify(bad.ok ? [] : bad.issues), /spec\.gpu\.smClockMaxMHz.*must be >= smClockMHz \(1600\)/);
  });

  it('refuses impossible values in a swept axis with the axis position, and typos in gpu fields', () => {
    const bad = validate((s) => {
      s['sweep'] = { axes: { 'gpu.powerLimitWatts': [300, 7000, -5] } };
    });
    assert.equal(bad.ok, false);
    const text = JSON.stringify(bad.ok ? [] : bad.issues);
    assert.match(text, /gpu\.powerLimitWatts\]\[1\]/);
    assert.match(text, /gpu\.powerLimitWatts\]\[2\]/);
    const typo = validate((s) => {
      s['gpu'] = { powerLimitWats: 300 };
    });
    assert.equal(typo.ok, false);
    assert.match(JSON.stringify(typo.ok ? [] : typo.issues), /powerLimitWats/);
  });
});
