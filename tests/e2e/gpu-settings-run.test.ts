// `llem run --simulate` with spec.gpu (issue #21, ADR 0024): the fake NVML keeps its device state in
// a file (LLEM_SIMULATED_GPU_STATE) so it outlives a killed run, as a real GPU's does. Every exit
// path leaves the GPU as it was: success, SIGTERM, and SIGKILL followed by the next llem run.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, runLlem, startLlem } from './llem-process.ts';

const CAPS = join(REPO, 'tests/fixtures/local/gpu-caps.yaml');

function setup(): { out: string; state: string; markers: string; env: NodeJS.ProcessEnv } {
  const d = mkdtempSync(join(tmpdir(), 'llem-gpu-run-'));
  const state = join(d, 'gpu.json');
  const markers = join(d, 'markers');
  return {
    out: join(d, 'results'),
    state,
    markers,
    env: { LLEM_SIMULATED_GPU_STATE: state, LLEM_GPU_STATE_DIR: markers },
  };
}

function device(state: string): { powerLimitMw: number; smLocked: unknown } {
  return (JSON.parse(readFileSync(state, 'utf8')) as Array<{ powerLimitMw: number; smLocked: unknown }>)[0] as {
    powerLimitMw: number;
    smLocked: unknown;
  };
}

interface Doc {
  simulated: boolean;
  results: {
    runs: Array<{
      status: string;
      metrics: { meanPowerWatts: number | null };
      gpuSettings: Array<{ requested: { powerLimitWatts?: number }; effective: { enforcedPowerLimitWatts: number } }>;
    }>;
  };
}

describe('llem run with GPU settings on the simulated GPU', { timeout: 300_000 }, () => {
  it('applies each configuration, records requested vs effective, obeys the cap, and restores at the end', async () => {
    const s = setup();
    const r = await runLlem(['run', CAPS, '--simulate', '--out', s.out], s.env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(device(s.state).powerLimitMw, 700_000);
    assert.equal(device(s.state).smLocked, null);
    assert.deepEqual(readdirSync(s.markers), []);
    const doc = JSON.parse(readFileSync(join(s.out, 'experiment.json'), 'utf8')) as Doc;
    assert.equal(doc.simulated, true);
    const capped = doc.results.runs.filter((x) => x.gpuSettings[0]?.requested.powerLimitWatts === 250);
    assert.equal(capped.length, 2);
    for (const run of capped) {
      assert.equal(run.gpuSettings[0]?.effective.enforcedPowerLimitWatts, 250);
      assert.ok(
        (run.metrics.meanPowerWatts ?? 999) <= 250,
        `mean power ${run.metrics.meanPowerWatts} under a 250 W cap`,
      );
    }
    const show = await runLlem(['results', 'show', s.out]);
    assert.match(show.stdout, /against the GPU power cap \/ clock/);
    assert.match(show.stdout, /cap 250 W .*\[/);
    assert.match(show.stdout, /SM 1200 MHz/);
    assert.match(readFileSync(join(s.out, 'report.html'), 'utf8'), /Against the power cap \/ clock/);
    const compare = await runLlem(['results', 'compare', s.out, s.out]);
    assert.equal(compare.code, 0, compare.stderr);
    assert.match(compare.stdout, /^A:\s*$[\s\S]*cap 700 W[\s\S]*cap 250 W[\s\S]*^B:/m);
    assert.match(compare.stdout, /tokens\/s .*p99 ITL ms/);
  });

  it('restores the GPU when llem run is stopped with SIGTERM mid-window', async () => {
    const s = setup();
    const p = startLlem(['run', CAPS, '--simulate', '--out', s.out], { ...s.env, LLEM_LOG_LEVEL: 'info' });
    await p.waitFor(/run 2\/6 .* started/);
    await p.waitFor(/"phase":"measuring"[\s\S]*"phase":"measuring"/);
    assert.equal(device(s.state).powerLimitMw, 250_000, 'the second configuration is capped while it runs');
    p.child.kill('SIGTERM');
    const done = await p.done;
    assert.equal(done.code, 130, done.stderr);
    assert.equal(device(s.state).powerLimitMw, 700_000);
    assert.deepEqual(readdirSync(s.markers), []);
  });

  it('after SIGKILL mid-window the cap stays with a marker, and the next llem run restores it before anything else', async () => {
    const s = setup();
    const p = startLlem(['run', CAPS, '--simulate', '--out', s.out], { ...s.env, LLEM_LOG_LEVEL: 'info' });
    await p.waitFor(/run 2\/6 .* started/);
    await p.waitFor(/"phase":"measuring"[\s\S]*"phase":"measuring"/);
    p.child.kill('SIGKILL');
    await p.done;
    assert.equal(device(s.state).powerLimitMw, 250_000, 'nothing ran at SIGKILL');
    assert.equal(readdirSync(s.markers).length, 1);
    const again = await runLlem(['run', CAPS, '--simulate', '--out', s.out], s.env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stderr,
      new RegExp(`restored GPU GPU-simulated-0000 left by PID ${String(p.child.pid)}.*power limit 700 W`),
    );
    assert.equal(device(s.state).powerLimitMw, 700_000);
    assert.equal(existsSync(s.markers) ? readdirSync(s.markers).length : 0, 0);
  });

  it('refuses a cap outside the device range with exit 2 naming the field, before any run or results file', async () => {
    const s = setup();
    const r = await runLlem(
      ['run', join(REPO, 'tests/fixtures/local/gpu-caps-out-of-range.yaml'), '--simulate', '--out', s.out],
      s.env,
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /spec\.gpu \(configuration pytorch-[0-9a-f]+\): gpu\.powerLimitWatts: 150 W is outside .* 200-700 W/,
    );
    assert.equal(existsSync(join(s.out, 'experiment.json')), false);
    assert.equal(existsSync(join(s.out, '.llem', 'state.json')), false, 'nothing half-written');
  });

  it('refuses with exit 2 when the (fake) driver denies the privilege', async () => {
    const s = setup();
    const r = await runLlem(['run', CAPS, '--simulate', '--out', s.out], {
      ...s.env,
      LLEM_SIMULATED_GPU_PERMITTED: '0',
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /spec\.gpu: changing GPU GPU-simulated-0000's settings needs root \(or CAP_SYS_ADMIN\)/);
    assert.equal(existsSync(join(s.out, 'experiment.json')), false);
  });
});
