// Watches the wire messages the aggregator applies and derives what the local runtime shows and
// keeps beside the aggregate: progress (phase, requests done), the start barrier, a downsampled
// power series and each run's window bounds. It holds at most one point per GPU per second.
import type { WireMessage } from '../api/protocol.ts';
import type { PowerPoint } from '../report/csv.ts';

export interface RunObservation {
  phase: string;
  requestsDone: number;
  ready: Set<number>;
  power: PowerPoint[];
  /** Energy-counter readings at protocol boundaries, as the agent took them (cross-checks use them). */
  marks: Array<{ mark: string; replica: number; gpuUuid: string; tMs: number; energyMillijoules: number | null }>;
  windowStartMs: number | null;
  windowEndMs: number | null;
  environment: Record<string, string>;
  aborted: string | null;
}

const DOWNSAMPLE_MS = 1000;

type Conditions = Required<Pick<PowerPoint, 'smClockMinMhz' | 'temperatureMaxC' | 'throttleReasons'>>;

function minOrNull(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

function foldConditions(
  c: Conditions | undefined,
  s: { smClockMhz: number | null; temperatureC: number | null; throttleReasons: number | null },
): Conditions {
  if (c === undefined)
    return { smClockMinMhz: s.smClockMhz, temperatureMaxC: s.temperatureC, throttleReasons: s.throttleReasons };
  const hottest =
    c.temperatureMaxC === null
      ? s.temperatureC
      : s.temperatureC === null
        ? c.temperatureMaxC
        : Math.max(c.temperatureMaxC, s.temperatureC);
  const reasons = c.throttleReasons === null ? s.throttleReasons : c.throttleReasons | (s.throttleReasons ?? 0);
  return {
    smClockMinMhz: minOrNull(c.smClockMinMhz, s.smClockMhz),
    temperatureMaxC: hottest,
    throttleReasons: reasons,
  };
}

export class MessageObserver {
  private readonly runs = new Map<string, RunObservation>();
  private readonly lastKept = new Map<string, number>();
  private readonly pendingConditions = new Map<string, Conditions>();
  constructor(private readonly onReady: (runId: string, attempt: number, replicas: Set<number>) => void) {}

  /** Forget a run's previous attempt. */
  reset(runId: string): RunObservation {
    const fresh: RunObservation = {
      phase: 'starting',
      requestsDone: 0,
      ready: new Set(),
      power: [],
      marks: [],
      windowStartMs: null,
      windowEndMs: null,
      environment: {},
      aborted: null,
    };
    this.runs.set(runId, fresh);
    return fresh;
  }

  get(runId: string): RunObservation | undefined {
    return this.runs.get(runId);
  }

  observe(m: WireMessage, currentAttempt: (runId: string) => number | undefined): void {
    if (currentAttempt(m.runId) !== m.attempt) return;
    const o = this.runs.get(m.runId) ?? this.reset(m.runId);
    switch (m.kind) {
      case 'hello':
        o.environment = environmentOf(m.environment);
        break;
      case 'ready':
        o.ready.add(m.replica);
        o.phase = 'ready';
        this.onReady(m.runId, m.attempt, o.ready);
        break;
      case 'sketch':
        o.requestsDone += m.requestsOk + m.requestsFailed;
        break;
      case 'telemetry':
        o.phase = m.phase;
        this.keepPower(o, m);
        break;
      case 'summary':
        o.windowStartMs = m.windowStartMs;
        o.windowEndMs = m.windowEndMs;
        o.phase = 'done';
        break;
      case 'aborted':
        o.aborted = `${m.reason} (during ${m.phase})`;
        break;
    }
  }

  private keepPower(o: RunObservation, m: Extract<WireMessage, { kind: 'telemetry' }>): void {
    for (const s of m.samples) {
      if (m.mark !== undefined)
        o.marks.push({
          mark: m.mark,
          replica: m.replica,
          gpuUuid: s.gpuUuid,
          tMs: s.tMs,
          energyMillijoules: s.energyMillijoules,
        });
      const key = `${m.runId}/${m.replica}/${s.gpuUuid}`;
      // Conditions of the samples a kept point stands for: a throttle between two points is not lost.
      const c = foldConditions(this.pendingConditions.get(key), s);
      const last = this.lastKept.get(key);
      if (m.mark === undefined && last !== undefined && s.tMs - last < DOWNSAMPLE_MS) {
        this.pendingConditions.set(key, c);
        continue;
      }
      this.pendingConditions.delete(key);
      this.lastKept.set(key, s.tMs);
      o.power.push({
        tMs: s.tMs,
        runId: m.runId,
        replica: m.replica,
        gpuUuid: s.gpuUuid,
        powerWatts: s.powerWatts,
        energyMillijoules: s.energyMillijoules,
        ...c,
      });
    }
  }
}

export function environmentOf(e: Extract<WireMessage, { kind: 'hello' }>['environment']): Record<string, string> {
  const gpus = e.gpus
    .map((g) => `${g.name} (${g.uuid}${g.powerLimitWatts === null ? '' : `, limit ${g.powerLimitWatts} W`})`)
    .join('; ');
  return {
    host: e.hostname,
    gpus: gpus === '' ? 'none' : gpus,
    driver: e.driverVersion ?? 'unknown',
    nvml: e.nvmlVersion ?? 'unknown',
    telemetry: e.telemetrySource,
    backend: `${e.backend}${e.backendVersion === null ? '' : ` ${e.backendVersion}`}`,
    agent: e.agentVersion,
  };
}
