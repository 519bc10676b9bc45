// Energy from the NVML total-energy counter (millijoules since driver load). The energy of a
// segment is the sum of counter deltas between its start and end marks. NVML's counter is
// monotonic until the driver reloads (reset) or it wraps; a later reading lower than an earlier
// one is such an event, and that span's energy comes from integrating sampled power instead.
// When no power samples cover the span, the segment's energy is null with a reason — never a
// silent zero.
import type { GpuSample, Mark, TelemetryMessage } from '../api/protocol.ts';
import type { GpuState, SegmentState } from './state.ts';

/** NVML throttle reasons that mean a thermal or power limit (agent/telemetry/conditions.ts names them). */
const THERMAL_POWER_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80;

/** Power samples this far apart (ms) or less count as covering the span between them. */
const COVERAGE_TOLERANCE_MS = 1;
/**
 * The counter moves in steps about every 100 ms, so two readings 10 ms apart can see a whole
 * step: a delta's implied power is taken over its span plus this slack (2.5 steps), so that step
 * granularity never looks like a power spike while a jump of kilojoules still does.
 */
export const COUNTER_SLACK_MS = 250;

function missingReason(s: GpuSample, field: string): string {
  return s.unavailable?.[field] ?? `${field} was not reported`;
}

function openSegment(s: GpuSample): SegmentState {
  return {
    startMs: s.tMs,
    startMj: s.energyMillijoules,
    startMissing: s.energyMillijoules === null ? missingReason(s, 'energyMillijoules') : null,
    endMs: null,
    endMj: null,
    endMissing: null,
    lastMs: s.tMs,
    lastPowerW: null,
    lastMj: s.energyMillijoules,
    lastMjMs: s.tMs,
    powerIntegralAtLastMj: 0,
    coveredMsAtLastMj: 0,
    counterMj: 0,
    resets: [],
    powerIntegralMj: 0,
    coveredMs: 0,
    powerSumW: 0,
    powerCount: 0,
    peakPowerW: null,
    outOfOrder: 0,
    startTick: s.tick === undefined ? null : { ...s.tick, powerW: s.powerWatts },
    endTick: null,
    throttleMask: 0,
    throttledSamples: 0,
    conditionSamples: 0,
    smClockMinMhz: null,
    smClockSumMhz: 0,
    smClockCount: 0,
    temperatureMaxC: null,
    maxImpliedPowerW: 0,
    maxImpliedAtMs: s.tMs,
    clockStepBackMs: 0,
  };
}

function feedConditions(seg: SegmentState, s: GpuSample): void {
  seg.conditionSamples += 1;
  const reasons = s.throttleReasons ?? 0;
  seg.throttleMask |= reasons;
  if ((reasons & THERMAL_POWER_MASK) !== 0) seg.throttledSamples += 1;
  if (s.temperatureC !== null) seg.temperatureMaxC = Math.max(seg.temperatureMaxC ?? s.temperatureC, s.temperatureC);
  // Idle samples (reason bit 0x1) clock down by design: they say nothing about throttling.
  if (s.smClockMhz !== null && (reasons & 0x1) === 0) {
    seg.smClockMinMhz = Math.min(seg.smClockMinMhz ?? s.smClockMhz, s.smClockMhz);
    seg.smClockSumMhz += s.smClockMhz;
    seg.smClockCount += 1;
  }
}

function feedPower(seg: SegmentState, s: GpuSample): void {
  const p = s.powerWatts;
  if (p !== null) {
    if (seg.lastPowerW !== null && s.tMs > seg.lastMs) {
      seg.powerIntegralMj += ((seg.lastPowerW + p) / 2) * (s.tMs - seg.lastMs);
      seg.coveredMs += s.tMs - seg.lastMs;
    }
    seg.powerSumW += p;
    seg.powerCount += 1;
    seg.peakPowerW = seg.peakPowerW === null ? p : Math.max(seg.peakPowerW, p);
  }
  seg.lastPowerW = p;
}

function feedCounter(seg: SegmentState, s: GpuSample): void {
  const e = s.energyMillijoules;
  if (e === null) return;
  if (seg.lastMj !== null) {
    const delta = e - seg.lastMj;
    if (delta >= 0) {
      seg.counterMj += delta;
      // mJ / ms = W. Kept as a maximum (not judged here) so the verdict does not depend on whether
      // the hello with the power limit arrived before this reading.
      // A reading timed before the previous one (clock step) has no span to judge by.
      const implied = s.tMs >= seg.lastMjMs ? delta / (s.tMs - seg.lastMjMs + COUNTER_SLACK_MS) : 0;
      if (implied > seg.maxImpliedPowerW) {
        seg.maxImpliedPowerW = implied;
        seg.maxImpliedAtMs = s.tMs;
      }
    } else {
      const span = s.tMs - seg.lastMjMs;
      const covered = seg.coveredMs - seg.coveredMsAtLastMj;
      const integrated =
        covered + COVERAGE_TOLERANCE_MS >= span ? seg.powerIntegralMj - seg.powerIntegralAtLastMj : null;
      seg.resets.push({ atMs: s.tMs, integratedMj: integrated });
    }
  }
  seg.lastMj = e;
  seg.lastMjMs = s.tMs;
  seg.powerIntegralAtLastMj = seg.powerIntegralMj;
  seg.coveredMsAtLastMj = seg.coveredMs;
}

function feed(seg: SegmentState, s: GpuSample): void {
  if (seg.endMs !== null) return;
  if (s.tMs < seg.lastMs) {
    seg.outOfOrder += 1;
    return;
  }
  feedPower(seg, s);
  feedCounter(seg, s);
  feedConditions(seg, s);
  seg.lastMs = s.tMs;
}

function closeSegment(seg: SegmentState, s: GpuSample): void {
  if (seg.endMs === null && s.tMs < seg.lastMs) {
    // The wall clock stepped back (NTP) between the last reading and the closing mark. The counter
    // does not care: its last delta still counts (dropping it undercounted the window's energy),
    // but the segment's length is now wrong, which completeness reports.
    seg.clockStepBackMs = Math.max(seg.clockStepBackMs, seg.lastMs - s.tMs);
    feedCounter(seg, s);
  }
  feed(seg, s);
  seg.endMs = s.tMs;
  seg.endTick = s.tick === undefined ? null : { ...s.tick, powerW: s.powerWatts };
  seg.endMj = s.energyMillijoules;
  seg.endMissing = s.energyMillijoules === null ? missingReason(s, 'energyMillijoules') : null;
}

function gpuState(gpus: GpuState[], replica: number, gpuUuid: string): GpuState {
  let g = gpus.find((x) => x.replica === replica && x.gpuUuid === gpuUuid);
  if (g === undefined) {
    g = { replica, gpuUuid, baseline: null, window: null };
    gpus.push(g);
    // Fixed order, independent of arrival order: results list GPUs by replica then UUID.
    gpus.sort((a, b) => a.replica - b.replica || (a.gpuUuid < b.gpuUuid ? -1 : a.gpuUuid > b.gpuUuid ? 1 : 0));
  }
  return g;
}

function applyMark(g: GpuState, mark: Mark, s: GpuSample): void {
  if (mark === 'baselineStart') g.baseline = openSegment(s);
  else if (mark === 'windowStart') g.window = openSegment(s);
  else if (mark === 'baselineEnd' && g.baseline !== null) closeSegment(g.baseline, s);
  else if (mark === 'windowEnd' && g.window !== null) closeSegment(g.window, s);
}

/** GPUs one replica may report (a hello lists at most as many): more is a flood, not a machine. */
export const MAX_GPUS_PER_REPLICA = 64;

/**
 * Fold one telemetry message into the per-GPU segments of its run. Returns a problem when the
 * message names more GPUs than a replica can have; then nothing of it is applied.
 */
export function applyTelemetry(gpus: GpuState[], m: TelemetryMessage): string | null {
  const known = new Set(gpus.filter((g) => g.replica === m.replica).map((g) => g.gpuUuid));
  for (const s of m.samples) known.add(s.gpuUuid);
  if (known.size > MAX_GPUS_PER_REPLICA) {
    const more = `more than the ${MAX_GPUS_PER_REPLICA} a replica can have`;
    return `replica ${m.replica} would report ${known.size} GPUs, ${more}`;
  }
  for (const s of m.samples) {
    const g = gpuState(gpus, m.replica, s.gpuUuid);
    if (m.mark !== undefined) {
      applyMark(g, m.mark, s);
      continue;
    }
    if (g.baseline !== null) feed(g.baseline, s);
    if (g.window !== null) feed(g.window, s);
  }
  return null;
}

/** A number, or null with the reason it is missing. */
export type Measured = { value: number; reason: null } | { value: null; reason: string };

export const measured = (value: number): Measured => ({ value, reason: null });
export const missing = (reason: string): Measured => ({ value: null, reason });

export interface SegmentEnergy {
  energyMj: Measured;
  durationMs: Measured;
  notes: string[];
}

/** The most power one GPU can plausibly draw, and where that bound comes from. */
export interface PowerBound {
  watts: number;
  source: string;
}

/**
 * Energy and duration of one closed segment; `what` names it in reasons ("window", "baseline").
 * Counter deltas implying more power than `bound` make the energy null with the reason: a counter
 * jump is a broken reading, and its joules must never reach a result.
 */
export function segmentEnergy(seg: SegmentState | null, what: string, bound?: PowerBound): SegmentEnergy {
  if (seg === null)
    return { energyMj: missing(`no ${what}Start reading`), durationMs: missing(`no ${what}Start reading`), notes: [] };
  if (seg.endMs === null)
    return { energyMj: missing(`no ${what}End reading`), durationMs: missing(`no ${what}End reading`), notes: [] };
  const durationMs = measured(seg.endMs - seg.startMs);
  const notes: string[] = [];
  if (seg.outOfOrder > 0) notes.push(`${seg.outOfOrder} out-of-order readings ignored in the ${what}`);
  if (seg.startMissing !== null)
    return { energyMj: missing(`energy counter unavailable at ${what}Start: ${seg.startMissing}`), durationMs, notes };
  if (seg.endMissing !== null)
    return { energyMj: missing(`energy counter unavailable at ${what}End: ${seg.endMissing}`), durationMs, notes };
  if (bound !== undefined && seg.maxImpliedPowerW > bound.watts) {
    return { energyMj: missing(implausibleCounter(seg, what, bound)), durationMs, notes };
  }
  let energy = seg.counterMj;
  for (const r of seg.resets) {
    if (r.integratedMj === null) {
      return {
        energyMj: missing(
          `energy counter decreased (reset or wrap) at t=${r.atMs} ms in the ${what} and no power samples cover that span`,
        ),
        durationMs,
        notes,
      };
    }
    energy += r.integratedMj;
    notes.push(
      `energy counter decreased (reset or wrap) at t=${r.atMs} ms in the ${what}: that span integrated from sampled power`,
    );
  }
  if (energy < 0) {
    return { energyMj: missing(`the ${what}'s energy came out negative (${energy} mJ)`), durationMs, notes };
  }
  return { energyMj: measured(energy), durationMs, notes };
}

export function implausibleCounter(seg: SegmentState, what: string, bound: PowerBound): string {
  const w = Math.round(seg.maxImpliedPowerW);
  return (
    `energy counter jump at t=${seg.maxImpliedAtMs} ms in the ${what} implies ${w} W, ` +
    `above the plausible ${bound.watts} W (${bound.source})`
  );
}
