// Per-GPU window facts beside its energy: how the window's counter edges were aligned to the
// counter's steps, and the GPU's operating conditions (throttling, SM clock, temperature).
import type { SegmentState } from './state.ts';

const REASON_NAMES: ReadonlyArray<[number, string]> = [
  [0x1, 'gpu idle'],
  [0x2, 'applications clocks setting'],
  [0x4, 'software power cap'],
  [0x8, 'hardware slowdown'],
  [0x10, 'sync boost'],
  [0x20, 'software thermal slowdown'],
  [0x40, 'hardware thermal slowdown'],
  [0x80, 'hardware power brake slowdown'],
  [0x100, 'display clock setting'],
];

export interface TickSummary {
  /** Both window edges are counter step edges: the energy is exactly that of whole ticks. */
  aligned: boolean;
  /** Whole counter steps in the window (span / period), null when the period is unknown. */
  ticks: number | null;
  periodMs: number | null;
  /** Sum of both edges' timing uncertainty (± ms). */
  edgeUncertaintyMs: number;
  /** How far each edge lies after the load window's start / end (the wait for the next step). */
  startOffsetMs: number;
  endOffsetMs: number;
  /**
   * Estimate of the energy the tick window holds that the load window does not (negative: lacks):
   * power at the end edge x end offset - power at the start edge x start offset (the mark's power
   * reading, else the window's mean power). An estimate, not a correction: on an H100 it was within
   * ~21 J of an independent log's figure (docs/validation/tick-aligned.md).
   */
  residualJoules: number | null;
}

export interface ConditionSummary {
  samples: number;
  throttledSamples: number;
  throttleReasons: string[];
  smClockMinMhz: number | null;
  smClockMeanMhz: number | null;
  temperatureMaxC: number | null;
}

export function tickSummary(w: SegmentState, meanPowerWatts: number | null): TickSummary | null {
  const a = w.startTick;
  const b = w.endTick;
  if (a === null || b === null || w.endMs === null) return null;
  const periodMs = a.periodMs ?? b.periodMs;
  const span = w.endMs - w.startMs;
  return {
    aligned: a.aligned && b.aligned,
    ticks: periodMs === null || periodMs <= 0 ? null : Math.round(span / periodMs),
    periodMs,
    edgeUncertaintyMs: a.uncertaintyMs + b.uncertaintyMs,
    startOffsetMs: a.waitedMs,
    endOffsetMs: b.waitedMs,
    residualJoules: residual(a.powerW ?? meanPowerWatts, b.powerW ?? meanPowerWatts, a.waitedMs, b.waitedMs),
  };
}

function residual(startW: number | null, endW: number | null, startMs: number, endMs: number): number | null {
  return startW === null || endW === null ? null : (endW * endMs - startW * startMs) / 1000;
}

export function conditionSummary(w: SegmentState): ConditionSummary {
  return {
    samples: w.conditionSamples,
    throttledSamples: w.throttledSamples,
    throttleReasons: REASON_NAMES.filter(([bit]) => (w.throttleMask & bit) !== 0).map(([, n]) => n),
    smClockMinMhz: w.smClockMinMhz,
    smClockMeanMhz: w.smClockCount > 0 ? w.smClockSumMhz / w.smClockCount : null,
    temperatureMaxC: w.temperatureMaxC,
  };
}
