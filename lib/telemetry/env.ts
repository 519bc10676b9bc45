// Which OpenTelemetry settings this process runs with, from the standard OTEL_* variables only
// (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/), parsed once.
//
// Telemetry is OFF unless an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or a
// per-signal OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT): no SDK is loaded, no exporter exists.
// OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none plus OTEL_METRICS_EXPORTER=none, turn it off
// even then. Endpoint, headers, timeout and compression are read by the OTLP exporters themselves;
// service name and resource attributes by the resource's env detector.
import { z } from 'zod';
import { InvalidInputError } from '../errors.ts';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

export interface TelemetrySettings {
  traces: { protocol: OtlpProtocol } | null;
  metrics: { protocol: OtlpProtocol; exportIntervalMs: number } | null;
  sampler: { name: SamplerName; ratio: number };
  /** Batch span processor delay (OTEL_BSP_SCHEDULE_DELAY). */
  spanDelayMs: number;
}

const protocol = z.enum(['http/protobuf', 'http/json', 'grpc']).optional();
const exporter = z.enum(['otlp', 'none']).optional();
const ms = z.coerce.number().int().min(1).optional();

const EnvSchema = z.object({
  OTEL_SDK_DISABLED: z.enum(['true', 'false', 'TRUE', 'FALSE', '']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.string().optional(),
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: z.string().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol,
  OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: protocol,
  OTEL_TRACES_EXPORTER: exporter,
  OTEL_METRICS_EXPORTER: exporter,
  OTEL_TRACES_SAMPLER: z
    .enum([
      'always_on',
      'always_off',
      'traceidratio',
      'parentbased_always_on',
      'parentbased_always_off',
      'parentbased_traceidratio',
    ])
    .optional(),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
  OTEL_METRIC_EXPORT_INTERVAL: ms,
  OTEL_BSP_SCHEDULE_DELAY: ms,
});

const set = (v: string | undefined): boolean => v !== undefined && v.trim() !== '';

/** The variable a signal's protocol came from, for the error message. */
function protocolVariable(perSignal: string | undefined, signal: string): string {
  return perSignal === undefined ? 'OTEL_EXPORTER_OTLP_PROTOCOL' : `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`;
}

function signalProtocol(p: string | undefined, variable: string): OtlpProtocol {
  // Only the HTTP exporters are installed: gRPC would pull in @grpc/grpc-js for every agent pod.
  if (p === 'grpc') {
    throw new InvalidInputError([
      {
        file: 'environment',
        path: variable,
        message: 'grpc is not supported by llem; use http/protobuf (port 4318) or http/json',
      },
    ]);
  }
  return p === 'http/json' ? 'http/json' : 'http/protobuf';
}

/** Settings from `env`, or null when telemetry is off. Throws InvalidInputError (exit 2) on a bad value. */
export function telemetrySettings(env: NodeJS.ProcessEnv = process.env): TelemetrySettings | null {
  const picked = Object.fromEntries(
    Object.keys(EnvSchema.shape)
      .filter((k) => set(env[k]))
      .map((k) => [k, env[k]?.trim()]),
  );
  const parsed = EnvSchema.safeParse(picked);
  if (!parsed.success) {
    throw new InvalidInputError(
      parsed.error.issues.map((i) => ({
        file: 'environment',
        path: String(i.path[0] ?? ''),
        message: `${i.message}; unset it or see docs/observability.md`,
      })),
    );
  }
  return fromParsed(parsed.data);
}

type Env = z.infer<typeof EnvSchema>;

/** Whether one signal exports: its exporter is not `none` and an endpoint (common or its own) is set. */
function signalOn(e: Env, signal: 'TRACES' | 'METRICS'): boolean {
  const exporterVar = e[`OTEL_${signal}_EXPORTER`];
  return (
    exporterVar !== 'none' && (set(e.OTEL_EXPORTER_OTLP_ENDPOINT) || set(e[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]))
  );
}

function protocolOf(e: Env, signal: 'TRACES' | 'METRICS'): OtlpProtocol {
  const own = e[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`];
  return signalProtocol(own ?? e.OTEL_EXPORTER_OTLP_PROTOCOL, protocolVariable(own, signal));
}

function fromParsed(e: Env): TelemetrySettings | null {
  if (e.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return null;
  const tracesOn = signalOn(e, 'TRACES');
  const metricsOn = signalOn(e, 'METRICS');
  if (!tracesOn && !metricsOn) return null;
  return {
    traces: tracesOn ? { protocol: protocolOf(e, 'TRACES') } : null,
    metrics: metricsOn
      ? { protocol: protocolOf(e, 'METRICS'), exportIntervalMs: e.OTEL_METRIC_EXPORT_INTERVAL ?? 60_000 }
      : null,
    sampler: { name: e.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on', ratio: e.OTEL_TRACES_SAMPLER_ARG ?? 1 },
    spanDelayMs: e.OTEL_BSP_SCHEDULE_DELAY ?? 5000,
  };
}
