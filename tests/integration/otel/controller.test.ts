// The cluster path: the controller (in this process, OTEL on) against a real kube-apiserver + etcd
// and nats-server; each agent pod runs as a real `llem agent` process that gets OTEL_* from the pod
// spec. Spans from both processes reach a real OpenTelemetry Collector and form one trace.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CONTROLLER_METRICS } from '../../../controller/metrics.ts';
import type { Controller } from '../../../controller/manager.ts';
import {
  agentTelemetryEnv,
  experimentContext,
  flushTelemetry,
  shutdownTelemetry,
  startTelemetry,
  trace,
} from '../../../lib/telemetry/index.ts';
import { kubeSkipReason } from '../../support/kube.ts';
import {
  collectorBinary,
  collectorMissing,
  startCollector,
  type CollectedPoint,
  type CollectedSpan,
  type CollectorHandle,
} from '../../support/otelcol.ts';
import { createNamespace, getExperiment, manifest, startEnv, waitFor, type TestEnv } from '../controller/env.ts';

const skip = kubeSkipReason() ?? (collectorBinary() === null ? collectorMissing : false);

void describe(
  'OpenTelemetry across controller, agent pods and aggregator (real API server, NATS, collector)',
  { skip, timeout: 600_000 },
  () => {
    let collector: CollectorHandle;
    let env: TestEnv;
    let controller: Controller;
    before(async () => {
      collector = await startCollector();
      process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = collector.endpoint;
      process.env['OTEL_BSP_SCHEDULE_DELAY'] = '200';
      process.env['OTEL_METRIC_EXPORT_INTERVAL'] = '500';
      assert.equal(await startTelemetry('llem-controller'), true);
      env = await startEnv();
      controller = await env.startController({
        podOptions: {
          agentImage: 'llem/agent:test',
          backendImages: {},
          simulate: true,
          agentEnv: [{ name: 'LLEM_NATS_URL', value: env.nats.url }, ...agentTelemetryEnv()],
        },
      });
    });
    after(async () => {
      await env?.close();
      await shutdownTelemetry();
      await collector?.stop();
      delete process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
      delete process.env['OTEL_BSP_SCHEDULE_DELAY'];
      delete process.env['OTEL_METRIC_EXPORT_INTERVAL'];
    });

    it("puts reconciles, one span per run attempt, the agent pod's spans and the aggregator's links in the experiment's one trace", async () => {
      const ns = 'otel';
      await createNamespace(env, ns);
      await env.kube.kubectlOk(['apply', '-f', '-'], { input: manifest('traced', ns, { configs: 1 }) });
      const done = await waitFor(
        'experiment finished',
        async () => {
          const e = await getExperiment(env, ns, 'traced');
          return ['Succeeded', 'Failed'].includes(e?.status?.phase ?? '') ? e : undefined;
        },
        240_000,
      );
      assert.equal(done.status?.phase, 'Succeeded');
      const traceId = trace.getSpanContext(experimentContext(done.metadata.uid))?.traceId;
      await flushTelemetry();
      const spans = await collector.waitForSpans(
        (s) => s.some((x) => x.name === 'llem.agent.summary') && s.some((x) => x.name === 'llem.aggregator.apply'),
        30_000,
      );

      const reconciles = spans.filter(
        (s) => s.name === 'llem.reconcile' && s.attributes['llem.experiment.name'] === 'traced',
      );
      assert.ok(reconciles.length >= 2, `reconciles: ${reconciles.length}`);
      assert.ok(
        reconciles.every((s) => s.traceId === traceId && s.resource['service.name'] === 'llem-controller'),
        'every reconcile is in the experiment trace',
      );
      assert.equal(
        new Set(reconciles.map((s) => s.parentSpanId)).size,
        1,
        'all reconciles share the experiment parent',
      );

      const agents = spans.filter((s) => s.name === 'llem.agent.run' && s.traceId === traceId);
      assert.equal(agents.length, 1, 'one agent pod, in the experiment trace');
      const agent = agents[0] as CollectedSpan;
      assert.equal(agent.resource['service.name'], 'llem-agent', 'OTEL_* reached the pod with the agent service name');
      // The run attempt: one span from pod creation to the result applied, across reconciles.
      const attempts = spans.filter((s) => s.name === 'llem.run.attempt' && s.traceId === traceId);
      assert.equal(attempts.length, 1, `one run, one attempt span: ${attempts.length}`);
      const attempt = attempts[0] as CollectedSpan;
      assert.equal(
        attempt.parentSpanId,
        reconciles[0]?.parentSpanId,
        'the attempt hangs from the experiment span, like the reconciles',
      );
      assert.equal(attempt.resource['service.name'], 'llem-controller');
      assert.equal(attempt.attributes['llem.run.attempt'], 0);
      assert.equal(attempt.attributes['llem.run.outcome'], 'succeeded');
      assert.equal(attempt.attributes['llem.run.id'], agent.attributes['llem.run.id']);
      assert.equal(
        agent.parentSpanId,
        attempt.spanId,
        'the agent span is the child of the run attempt (traceparent in the agent config)',
      );
      assert.ok(attempt.startNs <= agent.startNs, "the attempt starts before its pod's agent");
      const window = spans.find((s) => s.name === 'llem.agent.measurement_window' && s.parentSpanId === agent.spanId);
      assert.ok(
        window !== undefined && attempt.endNs >= window.endNs,
        "the attempt ends after the agent's window: when the result is applied",
      );
      const creator = reconciles.find((r) => r.startNs <= attempt.startNs && attempt.startNs <= r.endNs);
      const applier = reconciles.find((r) => r.startNs <= attempt.endNs && attempt.endNs <= r.endNs);
      assert.ok(
        creator !== undefined && applier !== undefined && creator.spanId !== applier.spanId,
        'the attempt starts in the reconcile that created its pods and ends in a later one that applied its result',
      );
      assert.equal(controller.openAttemptSpans(), 0, 'no attempt span is left open once the run is done');
      const phases = spans.filter((s) => s.parentSpanId === agent.spanId).map((s) => s.name);
      for (const p of [
        'llem.agent.start',
        'llem.agent.barrier_wait',
        'llem.agent.measurement_window',
        'llem.agent.summary',
      ])
        assert.ok(phases.includes(p), `${p} in ${phases.join(',')}`);

      const applied = spans.filter(
        (s) =>
          s.name === 'llem.aggregator.apply' && s.links.some((l) => l.spanId === agent.spanId && l.traceId === traceId),
      );
      assert.equal(applied.length, 1, 'the aggregator links to the agent span from the NATS headers');
      assert.equal(applied[0]?.resource['service.name'], 'llem-controller');
    });

    it('exports every controller Prometheus metric over OTLP too, with the same names and values', async () => {
      const successes = async (): Promise<number> =>
        (await controller.metrics.registry.getMetricsAsJSON())
          .find((m) => m.name === 'llem_reconcile_total')
          ?.values.find((v) => v.labels['result'] === 'success')?.value ?? 0;
      const before = await successes();
      assert.ok(before > 0, 'the controller reconciled');
      const prom = await controller.metrics.registry.getMetricsAsJSON();
      const withValues = prom.filter((m) => m.values.length > 0).map((m) => m.name);
      const latestIn = (
        points: CollectedPoint[],
        name: string,
        attrs: Record<string, unknown> = {},
      ): number | undefined =>
        points
          .filter(
            (p) =>
              p.resource['service.name'] === 'llem-controller' &&
              p.metric === name &&
              Object.entries(attrs).every(([k, v]) => p.attributes[k] === v),
          )
          .at(-1)?.value;
      // Exported values are read at export time: wait for an export made after the registry was read.
      const points = await collector.waitForMetrics(
        (p) =>
          withValues.every((n) => latestIn(p, n) !== undefined) &&
          (latestIn(p, 'llem_reconcile_total', { result: 'success' }) ?? 0) >= before,
        20_000,
      );
      const after = await successes();
      const mine = points.filter((p) => p.resource['service.name'] === 'llem-controller');
      const latest = (name: string, attrs: Record<string, unknown> = {}): number | undefined =>
        latestIn(points, name, attrs);
      for (const doc of CONTROLLER_METRICS) {
        if (withValues.includes(doc.name)) assert.ok(latest(doc.name) !== undefined, `${doc.name} over OTLP`);
      }
      for (const n of [
        'llem_reconcile_total',
        'llem_pods_created_total',
        'llem_messages_applied_total',
        'llem_experiment_runs',
        'llem_workqueue_depth',
        'llem_leader',
      ]) {
        assert.ok(withValues.includes(n), `${n} has a value in the Prometheus registry`);
      }
      const exported = latest('llem_reconcile_total', { result: 'success' }) ?? 0;
      assert.ok(
        exported >= before && exported <= after,
        `the reconcile count is the registry's (${before} <= ${exported} <= ${after})`,
      );
      assert.equal(latest('llem_pods_created_total'), 1, 'one pod created');
      assert.equal(latest('llem_experiment_runs', { namespace: 'otel', experiment: 'traced', phase: 'Succeeded' }), 1);
      assert.equal(latest('llem_leader'), 1);
      const hist = mine.filter((p) => p.metric === 'llem_reconcile_duration_seconds').at(-1);
      assert.equal(hist?.type, 'histogram');
      assert.ok((hist?.value ?? 0) >= before, "the histogram's count covers every reconcile");
      assert.equal(mine.find((p) => p.metric === 'llem_reconcile_total')?.type, 'sum');
    });
  },
);
