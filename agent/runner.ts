// The measurement protocol for one run replica (DESIGN.md): hello, backend readiness, idle
// baseline, warm-up (excluded), ready -> start signal, window, cool-down, summary. Any abort
// (SIGTERM, backend death) publishes `aborted` with the phase it happened in.
import type { RequestSlo } from './slo.ts';
import { hostname } from 'node:os';
import type { Mark, Phase, PublisherKey, SummaryMessage } from '../api/protocol.ts';
import type { Bus } from '../lib/bus/types.ts';
import {
  GpuAttributionError,
  GpuNotExclusiveError,
  InterruptedError,
  LlemError,
  NvmlTimeoutError,
  isLlemError,
} from '../lib/errors.ts';
import { childOf, rootLogger, type Logger } from '../lib/log.ts';
import type { BackendType } from '../api/spec.ts';
import { BackendMetricsRecorder } from './backends/metrics.ts';
import { conversationsOf, traceOf, type AgentConfig } from './config.ts';
import { abortableSleep, RequestFactory, runLoad, type RequestSender, type Workload } from './load/generator.ts';
import { clientThreadsFor, createLoadSender, peakStreams, type LoadSender } from './load/threaded-client.ts';
import { Publisher } from './publisher.ts';
import { AgentTrace } from './trace.ts';
import { context, flushTelemetry } from '../lib/telemetry/index.ts';
import { awaitBackendReady } from './readiness.ts';
import type { SketchFactory } from './slices.ts';
import { subscribeStart } from './start-signal.ts';
import { WindowConditions } from './telemetry/conditions.ts';
import { exclusivityFindings } from './telemetry/processes.ts';
import type { GpuTelemetry, TelemetryEnvironment } from './telemetry/types.ts';
import { ClientHealthMonitor, clientSaturatedWarning, warmConnections } from './client-health.ts';
import { runWindow, type WindowResult } from './window.ts';
import { summaryWarnings } from './warnings.ts';
import { applyRunGpuSettings, type GpuControlDeps } from './gpu-control/run-settings.ts';
import type { GpuSettingsSession } from './gpu-control/gpu-settings.ts';

export const AGENT_VERSION = '0.1.0';
/** Connections warmed longer ago than this are opened again after the start signal. */
const REWARM_AFTER_MS = 2000;

export interface AgentDeps {
  bus: Bus;
  telemetry: GpuTelemetry;
  createSketch: SketchFactory;
  /** Abort at any phase: SIGTERM/SIGINT, the backend exiting. `signal.reason` becomes the aborted reason. */
  signal?: AbortSignal;
  /**
   * Defaults to the streaming client on config.backend.baseUrl, spread over worker threads when the
   * workload keeps many streams open (LLEM_CLIENT_THREADS overrides the count).
   */
  sender?: RequestSender;
  /** The backend is the simulated mock server: every message says simulated. */
  simulatedBackend?: boolean;
  logger?: Logger;
  /** NVML control for config.gpu's settings (power limit, locked clocks); needed only when some are set. */
  gpuControl?: GpuControlDeps;
}

export type AgentSummary = Omit<SummaryMessage, 'v' | 'kind' | 'seq' | 'sentAtMs' | 'simulated' | keyof PublisherKey>;

function reasonOf(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : typeof r === 'string' ? r : 'aborted';
}

function sloOf(s: NonNullable<AgentConfig['slo']>): RequestSlo {
  const out: RequestSlo = {};
  if (s.ttftMs !== undefined) out.ttftMs = s.ttftMs;
  if (s.itlMs !== undefined) out.itlMs = s.itlMs;
  if (s.e2eMs !== undefined) out.e2eMs = s.e2eMs;
  return out;
}

function workloadOf(c: AgentConfig): Workload {
  const w = c.workload;
  return {
    api: w.api,
    model: c.model,
    mode: w.mode,
    concurrency: w.concurrency,
    ratePerSecond: w.ratePerSecond,
    inputTokens: w.inputTokens,
    outputTokens: w.outputTokens,
    ignoreEos: w.ignoreEos,
    temperature: w.temperature,
    topP: w.topP,
    ...(w.maxTokens !== undefined ? { maxTokens: w.maxTokens } : {}),
    seed: w.seed,
    prompts: w.prompts,
    trace: traceOf(c),
    traceTimeScale: w.traceTimeScale,
    conversations: conversationsOf(c),
    sharedPrefix: w.sharedPrefix,
  };
}

class ProtocolRun {
  phase: Phase = 'starting';
  readonly publisher: Publisher;
  readonly stop = new AbortController();
  readonly log: Logger;
  private readonly sender: RequestSender;
  private readonly owned: LoadSender | undefined;
  /** Set once telemetry has started (it needs the GPUs' maximum clocks). */
  conditions: WindowConditions | null = null;
  /** When the first energy mark was taken: foreign processes from then on count. */
  measuredSinceMs: number | null = null;
  readonly health: ClientHealthMonitor;
  warm = { connectionsWarmed: 0, streamSlots: 0 };
  private warmedAtMs = 0;
  readonly c: AgentConfig;
  readonly d: AgentDeps;
  readonly trace: AgentTrace;
  /** GPU settings applied for this run: restored in runAgent's finally, whatever ended the run. */
  gpuSettings: GpuSettingsSession | null = null;

  constructor(c: AgentConfig, d: AgentDeps) {
    this.c = c;
    this.d = d;
    this.trace = new AgentTrace(c);
    this.log = childOf(d.logger ?? rootLogger, { run: c.publisher.runId, replica: c.publisher.replica });
    const simulated = d.telemetry.source === 'simulated' || d.simulatedBackend === true;
    this.publisher = new Publisher(d.bus, c.publisher, simulated);
    if (d.sender === undefined) {
      const threads = clientThreadsFor(
        peakStreams(c.workload, c.workload.requests),
        undefined,
        process.env['LLEM_CLIENT_THREADS'],
      );
      this.owned = createLoadSender(
        { baseUrl: c.backend.baseUrl, timeoutMs: c.workload.requestTimeoutSeconds * 1000 },
        threads,
      );
      this.log.debug({ clientThreads: this.owned.threads }, 'load client');
    }
    this.sender = d.sender ?? (this.owned as LoadSender);
    this.health = new ClientHealthMonitor(this.sender);
    if (d.signal !== undefined) {
      const forward = (): void => this.stop.abort(d.signal?.reason);
      if (d.signal.aborted) forward();
      else d.signal.addEventListener('abort', forward, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** Throw if aborted: each phase boundary is an exit point. */
  check(): void {
    if (this.signal.aborted) throw new InterruptedError(`run aborted during ${this.phase}: ${reasonOf(this.signal)}`);
  }

  enter(phase: Phase): void {
    this.check();
    this.phase = phase;
    this.trace.enter(phase);
    this.log.info({ phase }, 'agent phase');
  }

  async mark(mark: Mark): Promise<void> {
    let samples;
    try {
      samples = await this.d.telemetry.mark(mark);
    } catch (err) {
      // A hung NVML call: stop the load now rather than at the end of the window.
      if (err instanceof NvmlTimeoutError) this.stop.abort(err);
      throw err;
    }
    this.trace.mark(mark, samples);
    const times = samples.map((s) => s.tMs);
    if (times.length > 0) {
      this.measuredSinceMs ??= Math.min(...times);
      if (mark === 'windowStart') this.conditions?.open(Math.min(...times));
      if (mark === 'windowEnd') this.conditions?.close(Math.max(...times));
    }
    await this.publisher.publish('telemetry', { phase: this.phase, mark, samples });
  }

  async sleep(seconds: number): Promise<void> {
    await abortableSleep(seconds * 1000, this.signal);
    this.check();
  }

  load(requests: number, seedOffset: number): Promise<unknown> {
    return runLoad(this.sender, new RequestFactory(workloadOf(this.c), seedOffset), workloadOf(this.c), {
      requests,
      signal: this.signal,
      onResult: () => undefined,
      onInFlight: (n) => this.d.telemetry.observeLoad?.(n),
    });
  }

  window(): Promise<WindowResult> {
    const m = this.c.measurement;
    return runWindow({
      publisher: this.publisher,
      createSketch: this.d.createSketch,
      sender: this.sender,
      workload: workloadOf(this.c),
      factory: new RequestFactory(workloadOf(this.c)),
      requests: this.c.workload.requests,
      minDurationMs: m.extendToMinWindow ? m.minWindowSeconds * 1000 : 0,
      sliceMs: m.sliceMs,
      steadyState: m.steadyState,
      signal: this.signal,
      mark: (k) => this.mark(k),
      onInFlight: (n) => this.d.telemetry.observeLoad?.(n),
      health: this.health,
      ...(this.c.slo === undefined ? {} : { slo: sloOf(this.c.slo) }),
    });
  }

  async warmConnections(): Promise<void> {
    const c = this.c;
    this.warm = await warmConnections(this.sender, c.workload, c.workload.requests, c.backend.readinessPath);
    this.warmedAtMs = Date.now();
    this.log.debug(this.warm, 'connections warmed');
  }

  /** A long wait for the start signal can outlast the server's keep-alive (uvicorn's is 5 s): warm again. */
  async rewarmAfterWait(): Promise<void> {
    if (Date.now() - this.warmedAtMs > REWARM_AFTER_MS) await this.warmConnections();
  }

  close(): void {
    this.health.stop();
    this.owned?.close();
  }
}

async function hello(run: ProtocolRun, env: TelemetryEnvironment): Promise<void> {
  const c = run.c;
  run.trace.environment(env);
  await run.publisher.publish('hello', {
    environment: {
      hostname: hostname(),
      gpus: env.gpus,
      driverVersion: env.driverVersion,
      nvmlVersion: env.nvmlVersion,
      cudaVersion: env.cudaVersion,
      backend: c.backend.name,
      backendVersion: c.backend.version,
      configHash: c.configHash,
      agentVersion: AGENT_VERSION,
      telemetrySource: env.source,
    },
  });
}

async function baseline(run: ProtocolRun): Promise<{ start: number | null; end: number | null }> {
  const seconds = run.c.measurement.baselineSeconds;
  if (seconds <= 0) return { start: null, end: null };
  run.enter('baseline');
  const start = Date.now();
  await run.mark('baselineStart');
  await run.sleep(seconds);
  await run.mark('baselineEnd');
  return { start, end: Date.now() };
}

async function readyAndWait(run: ProtocolRun): Promise<void> {
  run.enter('ready');
  const c = run.c;
  if (c.start.mode === 'immediate') {
    await run.publisher.publish('ready', {});
    return;
  }
  const wait = await subscribeStart(run.d.bus, c.publisher, c.start.timeoutSeconds * 1000, run.signal);
  try {
    await run.publisher.publish('ready', {});
    const startAt = await wait.startAt;
    run.check();
    // Before the start time, in the lead the controller leaves: replicas still start together.
    await run.rewarmAfterWait();
    // Timers may fire up to a millisecond early: sleep again until the clock has passed startAt.
    if (startAt !== null) {
      while (Date.now() < startAt) await run.sleep(Math.max(1, startAt - Date.now()) / 1000);
    }
  } finally {
    await wait.cancel();
  }
}

/** The GPUs this replica measures must be the ones it was given: as many as placement.gpusPerRun. */
function checkGpuCount(c: AgentConfig, env: TelemetryEnvironment): void {
  const expected = c.telemetry.expectedGpus;
  if (expected === undefined || env.gpus.length === expected) return;
  throw new GpuAttributionError(
    `${env.gpus.length} GPU(s) visible (${env.gpus.map((g) => g.uuid).join(', ') || 'none'}) but placement.gpusPerRun is ${expected}: ` +
      'the run would measure GPUs its backend does not use, or miss some it does; check CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES',
  );
}

/** Foreign processes on the measured GPUs since the first mark: a failure under requireExclusiveGpu, else warnings. */
function exclusivity(run: ProtocolRun): string[] {
  const sightings = run.d.telemetry.foreignProcesses?.() ?? [];
  const found = exclusivityFindings(sightings, run.measuredSinceMs ?? Number.POSITIVE_INFINITY);
  const out: string[] = [];
  if (found.foreign.length > 0) {
    const text = `another process used a measured GPU during the run: ${found.foreign.slice(0, 5).join('; ')}${found.foreign.length > 5 ? ` (+${found.foreign.length - 5} more)` : ''}`;
    if (run.c.telemetry.requireExclusiveGpu)
      throw new GpuNotExclusiveError(`${text}; its energy would be charged to this run (requireExclusiveGpu)`);
    out.push(`${text}: its energy is included in this run's figures`);
  }
  if (found.unverified > 0)
    out.push(
      `${found.unverified} GPU process(es) NVML listed are not visible in this PID namespace: exclusivity could not be verified for them`,
    );
  return out;
}

function telemetryWarnings(run: ProtocolRun, env: TelemetryEnvironment): string[] {
  const out = exclusivity(run);
  for (const m of env.mig ?? []) {
    out.push(
      `attribution wholeDevice: ${m.entry} is a MIG slice; the energy is the whole GPU ${m.parentUuid ?? '(unknown)'}'s, every slice included`,
    );
  }
  return [...out, ...(run.conditions?.warnings() ?? [])];
}

async function protocol(run: ProtocolRun): Promise<AgentSummary> {
  const c = run.c;
  const env = await run.d.telemetry.start((samples) => {
    run.conditions?.add(samples);
    run.publisher.publish('telemetry', { phase: run.phase, samples }).catch(() => undefined);
  });
  checkGpuCount(c, env);
  // Before hello and the baseline: the baseline is idle power under the run's own cap and clocks (ADR 0024).
  run.gpuSettings = applyRunGpuSettings(c, env, run.d.gpuControl, run.log);
  run.conditions = new WindowConditions(env.gpus, { minClockFraction: c.telemetry.minClockFraction });
  await hello(run, env);
  await awaitBackendReady({
    url: new URL(c.backend.readinessPath, c.backend.baseUrl).href,
    timeoutMs: c.backend.readinessTimeoutSeconds * 1000,
    signal: run.signal,
  });
  const base = await baseline(run);
  // A neighbour already on the GPU fails the run before any load, not after the window.
  exclusivity(run);
  run.enter('warmup');
  if (c.measurement.warmupRequests > 0) await run.load(c.measurement.warmupRequests, 0x77a3);
  await run.warmConnections();
  await readyAndWait(run);
  run.enter('measuring');
  const recorder = backendMetricsRecorder(c);
  const w = await withBackendMetrics(recorder, () => run.window());
  run.trace.window(w.totals);
  run.enter('cooldown');
  await run.sleep(c.measurement.cooldownSeconds);
  run.enter('done');
  await run.d.telemetry.flush();
  const client = await run.health.result(w.ttftP50Ms, run.warm, c.workload.mode === 'rate');
  const saturated = clientSaturatedWarning(client);
  const summary: AgentSummary = {
    messagesBefore: run.publisher.sent,
    countsByKind: { ...run.publisher.counts },
    ...w.totals,
    baselineStartMs: base.start,
    baselineEndMs: base.end,
    windowStartMs: w.windowStartMs,
    windowEndMs: w.windowEndMs,
    warnings: [
      ...summaryWarnings(c, w, env),
      ...telemetryWarnings(run, env),
      ...(saturated === null ? [] : [saturated]),
    ],
    client,
    ...(recorder === null ? {} : { backendMetrics: await recorder.markWindowEnd() }),
    ...(run.gpuSettings === null ? {} : { gpuSettings: run.gpuSettings.applied }),
  };
  await run.publisher.publish('summary', summary);
  await run.publisher.drain();
  return summary;
}

const BACKEND_TYPES = new Set(['pytorch', 'vllm', 'tensorrt']);
const BACKEND_SAMPLE_MS = 2000;

function backendMetricsRecorder(c: AgentConfig): BackendMetricsRecorder | null {
  const { name, baseUrl, metrics } = c.backend;
  if (!BACKEND_TYPES.has(name)) return null;
  return new BackendMetricsRecorder({ backend: name as BackendType, baseUrl, metrics });
}

/** Scrapes the backend's own metrics at the window's start and every 2 s in it (one small HTTP GET; never throws). */
async function withBackendMetrics<T>(recorder: BackendMetricsRecorder | null, window: () => Promise<T>): Promise<T> {
  if (recorder === null) return window();
  await recorder.markWindowStart();
  const timer = setInterval(() => void recorder.sample(), BACKEND_SAMPLE_MS);
  try {
    return await window();
  } finally {
    clearInterval(timer);
  }
}

/** Bounded: an abort must still let the process exit within 10 s. */
async function publishAborted(run: ProtocolRun, reason: string): Promise<void> {
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 3000).unref());
  const sent = run.publisher.publish('aborted', { phase: run.phase, reason }).catch(() => undefined);
  await Promise.race([sent, timeout]);
}

/**
 * Run the protocol once. Resolves with the summary that was published; on any failure or abort it
 * publishes `aborted` (best effort, bounded) and throws: InterruptedError for an abort signal,
 * otherwise the LlemError that ended the run (BackendError, TelemetryError, BusError ...).
 */
export async function runAgent(config: AgentConfig, deps: AgentDeps): Promise<AgentSummary> {
  const run = new ProtocolRun(config, deps);
  try {
    const summary = await context.with(run.trace.context, () => protocol(run));
    run.trace.end();
    return summary;
  } catch (err) {
    run.trace.fail(err, run.phase);
    const aborted = run.signal.aborted;
    const reason = aborted ? reasonOf(run.signal) : err instanceof Error ? err.message : String(err);
    run.stop.abort(reason);
    await publishAborted(run, reason);
    if (aborted) {
      const own: unknown = run.signal.reason;
      const cause: unknown = deps.signal?.aborted === true ? deps.signal.reason : isLlemError(own) ? own : err;
      throw isLlemError(cause) && !(cause instanceof InterruptedError)
        ? cause
        : new InterruptedError(`run aborted during ${run.phase}: ${reason}`, { cause });
    }
    throw isLlemError(err)
      ? err
      : new LlemError('LLEM_E_RUN', `run failed during ${run.phase}: ${reason}`, { cause: err });
  } finally {
    // First: a GPU left capped or clock-locked outlives the run. A restore that fails keeps its marker
    // (the next agent on that GPU retries) and is logged; it does not hide the run's own outcome.
    try {
      run.gpuSettings?.restore();
    } catch (err) {
      run.log.error({ err }, 'GPU settings not restored');
    }
    // Before anything slow: the pod may be deleted (SIGTERM) as soon as the summary is applied.
    await flushTelemetry();
    run.close();
    await deps.telemetry.stop();
  }
}
