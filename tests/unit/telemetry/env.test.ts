import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidInputError } from '../../../lib/errors.ts';
import {
  agentTelemetryEnv,
  experimentContext,
  startTelemetry,
  telemetryEnabled,
  telemetrySettings,
  trace,
} from '../../../lib/telemetry/index.ts';

describe('OpenTelemetry settings from OTEL_* variables', () => {
  it('is off when no OTLP endpoint is configured, whatever else is set', () => {
    assert.equal(telemetrySettings({}), null);
    assert.equal(
      telemetrySettings({
        OTEL_SERVICE_NAME: 'x',
        OTEL_TRACES_SAMPLER: 'always_on',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      }),
      null,
    );
  });

  it('turns traces and metrics on with the common endpoint, and honours the per-signal exporters and SDK switch', () => {
    const on = telemetrySettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' });
    assert.deepEqual(on?.traces, { protocol: 'http/protobuf' });
    assert.equal(on?.metrics?.exportIntervalMs, 60_000);
    assert.equal(on?.sampler.name, 'parentbased_always_on');
    assert.equal(telemetrySettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), null);
    const tracesOnly = telemetrySettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_METRICS_EXPORTER: 'none',
    });
    assert.equal(tracesOnly?.metrics, null);
    assert.notEqual(tracesOnly?.traces, null);
    const metricsOnly = telemetrySettings({
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318/v1/metrics',
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
    });
    assert.equal(metricsOnly?.traces, null);
    assert.equal(metricsOnly?.metrics?.protocol, 'http/json');
  });

  it('refuses bad values with an input error naming the variable (exit code 2)', () => {
    for (const [k, v] of [
      ['OTEL_TRACES_SAMPLER', 'sometimes'],
      ['OTEL_TRACES_SAMPLER_ARG', '1.5'],
      ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc'],
      ['OTEL_METRIC_EXPORT_INTERVAL', '-3'],
    ] as const) {
      assert.throws(
        () => telemetrySettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', [k]: v }),
        (err: unknown) => {
          assert.ok(err instanceof InvalidInputError);
          assert.equal(err.exitCode, 2);
          assert.match(err.message, new RegExp(k));
          return true;
        },
      );
    }
  });

  it("passes the controller's OTEL_* variables on to agents as service llem-agent, and nothing when off", () => {
    assert.deepEqual(agentTelemetryEnv({ OTEL_SERVICE_NAME: 'llem-controller', PATH: '/bin' }), []);
    const env = agentTelemetryEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_SERVICE_NAME: 'llem-controller',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=b',
      PATH: '/bin',
    });
    assert.deepEqual(
      new Map(env.map((e) => [e.name, e.value])),
      new Map([
        ['OTEL_EXPORTER_OTLP_ENDPOINT', 'http://c:4318'],
        ['OTEL_EXPORTER_OTLP_HEADERS', 'a=b'],
        ['OTEL_SERVICE_NAME', 'llem-agent'],
      ]),
    );
  });

  it('puts every reconcile of one experiment in one trace, derived from its UID', () => {
    const a = trace.getSpanContext(experimentContext('uid-1'));
    const b = trace.getSpanContext(experimentContext('uid-1'));
    const c = trace.getSpanContext(experimentContext('uid-2'));
    assert.ok(a !== undefined && trace.isSpanContextValid(a));
    assert.equal(a.traceId, b?.traceId);
    assert.notEqual(a.traceId, c?.traceId);
  });

  it('refuses to start the SDK on a Node.js older than 22.15 (exit 2), and starts nothing there when OTEL is unset', async () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };
    await assert.rejects(
      startTelemetry('t', on, '20.19.0'),
      (err: unknown) => err instanceof InvalidInputError && /22\.15/.test(err.message),
    );
    await assert.rejects(startTelemetry('t', on, '22.14.0'), InvalidInputError);
    assert.equal(await startTelemetry('t', {}, '20.19.0'), false);
    assert.equal(telemetryEnabled(), false);
  });
});
