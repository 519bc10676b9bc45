// prom-client registries exported over OTLP with the same metric names (ADR 0018): a MetricProducer
// the SDK's metric reader calls at each export, reading the registries' current values then. Nothing
// is recorded twice and nothing runs between exports; loaded only with the SDK (telemetry on).
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type DataPoint,
  type Histogram,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';

/** What prom-client's `Registry.getMetricsAsJSON()` gives, as far as the bridge reads it. */
interface PromValue {
  value: number;
  labels: Record<string, string | number | undefined>;
  metricName?: string;
}
interface PromMetric {
  name: string;
  help: string;
  type: string;
  values: PromValue[];
}
/** A prom-client Registry (structurally: lib/ does not depend on prom-client). */
export interface PromRegistry {
  getMetricsAsJSON(): Promise<unknown[]>;
}

/** UCUM unit from the Prometheus name's unit suffix (llem's names always end in their unit when they have one). */
function unitOf(name: string): string {
  const suffix = /_(seconds|joules|watts|bytes)(?:_total)?$/.exec(name)?.[1];
  const units: Record<string, string> = { seconds: 's', joules: 'J', watts: 'W', bytes: 'By' };
  return suffix === undefined ? '' : (units[suffix] ?? '');
}

function attributesOf(labels: Record<string, string | number | undefined>, drop?: string): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(labels)) if (k !== drop && v !== undefined) out[k] = String(v);
  return out;
}

/** One OTLP histogram point per label set: Prometheus' cumulative `le` buckets become per-bucket counts. */
function histogramPoints(m: PromMetric, start: HrTime, end: HrTime): DataPoint<Histogram>[] {
  const series = new Map<string, { attributes: Attributes; le: [number, number][]; sum: number; count: number }>();
  for (const v of m.values) {
    const attributes = attributesOf(v.labels, 'le');
    const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b)));
    const s = series.get(key) ?? { attributes, le: [], sum: 0, count: 0 };
    series.set(key, s);
    if (v.metricName === `${m.name}_bucket`) s.le.push([Number(v.labels['le']), v.value]);
    else if (v.metricName === `${m.name}_sum`) s.sum = v.value;
    else if (v.metricName === `${m.name}_count`) s.count = v.value;
  }
  return [...series.values()].map((s) => {
    const sorted = s.le.sort((a, b) => a[0] - b[0]);
    const boundaries = sorted.filter(([le]) => Number.isFinite(le)).map(([le]) => le);
    // counts[i] = observations in (boundaries[i-1], boundaries[i]]; the last one is above every boundary.
    const cumulative = [...boundaries.map((_, i) => sorted[i]?.[1] ?? 0), s.count];
    const counts = cumulative.map((c, i) => c - (i === 0 ? 0 : (cumulative[i - 1] ?? 0)));
    const value = { buckets: { boundaries, counts }, sum: s.sum, count: s.count };
    return { startTime: start, endTime: end, attributes: s.attributes, value };
  });
}

function metricData(m: PromMetric, start: HrTime, end: HrTime): MetricData | null {
  const descriptor = { name: m.name, description: m.help, unit: unitOf(m.name), valueType: ValueType.DOUBLE };
  const points = (from: HrTime): DataPoint<number>[] =>
    m.values.map((v) => ({ startTime: from, endTime: end, attributes: attributesOf(v.labels), value: v.value }));
  const base = { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE };
  switch (String(m.type)) {
    case 'counter':
      return { ...base, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: points(start) };
    case 'gauge':
      return { ...base, dataPointType: DataPointType.GAUGE, dataPoints: points(end) };
    case 'histogram':
      return { ...base, dataPointType: DataPointType.HISTOGRAM, dataPoints: histogramPoints(m, start, end) };
    default:
      // Summaries have no OTLP equivalent that keeps their quantiles; llem defines none.
      return null;
  }
}

/**
 * The registries' metrics as one OTLP scope, read at each collection. Counters are cumulative since
 * the registry was added (prom-client counters never reset), gauges are the value at collection time,
 * histograms keep their Prometheus bucket boundaries. Series without a value yet are not sent.
 */
export function promMetricProducer(
  resource: Resource,
  registries: () => readonly { registry: PromRegistry; since: HrTime }[],
): MetricProducer {
  return {
    collect: async (): Promise<CollectionResult> => {
      const end = hrTime();
      const metrics: MetricData[] = [];
      const errors: unknown[] = [];
      for (const { registry, since } of registries()) {
        try {
          for (const m of (await registry.getMetricsAsJSON()) as PromMetric[]) {
            const data = metricData(m, since, end);
            if (data !== null && data.dataPoints.length > 0) metrics.push(data);
          }
        } catch (err) {
          errors.push(err);
        }
      }
      const scopeMetrics = metrics.length === 0 ? [] : [{ scope: { name: 'llem.prometheus' }, metrics }];
      return { resourceMetrics: { resource, scopeMetrics }, errors };
    },
  };
}
