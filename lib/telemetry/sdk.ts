// The OpenTelemetry SDK, loaded only when telemetry is on (lib/telemetry/index.ts imports this file
// dynamically), so `llem` without OTEL_* variables never pays for loading it.
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, hrTime, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { TelemetrySettings } from './env.ts';
import { promMetricProducer, type PromRegistry } from './prom-bridge.ts';

export interface LoadedSdk {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
  /** Exports a prom-client registry's metrics over OTLP too, read at each export (false: metrics are off). */
  addPromRegistry(registry: PromRegistry): boolean;
}

function samplerFor(s: TelemetrySettings['sampler']): Sampler {
  const root = s.name.endsWith('always_off')
    ? new AlwaysOffSampler()
    : s.name.endsWith('traceidratio')
      ? new TraceIdRatioBasedSampler(s.ratio)
      : new AlwaysOnSampler();
  return s.name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root;
}

async function spanExporter(protocol: string): Promise<SpanExporter> {
  if (protocol === 'http/json')
    return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
}

async function metricExporter(protocol: string): Promise<PushMetricExporter> {
  if (protocol === 'http/json')
    return new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter();
  return new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter();
}

/** Registers the global tracer/meter providers, W3C propagators and the async context manager. */
export async function loadSdk(settings: TelemetrySettings, serviceName: string): Promise<LoadedSdk> {
  // OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (env detector) override the process's default name.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  let tracer: TracerProvider | null = null;
  if (settings.traces !== null) {
    const processor = new BatchSpanProcessor({
      exporter: await spanExporter(settings.traces.protocol),
      scheduledDelayMillis: settings.spanDelayMs,
    });
    tracer = new TracerProvider({ resource, sampler: samplerFor(settings.sampler), spanProcessors: [processor] });
    trace.setGlobalTracerProvider(tracer);
  }
  let meter: MeterProvider | null = null;
  const registries: { registry: PromRegistry; since: ReturnType<typeof hrTime> }[] = [];
  if (settings.metrics !== null) {
    const reader = new PeriodicExportingMetricReader({
      exporter: await metricExporter(settings.metrics.protocol),
      exportIntervalMillis: settings.metrics.exportIntervalMs,
      metricProducers: [promMetricProducer(resource, () => registries)],
    });
    meter = new MeterProvider({ resource, readers: [reader] });
    metrics.setGlobalMeterProvider(meter);
  }
  return {
    addPromRegistry: (registry) => {
      if (meter === null) return false;
      if (!registries.some((r) => r.registry === registry)) registries.push({ registry, since: hrTime() });
      return true;
    },
    forceFlush: async () => {
      await Promise.all([tracer?.forceFlush(), meter?.forceFlush()]);
    },
    shutdown: async () => {
      await Promise.all([tracer?.shutdown(), meter?.shutdown()]);
    },
  };
}
