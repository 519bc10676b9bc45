// The time-energy Pareto frontier over configurations, with 95% CIs on both axes (issue #22 item 3,
// ADR 0030). By means, a configuration is on the frontier when no other one is at least as good on
// both axes and better on one. A configuration off the frontier is `dominated` only when some other
// configuration beats it with confidence: that one's whole interval is at least as good as this one's
// whole interval on both axes (better on one). Otherwise its CIs overlap what dominates it and it is
// `notDistinguishable` from the frontier. A missing CI (fewer than two cycles) is an unbounded
// interval: such a point is never confidently dominated. The result is sorted by id, so it does not
// depend on the input order; exact ties (duplicates) dominate neither way and share the frontier.
import type { ConfigResult, CycleStats } from '../aggregator/index.ts';

export interface AxisValue {
  mean: number;
  /** 95% CI bounds; null: not known (fewer than two cycles). */
  low: number | null;
  high: number | null;
}

export interface FrontierInput {
  id: string;
  energy: AxisValue;
  time: AxisValue;
}

export type FrontierStatus = 'frontier' | 'notDistinguishable' | 'dominated';

export interface FrontierPoint extends FrontierInput {
  status: FrontierStatus;
  /** Who dominates it (by means, for notDistinguishable; with confidence, for dominated). */
  dominatedBy: string[];
}

export interface TimeAxis {
  key: string;
  label: string;
  /** Throughput is better higher, latency lower. */
  better: 'higher' | 'lower';
  pick: (c: ConfigResult) => CycleStats;
}

export const TIME_AXES: Record<string, TimeAxis> = {
  tokensPerSecond: {
    key: 'tokensPerSecond',
    label: 'throughput (output tokens/s)',
    better: 'higher',
    pick: (c) => c.metrics.tokensPerSecond,
  },
  e2eP50Ms: {
    key: 'e2eP50Ms',
    label: 'E2E latency p50 (ms)',
    better: 'lower',
    pick: (c) => c.latency.e2eMs.p50,
  },
  ttftP99Ms: {
    key: 'ttftP99Ms',
    label: 'TTFT p99 (ms)',
    better: 'lower',
    pick: (c) => c.latency.ttftMs.p99,
  },
};

/** Energy is always lower-better; time is flipped to lower-better so one rule serves both axes. */
interface Box {
  id: string;
  mean: [number, number];
  /** Optimistic (best) and pessimistic (worst) corner per axis, in lower-better terms. */
  best: [number, number];
  worst: [number, number];
}

function boxOf(p: FrontierInput, timeBetter: 'higher' | 'lower'): Box {
  const sign = timeBetter === 'higher' ? -1 : 1;
  const { energy: e, time: t } = p;
  const eKnown = e.low !== null && e.high !== null;
  const tKnown = t.low !== null && t.high !== null;
  const tBest = !tKnown ? -Infinity : sign === 1 ? (t.low as number) : -(t.high as number);
  const tWorst = !tKnown ? Infinity : sign === 1 ? (t.high as number) : -(t.low as number);
  return {
    id: p.id,
    mean: [e.mean, sign * t.mean],
    best: [eKnown ? (e.low as number) : -Infinity, tBest],
    worst: [eKnown ? (e.high as number) : Infinity, tWorst],
  };
}

function dominates(a: readonly [number, number], b: readonly [number, number]): boolean {
  return a[0] <= b[0] && a[1] <= b[1] && (a[0] < b[0] || a[1] < b[1]);
}

export function paretoFrontier(points: readonly FrontierInput[], timeBetter: 'higher' | 'lower'): FrontierPoint[] {
  const sorted = [...points].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const boxes = sorted.map((p) => boxOf(p, timeBetter));
  return sorted.map((p, i) => {
    const me = boxes[i] as Box;
    const byMean = boxes.filter((o) => o !== me && dominates(o.mean, me.mean)).map((o) => o.id);
    if (byMean.length === 0) return { ...p, status: 'frontier', dominatedBy: [] };
    const sure = boxes.filter((o) => o !== me && dominates(o.worst, me.best)).map((o) => o.id);
    return sure.length > 0
      ? { ...p, status: 'dominated', dominatedBy: sure }
      : { ...p, status: 'notDistinguishable', dominatedBy: byMean };
  });
}

function axisValue(s: CycleStats): AxisValue | null {
  return s.mean === null ? null : { mean: s.mean, low: s.ci95Low, high: s.ci95High };
}

/** Configurations with both figures -> frontier points (J/token vs the chosen time axis). */
export function configurationFrontier(
  configs: readonly ConfigResult[],
  axis: TimeAxis = TIME_AXES['tokensPerSecond'] as TimeAxis,
): { points: FrontierPoint[]; left: { id: string; why: string }[] } {
  const inputs: FrontierInput[] = [];
  const left: { id: string; why: string }[] = [];
  for (const c of configs) {
    const energy = axisValue(c.metrics.joulesPerToken);
    const time = axisValue(axis.pick(c));
    if (energy === null || time === null)
      left.push({ id: c.configId, why: energy === null ? 'no J/token' : `no ${axis.key}` });
    else inputs.push({ id: c.configId, energy, time });
  }
  return { points: paretoFrontier(inputs, axis.better), left };
}
