// An in-process stand-in for `llem agent`, for load tests where thousands of real agent processes
// would measure the machine instead of the controller: it publishes a minimal complete, simulated
// message sequence (hello, ready, window marks around one sketch slice, summary) for the pod's publisher key and exits
// 0.
import { dataSubject, encodeMessage, messageId, PROTOCOL_VERSION, type WireMessage } from '../../api/protocol.ts';
import type { Bus } from '../../lib/bus/types.ts';
import type { PodOutcome, PodRun } from './node-player.ts';

interface Publisher {
  namespace: string;
  experimentUid: string;
  runId: string;
  attempt: number;
  replica: number;
}

function envelope(p: Publisher, seq: number): Omit<WireMessage, 'kind'> & Record<string, unknown> {
  return { v: PROTOCOL_VERSION, ...p, seq, sentAtMs: Date.now(), simulated: true } as never;
}

function sample(gpu: string, energyMillijoules: number, tMs: number): Record<string, unknown> {
  return {
    gpuUuid: gpu,
    tMs,
    energyMillijoules,
    powerWatts: 300,
    utilizationGpuPct: 90,
    memoryUsedMiB: 1000,
    smClockMhz: 1500,
    memClockMhz: 2000,
    temperatureC: 50,
    throttleReasons: 0,
  };
}

export function fakeMessages(p: Publisher, outputTokens: number, energyJoules: number, configHash = ''): WireMessage[] {
  const gpu = `GPU-simulated-${p.replica}`;
  const t0 = Date.now();
  const env = {
    hostname: 'fake',
    gpus: [],
    driverVersion: null,
    nvmlVersion: null,
    cudaVersion: null,
    backend: 'fake',
    backendVersion: null,
    configHash,
    agentVersion: 'fake',
    telemetrySource: 'simulated',
  };
  return [
    { ...envelope(p, 1), kind: 'hello', environment: env },
    { ...envelope(p, 2), kind: 'ready' },
    {
      ...envelope(p, 3),
      kind: 'telemetry',
      phase: 'measuring',
      mark: 'windowStart',
      samples: [sample(gpu, 1_000_000, t0)],
    },
    {
      ...envelope(p, 4),
      kind: 'sketch',
      slice: 0,
      sliceStartMs: t0,
      sliceEndMs: t0 + 1000,
      requestsOk: 10,
      requestsFailed: 0,
      errorClasses: {},
      inputTokens: 10 * 16,
      outputTokens,
      sketches: {},
    },
    {
      ...envelope(p, 5),
      kind: 'telemetry',
      phase: 'measuring',
      mark: 'windowEnd',
      samples: [sample(gpu, 1_000_000 + energyJoules * 1000, t0 + 1000)],
    },
    {
      ...envelope(p, 6),
      kind: 'summary',
      messagesBefore: 5,
      countsByKind: { hello: 1, ready: 1, sketch: 1, telemetry: 2 },
      requestsOk: 10,
      requestsFailed: 0,
      inputTokens: 10 * 16,
      outputTokens,
      baselineStartMs: null,
      baselineEndMs: null,
      windowStartMs: t0,
      windowEndMs: t0 + 1000,
      warnings: ['simulated'],
    },
  ] as WireMessage[];
}

/** A NodePlayer `run` that publishes the fake sequence on `bus`. */
export function fakeAgentRunner(bus: Bus, opts: { outputTokens?: number; energyJoules?: number } = {}) {
  return async (run: PodRun): Promise<PodOutcome> => {
    const cfg = JSON.parse(run.env['LLEM_AGENT_CONFIG'] ?? '{}') as { publisher?: Publisher; configHash?: string };
    if (cfg.publisher === undefined) return { exitCode: 2, reason: 'Error', message: 'no LLEM_AGENT_CONFIG' };
    const p: Publisher = cfg.publisher;
    for (const m of fakeMessages(p, opts.outputTokens ?? 160, opts.energyJoules ?? 48, cfg.configHash ?? '')) {
      await bus.publish(dataSubject(p, m.kind), encodeMessage(m), { msgId: messageId(m) });
    }
    return { exitCode: 0, reason: 'Completed' };
  };
}
