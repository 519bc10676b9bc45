// The prefill/decode split from phase-separated runs, and the table against GPU settings (issue #21).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AggregateResults, RunResult } from '../../../aggregator/index.ts';
import { cycleStats } from '../../../aggregator/stats.ts';
import { gpuSettingsRows, PHASE_SPLIT_METHOD, phaseSplits } from '../../../report/gpu-analysis.ts';

const workload = (out: number) => ({
  dataset: {
    synthetic: {
      inputTokens: { distribution: 'fixed', mean: 256 },
      outputTokens: { distribution: 'fixed', mean: out },
    },
  },
  sampling: { temperature: 0 },
});

function run(configId: string, cycle: number, energy: number, input: number, output: number): RunResult {
  const requests = 10;
  return {
    runId: `${configId}-c${cycle}`,
    configId,
    cycle,
    status: 'complete',
    counts: { requestsOk: requests, requestsFailed: 0, inputTokens: input * requests, outputTokens: output * requests },
    metrics: { energyJoules: energy },
    gpuSettings: [],
  } as unknown as RunResult;
}

function results(runs: RunResult[]): AggregateResults {
  const ids = [...new Set(runs.map((r) => r.configId))];
  return {
    runs,
    configurations: ids.map((configId) => ({
      configId,
      runsIncluded: runs.filter((r) => r.configId === configId).map((r) => r.runId),
    })),
  } as unknown as AggregateResults;
}

describe('prefill/decode split', () => {
  it('pairs each full configuration with its outputTokens-1 twin by cycle and splits the energy per request', () => {
    const configs = [
      {
        id: 'full',
        configHash: 'a',
        backend: { type: 'pytorch' },
        workload: workload(128),
        point: { 'workload.dataset.synthetic.outputTokens': 128 },
      },
      {
        id: 'prefill',
        configHash: 'b',
        backend: { type: 'pytorch' },
        workload: workload(1),
        point: { 'workload.dataset.synthetic.outputTokens': 1 },
      },
    ];
    // Per request: prefill 2.56 J (0.01 J per input token); full pass adds 127 x 0.03 J.
    const runs = [0, 1, 2].flatMap((c) => [
      run('prefill', c, 10 * (2.56 + c * 0.01), 256, 1),
      run('full', c, 10 * (2.56 + c * 0.01 + 127 * 0.03), 256, 128),
    ]);
    const [s, ...rest] = phaseSplits(configs, results(runs));
    assert.equal(rest.length, 0, 'the prefill-only configuration is a twin, not a split of its own');
    assert.equal(s?.fullConfigId, 'full');
    assert.equal(s?.prefillConfigId, 'prefill');
    assert.deepEqual(s?.cycles, [0, 1, 2]);
    const jIn = cycleStats([0, 1, 2].map((c) => (2.56 + c * 0.01) / 256));
    assert.ok(Math.abs((s?.joulesPerInputToken.mean ?? 0) - (jIn.mean ?? 0)) < 1e-12);
    assert.ok(Math.abs((s?.joulesPerOutputToken.mean ?? 0) - 0.03) < 1e-12);
    assert.ok(s?.joulesPerInputToken.ci95Low !== null && s?.joulesPerInputToken.ci95High !== null);
    assert.match(PHASE_SPLIT_METHOD, /prefill-only pass .*max_tokens=1.*subtract|full minus prefill/);
  });

  it('does not pair configurations that differ in anything but the output length', () => {
    const other = {
      ...workload(1),
      dataset: {
        synthetic: {
          inputTokens: { distribution: 'fixed', mean: 2048 },
          outputTokens: { distribution: 'fixed', mean: 1 },
        },
      },
    };
    const configs = [
      { id: 'full', configHash: 'a', workload: workload(128) },
      { id: 'prefill-2k', configHash: 'b', workload: other },
    ];
    assert.deepEqual(
      phaseSplits(configs, results([run('full', 0, 10, 256, 128), run('prefill-2k', 0, 5, 2048, 1)])),
      [],
    );
  });

  it('gives a cycle without a prefill-only run no value, and says why', () => {
    const configs = [
      { id: 'full', configHash: 'a', workload: workload(128) },
      { id: 'prefill', configHash: 'b', workload: workload(1) },
    ];
    const [s] = phaseSplits(
      configs,
      results([run('full', 0, 40, 256, 128), run('full', 1, 40, 256, 128), run('prefill', 0, 25.6, 256, 1)]),
    );
    assert.equal(s?.joulesPerInputToken.n, 1);
    assert.match(s?.joulesPerInputToken.reason ?? '', /cycle 1: no complete prefill-only run/);
  });
});

describe('figures against GPU settings', () => {
  it('lists configurations whose runs applied settings, highest cap first, with the enforced limit read back', () => {
    const stats = cycleStats([1, 2, 3]);
    const mk = (id: string) => ({
      configId: id,
      runsIncluded: [`${id}-c0`],
      metrics: { meanPowerWatts: stats, joulesPerToken: stats, tokensPerSecond: stats },
      latency: { itlMs: { p99: stats } },
    });
    const applied = (id: string, watts: number, enforced: number) =>
      ({
        runId: `${id}-c0`,
        gpuSettings: [{ requested: { powerLimitWatts: watts }, effective: { enforcedPowerLimitWatts: enforced } }],
      }) as unknown as RunResult;
    const r = {
      configurations: [mk('low'), mk('none'), mk('high')],
      runs: [
        applied('low', 250, 250),
        { runId: 'none-c0', gpuSettings: [] } as unknown as RunResult,
        applied('high', 700, 700),
      ],
    } as unknown as AggregateResults;
    const rows = gpuSettingsRows(r, { low: 'pytorch gpu.powerLimitWatts=250' });
    assert.deepEqual(
      rows.map((x) => [x.configId, x.settings, x.enforcedPowerLimitWatts]),
      [
        ['high', 'cap 700 W', 700],
        ['low', 'cap 250 W', 250],
      ],
    );
    assert.equal(rows[1]?.label, 'pytorch gpu.powerLimitWatts=250');
  });
});
