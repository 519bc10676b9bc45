import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { barChart, lineChart, ticks } from '../../../report/svg.ts';
import { timeseriesCsv } from '../../../report/csv.ts';

describe('report charts and CSV', () => {
  it('chooses axis ticks that cover the whole data range', () => {
    for (const [lo, hi] of [
      [0, 1.7592],
      [40, 77],
      [0, 0.001],
      [-3, 12],
    ] as const) {
      const t = ticks(lo, hi);
      assert.ok((t[0] ?? Infinity) <= lo && (t[t.length - 1] ?? -Infinity) >= hi, `${lo}..${hi} -> ${t.join(',')}`);
    }
  });

  it('draws one bar with a CI whisker per configuration and says so when there is no data', () => {
    const svg = barChart(
      [
        { label: 'a', value: 1, low: 0.9, high: 1.1 },
        { label: 'b<c', value: 2, low: null, high: null },
      ],
      { title: 'T', xLabel: 'x', yLabel: 'y' },
    );
    assert.equal((svg.match(/<rect /g) ?? []).length, 2);
    assert.equal((svg.match(/<path /g) ?? []).length, 1);
    assert.match(svg, /b&lt;c/);
    assert.match(barChart([], { title: 'T', xLabel: 'x', yLabel: 'y' }), /no data/);
    assert.match(
      lineChart(
        [
          {
            label: 's',
            points: [
              [0, 1],
              [1, 2],
            ],
          },
        ],
        { title: 'T', xLabel: 'x', yLabel: 'y' },
        [{ start: 0, end: 1, label: 'w' }],
      ),
      /<title>w<\/title>/,
    );
  });

  it('leaves out points and bands without a finite time or value instead of drawing NaN', () => {
    const svg = lineChart(
      [
        {
          label: 's',
          points: [
            [0, 1],
            [Number.NaN, 2],
            [2, Number.POSITIVE_INFINITY],
            [3, 4],
          ],
        },
      ],
      { title: 'T', xLabel: 'x', yLabel: 'y' },
      [{ start: Number.NaN, end: 1, label: 'bad band' }],
    );
    assert.doesNotMatch(svg, /NaN|Infinity/);
    assert.doesNotMatch(svg, /bad band/);
    assert.equal((svg.match(/<path d="M[^"]*"/g) ?? [])[0]?.split('L').length, 2, 'two finite points drawn');
  });

  it('quotes CSV cells that hold commas and leaves unknown values empty', () => {
    const csv = timeseriesCsv([
      { tMs: 1, runId: 'r,1', replica: 0, gpuUuid: 'GPU-x', powerWatts: null, energyMillijoules: 5 },
    ]);
    assert.equal(
      csv,
      't_ms,run_id,replica,gpu_uuid,power_w,energy_mj,sm_clock_min_mhz,temperature_max_c,throttle_reasons\n1,"r,1",0,GPU-x,,5,,,\n',
    );
  });

  it('keeps SM clock, temperature and throttle reasons, by name, in the time series', () => {
    const csv = timeseriesCsv([
      {
        tMs: 1,
        runId: 'r',
        replica: 0,
        gpuUuid: 'GPU-x',
        powerWatts: 300,
        energyMillijoules: 5,
        smClockMinMhz: 1410,
        temperatureMaxC: 88,
        throttleReasons: 0x20 | 0x4,
      },
    ]);
    assert.equal(csv.split('\n')[1], '1,r,0,GPU-x,300,5,1410,88,sw_power_cap|sw_thermal');
  });
});
