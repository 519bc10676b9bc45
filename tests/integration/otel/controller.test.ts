// The cluster path: the controller (in this process, OTEL on) against a real kube-apiserver + etcd
// and nats-server; each agent pod runs as a real `llem agent` process that gets OTEL_* from the pod
// spec. Spans from both processes reach a real OpenTelemetry Collector and form one trace.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agentTelemetryEnv, experimentContext, flushTelemetry, shutdownTelemetry, startTelemetry, trace } from '../../../lib/telemetry/index.ts';
import { kubeSkipReason } from '../../support/kube.ts';
import { collectorBinary, collectorMissing, startCollector, type CollectedSpan, type CollectorHandle } from '../../support/otelcol.ts';
import { createNamespace, getExperiment, manifest, startEnv, waitFor, type TestEnv } from '../controller/env.ts';

const skip = kubeSkipReason() ?? (collectorBinary() === null ? collectorMissing : false);

void describe('OpenTelemetry across controller, agent pods and aggregator (real API server, NATS, collector)', { skip, timeout: 600_000 }, () => {
  let collector: CollectorHandle;
  let env: TestEnv;
  before(async () => {
    collector = await startCollector();
    process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = collector.endpoint;
    process.env['OTEL_BSP_SCHEDULE_DELAY'] = '200';
    assert.equal(await startTelemetry('llem-controller'), true);
    env = await startEnv();
    await env.startController({
      podOptions: {
        agentImage: 'llem/agent:test', backendImages: {}, simulate: true,
        agentEnv: [{ name: 'LLEM_NATS_URL', value: env.nats.url }, ...agentTelemetryEnv()],
      },
    });
  });
  after(async () => {
    await env?.close();
    await shutdownTelemetry();
    await collector?.stop();
    delete process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  });

  it('puts reconciles, the agent pod\'s spans and the aggregator\'s links in the experiment\'s one trace', async () => {
    const ns = 'otel';
    await createNamespace(env, ns);
    await env.kube.kubectlOk(['apply', '-f', '-'], { input: manifest('traced', ns, { configs: 1 }) });
    const done = await waitFor('experiment finished', async () => {
      const e = await getExperiment(env, ns, 'traced');
      return ['Succeeded', 'Failed'].includes(e?.status?.phase ?? '') ? e : undefined;
    }, 240_000);
    assert.equal(done.status?.phase, 'Succeeded');
    const traceId = trace.getSpanContext(experimentContext(done.metadata.uid))?.traceId;
    await flushTelemetry();
    const spans = await collector.waitForSpans((s) => s.some((x) => x.name === 'llem.agent.summary') && s.some((x) => x.name === 'llem.aggregator.apply'), 30_000);

    const reconciles = spans.filter((s) => s.name === 'llem.reconcile' && s.attributes['llem.experiment.name'] === 'traced');
    assert.ok(reconciles.length >= 2, `reconciles: ${reconciles.length}`);
    assert.ok(reconciles.every((s) => s.traceId === traceId && s.resource['service.name'] === 'llem-controller'), 'every reconcile is in the experiment trace');
    assert.equal(new Set(reconciles.map((s) => s.parentSpanId)).size, 1, 'all reconciles share the experiment parent');

    const agents = spans.filter((s) => s.name === 'llem.agent.run' && s.traceId === traceId);
    assert.equal(agents.length, 1, 'one agent pod, in the experiment trace');
    const agent = agents[0] as CollectedSpan;
    assert.equal(agent.resource['service.name'], 'llem-agent', 'OTEL_* reached the pod with the agent service name');
    const parent = reconciles.find((r) => r.spanId === agent.parentSpanId);
    assert.ok(parent !== undefined, 'the agent span is the child of the reconcile that created its pod (traceparent in the agent config)');
    const phases = spans.filter((s) => s.parentSpanId === agent.spanId).map((s) => s.name);
    for (const p of ['llem.agent.start', 'llem.agent.barrier_wait', 'llem.agent.measurement_window', 'llem.agent.summary']) assert.ok(phases.includes(p), `${p} in ${phases.join(',')}`);

    const applied = spans.filter((s) => s.name === 'llem.aggregator.apply' && s.links.some((l) => l.spanId === agent.spanId && l.traceId === traceId));
    assert.equal(applied.length, 1, 'the aggregator links to the agent span from the NATS headers');
    assert.equal(applied[0]?.resource['service.name'], 'llem-controller');
  });
});
