// The Grafana dashboard shipped by the chart: it queries only metrics the controller exports and
// has a panel for each thing an operator watches.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { baseMetricName, metricNames } from './promql.ts';

const REPO = resolve(import.meta.dirname, '..', '..', '..');
const DASHBOARD = join(REPO, 'helm', 'llem', 'dashboards', 'llem.json');
const CONTROLLER_METRICS = join(REPO, 'controller', 'metrics.ts');

interface Target {
  expr?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
  datasource?: { uid?: string };
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

function queries(): string[] {
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    // label_values(<series selector>, <label>): only the selector names a metric.
    exprs.push(q.replace(/^label_values\((.*),\s*\w+\)$/, '$1'));
  }
  return exprs.filter((e) => e.length > 0);
}

/** The metric names the controller registers: controller/metrics.ts exports CONTROLLER_METRICS. */
async function exportedMetricNames(): Promise<Set<string> | null> {
  if (!existsSync(CONTROLLER_METRICS)) return null;
  const mod = (await import(pathToFileURL(CONTROLLER_METRICS).href)) as {
    CONTROLLER_METRICS?: readonly { name: string }[];
  };
  if (mod.CONTROLLER_METRICS === undefined)
    throw new Error('controller/metrics.ts must export CONTROLLER_METRICS (every metric it registers)');
  return new Set(mod.CONTROLLER_METRICS.map((m) => m.name));
}

void describe('Grafana dashboard', () => {
  void test('every panel query names at least one llem metric and nothing else', () => {
    for (const expr of queries()) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `no metric found in ${expr}`);
      for (const n of names) assert.match(n, /^llem_[a-z0-9_]+$/, `${n} (in ${expr}) is not an llem metric`);
    }
  });

  void test('there is a panel for J/token, tokens/J, power, progress, reconcile errors, queue depth and aggregator lag', () => {
    const titles = panels.map((p) => p.title.toLowerCase());
    for (const want of [
      /j\/token/,
      /tokens per joule/,
      /power/,
      /runs by phase|runs finished/,
      /reconcile errors/,
      /queue depth/,
      /aggregator lag/,
    ]) {
      assert.ok(
        titles.some((t) => want.test(t)),
        `no panel title matches ${want}: ${titles.join(' | ')}`,
      );
    }
  });

  void test("panel ids are unique and every query panel uses the dashboard's datasource variable", () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of panels.filter((x) => x.type !== 'row')) assert.equal(p.datasource?.uid, '${datasource}', p.title);
  });

  void test('the PromQL reader finds metric names and skips functions, labels, durations and groupings', () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{job="x", le!="+Inf"}[5m]))) / on(ns) group_left b_total',
      ),
      ['a_seconds_bucket', 'b_total'],
    );
    assert.deepEqual(metricNames('sum(x{state="succeeded"}) / sum(y)'), ['x', 'y']);
    assert.equal(baseMetricName('h_seconds_bucket', new Set(['h_seconds'])), 'h_seconds');
    assert.equal(baseMetricName('c_count', new Set(['c_count'])), 'c_count');
  });

  void test('the controller exports every metric the dashboard queries', async (t) => {
    const exported = await exportedMetricNames();
    if (exported === null) {
      t.skip('controller/metrics.ts is not there yet');
      return;
    }
    const missing = new Set<string>();
    for (const expr of queries()) {
      for (const n of metricNames(expr)) if (!exported.has(baseMetricName(n, exported))) missing.add(n);
    }
    assert.deepEqual(
      [...missing].sort(),
      [],
      'the dashboard queries metrics that controller/metrics.ts CONTROLLER_METRICS does not list',
    );
  });
});
