import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hrTime } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { DataPointType, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import { Counter, Gauge, Histogram as PromHistogram, Registry } from 'prom-client';
import { ControllerMetrics } from '../../../controller/metrics.ts';
import { exportPrometheusRegistry, telemetryEnabled } from '../../../lib/telemetry/index.ts';
import { promMetricProducer } from '../../../lib/telemetry/prom-bridge.ts';

async function collect(registry: Registry): Promise<MetricData[]> {
  const producer = promMetricProducer(resourceFromAttributes({ 'service.name': 't' }), () => [
    { registry, since: hrTime() },
  ]);
  const result = await producer.collect();
  assert.deepEqual(result.errors, []);
  return result.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
}

describe('prom-client registries over OTLP (the metric producer)', () => {
  it('turns counters into monotonic sums and gauges into gauges, with the same names, labels and values', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'llem_things_total', help: 'things', labelNames: ['result'], registers: [registry] });
    const g = new Gauge({ name: 'llem_lag_seconds', help: 'lag', registers: [registry] });
    c.inc({ result: 'success' }, 3);
    c.inc({ result: 'error' });
    g.set(2.5);
    const byName = new Map((await collect(registry)).map((m) => [m.descriptor.name, m]));
    const sum = byName.get('llem_things_total');
    assert.equal(sum?.dataPointType, DataPointType.SUM);
    assert.equal(sum.dataPointType === DataPointType.SUM && sum.isMonotonic, true);
    assert.deepEqual(sum.dataPoints.map((p) => [p.attributes['result'], p.value]).sort(), [
      ['error', 1],
      ['success', 3],
    ]);
    const gauge = byName.get('llem_lag_seconds');
    assert.equal(gauge?.dataPointType, DataPointType.GAUGE);
    assert.equal(gauge.descriptor.unit, 's');
    assert.equal(gauge.dataPoints[0]?.value, 2.5);
  });

  it('turns cumulative Prometheus buckets into per-bucket counts, one point per label set', async () => {
    const registry = new Registry();
    const h = new PromHistogram({
      name: 'llem_d_seconds',
      help: 'd',
      labelNames: ['k'],
      buckets: [0.1, 1, 10],
      registers: [registry],
    });
    for (const v of [0.05, 0.5, 0.7, 5, 50, 500]) h.observe({ k: 'a' }, v);
    h.observe({ k: 'b' }, 0.2);
    const [m] = await collect(registry);
    assert.equal(m?.dataPointType, DataPointType.HISTOGRAM);
    const points = new Map(m.dataPoints.map((p) => [p.attributes['k'], p.value as Histogram]));
    assert.deepEqual(points.get('a')?.buckets, { boundaries: [0.1, 1, 10], counts: [1, 2, 1, 2] });
    assert.equal(points.get('a')?.count, 6);
    assert.ok(Math.abs((points.get('a')?.sum ?? 0) - 556.25) < 1e-9);
    assert.deepEqual(points.get('b')?.buckets, { boundaries: [0.1, 1, 10], counts: [0, 1, 0, 0] });
  });

  it('sends no series without a value, and every controller metric with a value goes out under its own name', async () => {
    const metrics = new ControllerMetrics();
    metrics.reconciles.inc({ result: 'success' });
    metrics.reconcileDuration.observe(0.01);
    const names = (await collect(metrics.registry)).map((m) => m.descriptor.name);
    assert.ok(
      names.includes('llem_reconcile_total') &&
        names.includes('llem_reconcile_duration_seconds') &&
        names.includes('llem_pods_created_total'),
    );
    // Labelled metrics nobody set yet (run failures by reason) have no series: nothing to send.
    assert.ok(!names.includes('llem_run_failures_total'));
  });

  it('costs nothing while telemetry is off: the registry is not taken', () => {
    assert.equal(telemetryEnabled(), false);
    assert.equal(exportPrometheusRegistry(new Registry()), false);
  });
});
