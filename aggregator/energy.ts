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
    } else {
      const span = s.tMs - seg.lastMjMs;
      const covered = seg.coveredMs - seg.coveredMsAtLastMj;
      const integrated = covered + COVERAGE_TOLERANCE_MS >= span ? seg.powerIntegralMj - seg.powerIntegralAtLastMj : null;
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

/** Fold one telemetry message into the per-GPU segments of its run. */
export function applyTelemetry(gpus: GpuState[], m: TelemetryMessage): void {
  for (const s of m.samples) {
    const g = gpuState(gpus, m.replica, s.gpuUuid);
    if (m.mark !== undefined) {
      applyMark(g, m.mark, s);
      continue;
    }
    if (g.baseline !== null) feed(g.baseline, s);
    if (g.window !== null) feed(g.window, s);
  }
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

/** Energy and duration of one closed segment; `what` names it in reasons ("window", "baseline"). */
export function segmentEnergy(seg: SegmentState | null, what: string): SegmentEnergy {
  if (seg === null) return { energyMj: missing(`no ${what}Start reading`), durationMs: missing(`no ${what}Start reading`), notes: [] };
  if (seg.endMs === null) return { energyMj: missing(`no ${what}End reading`), durationMs: missing(`no ${what}End reading`), notes: [] };
  const durationMs = measured(seg.endMs - seg.startMs);
  const notes: string[] = [];
  if (seg.outOfOrder > 0) notes.push(`${seg.outOfOrder} out-of-order readings ignored in the ${what}`);
  if (seg.startMissing !== null) return { energyMj: missing(`energy counter unavailable at ${what}Start: ${seg.startMissing}`), durationMs, notes };
  if (seg.endMissing !== null) return { energyMj: missing(`energy counter unavailable at ${what}End: ${seg.endMissing}`), durationMs, notes };
  let energy = seg.counterMj;
  for (const r of seg.resets) {
    if (r.integratedMj === null) {
      return { energyMj: missing(`energy counter decreased (reset or wrap) at t=${r.atMs} ms in the ${what} and no power samples cover that span`), durationMs, notes };
    }
    energy += r.integratedMj;
    notes.push(`energy counter decreased (reset or wrap) at t=${r.atMs} ms in the ${what}: that span integrated from sampled power`);
  }
  return { energyMj: measured(energy), durationMs, notes };
}
