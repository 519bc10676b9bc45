// OpenTelemetry for every llem process: traces and metrics over OTLP, configured only by OTEL_*
// variables (env.ts). Off by default: then only @opentelemetry/api's no-op tracer and meter exist,
// spans cost a few allocations and nothing is exported. The SDK itself is imported on demand.
//
//   await startTelemetry('llem-agent')       once, at process start (no-op when OTEL_* is unset)
//   await shutdownTelemetry()                before exit: flushes spans and metrics (bounded)
//   tracer().startActiveSpan(...)            spans; traceparentOf()/contextFromTraceparent() carry
//   natsTraceHeaders() / linkFromHeaders()   the trace over pod env and NATS headers (W3C)
import {
  context,
  metrics,
  propagation,
  trace,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Link,
  type Meter,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { createHash } from 'node:crypto';
import type { LoadedSdk } from './sdk.ts';
import type { PromRegistry } from './prom-bridge.ts';
import { telemetrySettings } from './env.ts';
import { InvalidInputError } from '../errors.ts';

export { telemetrySettings, type TelemetrySettings } from './env.ts';
export { context, trace, SpanStatusCode, type Attributes, type Context, type Span };

let sdk: LoadedSdk | null = null;

/** The OpenTelemetry SDK 3.x needs Node.js >= 22.15; the rest of llem runs on 20 (ADR 0015). */
function assertSdkNode(version: string): void {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 15)) return;
  throw new InvalidInputError([
    {
      file: 'environment',
      path: 'OTEL_EXPORTER_OTLP_ENDPOINT',
      message: `OpenTelemetry export needs Node.js >= 22.15 (this is ${version}); use a newer Node.js or unset the OTEL_EXPORTER_OTLP_* variables`,
    },
  ]);
}

/** Starts the SDK when OTEL_* variables turn telemetry on; returns whether it did. Idempotent. */
export async function startTelemetry(
  serviceName: string,
  env: NodeJS.ProcessEnv = process.env,
  nodeVersion = process.versions.node,
): Promise<boolean> {
  if (sdk !== null) return true;
  const settings = telemetrySettings(env);
  if (settings === null) return false;
  assertSdkNode(nodeVersion);
  const { loadSdk } = await import('./sdk.ts');
  sdk = await loadSdk(settings, serviceName);
  return true;
}

export function telemetryEnabled(): boolean {
  return sdk !== null;
}

/** Flush and stop exporters; waits at most `timeoutMs` so an unreachable collector cannot hold exit. */
export async function shutdownTelemetry(timeoutMs = 5000): Promise<void> {
  const s = sdk;
  sdk = null;
  if (s === null) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([s.shutdown().catch(() => undefined), late]);
  clearTimeout(timer);
}

/**
 * Exports a prom-client registry over OTLP as well, with the same metric names: its current values
 * are read at each OTLP metric export (lib/telemetry/prom-bridge.ts). Returns false, and costs
 * nothing, when telemetry (or its metrics signal) is off.
 */
export function exportPrometheusRegistry(registry: PromRegistry): boolean {
  return sdk?.addPromRegistry(registry) ?? false;
}

export function tracer(): Tracer {
  return trace.getTracer('llem');
}

export function meter(): Meter {
  return metrics.getMeter('llem');
}

/** The W3C traceparent of `ctx` (default: the active context), or undefined when no span is recording. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier['traceparent'];
}

/** A context whose parent is the given W3C traceparent (undefined/invalid: the active context). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  if (traceparent === undefined) return context.active();
  return propagation.extract(context.active(), { traceparent });
}

/** W3C headers for a NATS message sent in `ctx`; undefined when nothing is traced (no header cost). */
export function natsTraceHeaders(ctx: Context = context.active()): Record<string, string> | undefined {
  if (trace.getSpan(ctx) === undefined) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier['traceparent'] === undefined ? undefined : carrier;
}

/** A span link to the span that sent a message with these headers (aggregator side), or null. */
export function linkFromHeaders(headers: Record<string, string> | undefined, attributes: Attributes = {}): Link | null {
  if (headers?.['traceparent'] === undefined) return null;
  const sc = trace.getSpanContext(propagation.extract(context.active(), headers));
  return sc === undefined ? null : { context: sc, attributes };
}

/** trace_id/span_id of the active span, for log lines (lib/log.ts mixin); {} when none. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const sc = trace.getActiveSpan()?.spanContext();
  if (sc === undefined || !trace.isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

/** Ends `span` with an error status carrying the error's message. */
export function endWithError(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}

/** Runs `fn` in a new active span; records its error, always ends the span. */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  parent?: Context,
): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      const value = await fn(span);
      span.end();
      return value;
    } catch (err) {
      endWithError(span, err);
      throw err;
    }
  });
}

/**
 * The context of one experiment's trace, derived from its UID: every reconcile of the experiment,
 * in any controller replica and after restarts, is a child of the same (remote) experiment span,
 * so one experiment is one trace without storing span ids anywhere.
 */
export function experimentContext(uid: string): Context {
  const hex = createHash('sha256').update(`llem-experiment/${uid}`).digest('hex');
  return trace.setSpanContext(context.active(), {
    traceId: hex.slice(0, 32),
    spanId: hex.slice(32, 48),
    traceFlags: 1,
    isRemote: true,
  });
}

/**
 * The OTEL_* variables the controller passes on to agent pods, so agents export where it does:
 * every OTEL_* it was given, with OTEL_SERVICE_NAME set to llem-agent. Empty when telemetry is off.
 */
export function agentTelemetryEnv(env: NodeJS.ProcessEnv = process.env): { name: string; value: string }[] {
  if (telemetrySettings(env) === null) return [];
  const pass = Object.entries(env).filter(
    (e): e is [string, string] => e[0].startsWith('OTEL_') && e[0] !== 'OTEL_SERVICE_NAME' && e[1] !== undefined,
  );
  return [...pass.map(([name, value]) => ({ name, value })), { name: 'OTEL_SERVICE_NAME', value: 'llem-agent' }];
}

/**
 * The aggregator's side of a run replica's trace: when it applies the agent's last word (summary or
 * aborted), one `llem.aggregator.apply` span linked to the agent's span (from the NATS headers).
 * A link, not a parent: the aggregator's work belongs to the consumer, not to any one agent.
 */
export function traceApplied(
  m: { kind: string; runId: string; attempt: number; replica: number; seq: number },
  headers: Record<string, string> | undefined,
): void {
  if (m.kind !== 'summary' && m.kind !== 'aborted') return;
  const link = linkFromHeaders(headers, { 'llem.message.kind': m.kind });
  if (link === null) return;
  tracer()
    .startSpan('llem.aggregator.apply', {
      root: true,
      links: [link],
      attributes: {
        'llem.run.id': m.runId,
        'llem.run.attempt': m.attempt,
        'llem.run.replica': m.replica,
        'llem.message.kind': m.kind,
        'llem.message.seq': m.seq,
      },
    })
    .end();
}

/**
 * Export what is buffered now, waiting at most `timeoutMs`; no-op when telemetry is off. The agent
 * calls it as soon as its run ends: the controller deletes the pod once the summary is applied, so
 * the process may be signalled before the CLI's own shutdown flush.
 */
export async function flushTelemetry(timeoutMs = 3000): Promise<void> {
  if (sdk === null) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([sdk.forceFlush().catch(() => undefined), late]);
  clearTimeout(timer);
}
