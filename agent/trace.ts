// The agent's spans: one `llem.agent.run` per run replica (child of the controller's run-attempt
// span through the config's W3C traceparent), one child span per protocol phase. The measurement
// window's span carries the energy the agent's own counter marks show (sum over GPUs of the NVML
// counter delta) and J/token; the aggregator's figures stay the reported ones.
import type { GpuSample, Mark, Phase } from '../api/protocol.ts';
import {
  contextFromTraceparent,
  endWithError,
  meter,
  tracer,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '../lib/telemetry/index.ts';
import type { AgentConfig } from './config.ts';
import type { TelemetryEnvironment } from './telemetry/types.ts';

/** Span names of the protocol phases (docs/observability.md shows the tree). */
export const PHASE_SPANS: Readonly<Record<Phase, string | null>> = {
  starting: 'llem.agent.start',
  baseline: 'llem.agent.baseline',
  warmup: 'llem.agent.warmup',
  ready: 'llem.agent.barrier_wait',
  measuring: 'llem.agent.measurement_window',
  cooldown: 'llem.agent.cooldown',
  done: 'llem.agent.summary',
};

/** Sum over GPUs of the counter delta between two marks; null when a GPU has no counter or it went back. */
function energyJoules(start: GpuSample[], end: GpuSample[]): number | null {
  let mj = 0;
  for (const e of end) {
    const s = start.find((x) => x.gpuUuid === e.gpuUuid);
    if (s?.energyMillijoules == null || e.energyMillijoules === null || e.energyMillijoules < s.energyMillijoules)
      return null;
    mj += e.energyMillijoules - s.energyMillijoules;
  }
  return mj / 1000;
}

/**
 * Per-run gauges over OTLP, named like the controller's Prometheus metrics (controller/metrics.ts:
 * llem_run_power_watts, labels namespace/experiment/run). Instruments are looked up at record time:
 * the global meter is the no-op one until the SDK starts.
 */
function recordRunMetrics(labels: Attributes, energyJoules: number, seconds: number): void {
  const m = meter();
  m.createGauge('llem_run_energy_joules', {
    unit: 'J',
    description: "GPU energy of one run replica's measurement window (agent counter marks).",
  }).record(energyJoules, labels);
  if (seconds > 0) {
    m.createGauge('llem_run_power_watts', {
      unit: 'W',
      description: 'Mean GPU power of one run replica over its measurement window.',
    }).record(energyJoules / seconds, labels);
  }
}

export class AgentTrace {
  readonly root: Span;
  readonly context: Context;
  private phase: Span | null = null;
  private windowStart: { samples: GpuSample[]; tMs: number } | null = null;
  private windowEnergyJoules: number | null = null;
  private readonly parent: Context;
  private readonly labels: Attributes;

  constructor(c: AgentConfig) {
    this.parent = contextFromTraceparent(c.traceparent);
    const p = c.publisher;
    this.labels = { namespace: p.namespace, experiment: p.experimentUid, run: p.runId, replica: p.replica };
    this.root = tracer().startSpan(
      'llem.agent.run',
      {
        attributes: {
          'llem.experiment.uid': c.publisher.experimentUid,
          'llem.run.id': c.publisher.runId,
          'llem.run.attempt': c.publisher.attempt,
          'llem.run.replica': c.publisher.replica,
          'llem.config.hash': c.configHash,
          'llem.backend': c.backend.name,
        },
      },
      this.parent,
    );
    this.context = trace.setSpan(this.parent, this.root);
    this.enter('starting');
  }

  enter(phase: Phase): void {
    // One instant ends a phase and starts the next: the SDK's own start times are whole milliseconds
    // (Date.now) while ends are sub-millisecond, which would make adjacent phases overlap.
    const now = performance.timeOrigin + performance.now();
    this.phase?.end(now);
    const name = PHASE_SPANS[phase];
    this.phase =
      name === null
        ? null
        : tracer().startSpan(name, { attributes: { 'llem.phase': phase }, startTime: now }, this.context);
  }

  environment(env: TelemetryEnvironment): void {
    const uuids = env.gpus.map((g) => g.uuid);
    this.root.setAttributes({ 'llem.gpu.uuids': uuids, 'llem.telemetry.source': env.source });
    this.phase?.setAttribute('llem.gpu.uuids', uuids);
  }

  mark(mark: Mark, samples: GpuSample[]): void {
    if (mark === 'windowStart') this.windowStart = { samples, tMs: Date.now() };
    if (mark !== 'windowEnd' || this.windowStart === null) return;
    this.windowEnergyJoules = energyJoules(this.windowStart.samples, samples);
    const seconds = (Date.now() - this.windowStart.tMs) / 1000;
    if (this.windowEnergyJoules === null) return;
    recordRunMetrics(this.labels, this.windowEnergyJoules, seconds);
    this.phase?.setAttributes({
      'llem.window.energy_joules': this.windowEnergyJoules,
      ...(seconds > 0 ? { 'llem.window.mean_power_watts': this.windowEnergyJoules / seconds } : {}),
    });
  }

  /** The window's token counts; J/token once the energy is known. Call before leaving the window phase. */
  window(totals: { outputTokens: number; requestsOk: number; requestsFailed: number }): void {
    this.phase?.setAttributes({
      'llem.window.output_tokens': totals.outputTokens,
      'llem.window.requests_ok': totals.requestsOk,
      'llem.window.requests_failed': totals.requestsFailed,
    });
    if (this.windowEnergyJoules !== null && totals.outputTokens > 0) {
      this.phase?.setAttribute('llem.window.joules_per_token', this.windowEnergyJoules / totals.outputTokens);
    }
  }

  end(): void {
    this.phase?.end();
    this.root.end();
  }

  fail(err: unknown, phase: Phase): void {
    this.root.setAttribute('llem.aborted_phase', phase);
    if (this.phase !== null) endWithError(this.phase, err);
    endWithError(this.root, err);
  }
}
