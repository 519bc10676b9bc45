// `llem run --simulate` with OTEL_* pointing at a real OpenTelemetry Collector: the spans and metrics
// the test reads have passed through the collector (OTLP/HTTP protobuf in, otlp_http JSON out to a
// sink in this process). Without OTEL_* the SDK is never loaded and nothing is exported.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  collectorBinary,
  collectorMissing,
  startCollector,
  type CollectedSpan,
  type CollectorHandle,
} from '../../support/otelcol.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const MANIFEST = join(REPO, 'tests/integration/otel/tiny.yaml');
const RECORDER = join(REPO, 'tests/integration/otel/record-modules.mts');
const PHASES = [
  'llem.agent.start',
  'llem.agent.baseline',
  'llem.agent.warmup',
  'llem.agent.barrier_wait',
  'llem.agent.measurement_window',
  'llem.agent.cooldown',
  'llem.agent.summary',
];

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  modules: string[];
}

async function llemRun(env: NodeJS.ProcessEnv): Promise<Finished> {
  const dir = mkdtempSync(join(tmpdir(), 'llem-otel-'));
  const moduleLog = join(dir, 'modules.log');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      RECORDER,
      join(REPO, 'cli/main.ts'),
      'run',
      MANIFEST,
      '--simulate',
      '--out',
      join(dir, 'out'),
      '--json',
    ],
    {
      cwd: REPO,
      env: { ...process.env, LLEM_CLI_ENTRY: '1', LLEM_LOG_LEVEL: 'info', LLEM_TEST_MODULE_LOG: moduleLog, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  const modules = existsSync(moduleLog)
    ? readFileSync(moduleLog, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];
  return { code, stdout, stderr, modules };
}

function childrenOf(spans: CollectedSpan[], parent: CollectedSpan): CollectedSpan[] {
  return spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);
}

const skip = collectorBinary() === null ? collectorMissing : false;

describe('OpenTelemetry from llem run (local mode, simulated GPU)', { skip, timeout: 180_000 }, () => {
  let collector: CollectorHandle;
  before(async () => {
    collector = await startCollector();
  });
  after(async () => {
    await collector?.stop();
  });

  it('exports one trace per experiment: experiment -> run attempts -> agent run -> protocol phases, with attributes', async () => {
    const r = await llemRun({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=otel-test',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      OTEL_METRIC_EXPORT_INTERVAL: '500',
    });
    assert.equal(r.code, 0, r.stderr);
    const spans = await collector.waitForSpans((s) => s.some((x) => x.name === 'llem.experiment'));
    const roots = spans.filter((s) => s.name === 'llem.experiment');
    assert.equal(roots.length, 1, 'one experiment span');
    const root = roots[0] as CollectedSpan;
    assert.equal(root.parentSpanId, '');
    assert.equal(root.attributes['llem.experiment.name'], 'otel-tiny');
    assert.equal(root.resource['service.name'], 'llem-run');
    assert.equal(root.resource['deployment.environment'], 'otel-test');
    const applied = spans.filter((s) => s.name === 'llem.aggregator.apply');
    assert.ok(
      spans.filter((s) => s.name !== 'llem.aggregator.apply').every((s) => s.traceId === root.traceId),
      'every span is in the experiment trace',
    );

    const attempts = childrenOf(spans, root).filter((s) => s.name === 'llem.run.attempt');
    assert.equal(attempts.length, 2, 'two runs, one attempt each');
    for (const attempt of attempts) {
      assert.equal(attempt.attributes['llem.run.outcome'], 'complete');
      const agents = childrenOf(spans, attempt).filter((s) => s.name === 'llem.agent.run');
      assert.equal(agents.length, 1, 'the agent span is a child of its run attempt (traceparent in the agent config)');
      const agent = agents[0] as CollectedSpan;
      assert.equal(agent.attributes['llem.run.id'], attempt.attributes['llem.run.id']);
      assert.equal(agent.attributes['llem.config.hash'], attempt.attributes['llem.config.hash']);
      assert.ok(String(agent.attributes['llem.config.hash']).length > 0);
      const uuids = agent.attributes['llem.gpu.uuids'] as string[];
      assert.ok(Array.isArray(uuids) && uuids.length === 1 && uuids[0] !== '', `GPU UUIDs: ${JSON.stringify(uuids)}`);
      const phases = childrenOf(spans, agent).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
      assert.deepEqual(
        phases.map((p) => p.name),
        PHASES,
      );
      for (let i = 1; i < phases.length; i++) {
        const [prev, next] = [phases[i - 1] as CollectedSpan, phases[i] as CollectedSpan];
        // OTel timestamps come from float milliseconds: allow a microsecond of rounding.
        assert.ok(
          next.startNs + 1000n >= prev.endNs,
          `${prev.name} ends (${prev.endNs}) after ${next.name} starts (${next.startNs})`,
        );
      }
      const w = phases.find((p) => p.name === 'llem.agent.measurement_window') as CollectedSpan;
      const energy = w.attributes['llem.window.energy_joules'] as number;
      const jPerToken = w.attributes['llem.window.joules_per_token'] as number;
      const tokens = w.attributes['llem.window.output_tokens'] as number;
      assert.equal(tokens, 16 * 8);
      assert.ok(energy > 0, `window energy ${energy}`);
      assert.ok(Math.abs(jPerToken - energy / tokens) < 1e-9, 'J/token = window energy / output tokens');
      assert.ok((w.attributes['llem.window.mean_power_watts'] as number) > 0);
      assert.ok(agent.startNs >= attempt.startNs && agent.endNs <= attempt.endNs, 'the agent runs inside its attempt');
      // The summary crossed the bus with the agent's traceparent in its headers: the aggregator links to it.
      const links = applied.filter((s) =>
        s.links.some((l) => l.spanId === agent.spanId && l.traceId === agent.traceId),
      );
      assert.equal(links.length, 1, 'one aggregator span linked to this agent run');
      assert.equal((links[0] as CollectedSpan).attributes['llem.message.kind'], 'summary');
    }
    assert.ok(
      r.modules.some((m) => m.includes('/@opentelemetry/sdk-trace/')),
      'the SDK was loaded',
    );
    // docs/observability.md's waterfall is drawn from these (scripts/otel-waterfall.ts).
    const dump = process.env['LLEM_OTEL_SPANS_OUT'];
    if (dump !== undefined)
      writeFileSync(
        dump,
        JSON.stringify(spans, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2),
      );
  });

  it('puts trace_id and span_id of the active span on log lines', async () => {
    const spans = collector.spans();
    const agentSpans = new Set(spans.filter((s) => s.name === 'llem.agent.run').map((s) => s.spanId));
    assert.ok(agentSpans.size > 0, 'runs after the trace test');
    const r = await llemRun({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, OTEL_BSP_SCHEDULE_DELAY: '200' });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const phaseLines = lines.filter((l) => l['msg'] === 'agent phase');
    assert.ok(phaseLines.length > 0, `no agent phase log lines in:\n${r.stderr.slice(0, 2000)}`);
    const fresh = await collector.waitForSpans(
      (s) => s.filter((x) => x.name === 'llem.agent.run').length >= agentSpans.size + 2,
    );
    const newAgents = fresh.filter((s) => s.name === 'llem.agent.run' && !agentSpans.has(s.spanId));
    for (const l of phaseLines) {
      const match = newAgents.find((s) => s.spanId === l['span_id']);
      assert.ok(match !== undefined, `log line ${JSON.stringify(l)} names an exported agent span`);
      assert.equal(l['trace_id'], match.traceId);
    }
  });

  it('exports the Prometheus metric names over OTLP too, with per-run energy and power', async () => {
    const points = await collector.waitForMetrics((p) => p.some((x) => x.metric === 'llem_run_energy_joules'));
    const energy = points.filter((p) => p.metric === 'llem_run_energy_joules');
    assert.equal(new Set(energy.map((p) => p.attributes['run'])).size, 2, 'points for both runs');
    assert.ok(
      energy.every(
        (p) => p.value > 0 && typeof p.attributes['run'] === 'string' && p.resource['service.name'] === 'llem-run',
      ),
    );
    assert.ok(points.some((p) => p.metric === 'llem_run_power_watts' && p.value > 0));
  });

  it('with no OTEL_* variables, loads no SDK and exports nothing', async () => {
    const before = collector.spans().length;
    const env: NodeJS.ProcessEnv = {};
    for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) env[k] = '';
    const r = await llemRun(env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.modules.filter((m) => !m.includes('/@opentelemetry/api/')),
      [],
      'only the no-op API is loaded',
    );
    assert.ok(!r.stderr.includes('"trace_id"'), 'no trace ids on log lines');
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(collector.spans().length, before);
  });
});
