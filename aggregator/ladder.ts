// Load-ladder decisions and curves (issue #22 item 1, ADR 0030). Pure functions of recorded results:
// the runtimes ask, before each run of a ladder step, whether it runs, waits or is skipped, so a
// resumed `llem run` or a restarted controller decides exactly as before from the same results.
//
// Saturation at step k (k >= 1): its mean tokens/s is below (1 + tolerance) x the best mean of the
// earlier steps, for `patience` steps in a row (comparing with the best earlier step, not the previous
// one, so noise that dips and recovers neither hides saturation nor ends the ladder at once). A step
// that breaks an SLO target (mean p-th percentile above target), or whose runs all failed, is
// saturated at once. Steps after the saturating step are skipped; the saturating step itself ran.
import type { LadderSpec } from '../api/spec.ts';
import type { Configuration, PlannedRun } from '../api/matrix.ts';
import type { ConfigResult } from './rollup.ts';
import type { ConfigSlo } from './slo.ts';
import type { CycleStats } from './stats.ts';

export interface LadderStepInput {
  step: number;
  /** Every run of the step has ended (complete, failed, or skipped). */
  finished: boolean;
  /** Mean tokens/s across the step's included cycles; null when none has one. */
  tokensPerSecond: number | null;
  /** Why an SLO target broke at this step; null when met or no SLO is set. */
  sloBroken: string | null;
}

export interface LadderVerdict {
  /** The step at which saturation was found; null while not (yet) found. */
  saturatedAt: number | null;
  reason: string;
  /** Steps 0..decidedThrough are finished and judged; later ones are not yet. */
  decidedThrough: number;
}

function rel(a: number, b: number): string {
  return `${(100 * (a / b - 1)).toFixed(1)}%`;
}

/** Saturation over the finished steps, in step order; stops at the first unfinished step. */
export function ladderVerdict(steps: readonly LadderStepInput[], spec: LadderSpec): LadderVerdict {
  const ordered = [...steps].sort((a, b) => a.step - b.step);
  const tol = spec.saturationTolerancePct / 100;
  let best: { step: number; tps: number } | null = null;
  let flat = 0;
  let decidedThrough = -1;
  for (const s of ordered) {
    if (!s.finished) return { saturatedAt: null, reason: `step ${s.step} has not finished`, decidedThrough };
    decidedThrough = s.step;
    if (s.tokensPerSecond === null)
      return { saturatedAt: s.step, reason: `no run of step ${s.step} succeeded`, decidedThrough };
    if (s.sloBroken !== null)
      return { saturatedAt: s.step, reason: `SLO broken at step ${s.step}: ${s.sloBroken}`, decidedThrough };
    if (best !== null && s.tokensPerSecond < best.tps * (1 + tol)) {
      flat += 1;
      if (flat >= spec.patience) {
        const reason =
          `throughput stopped rising: step ${s.step} gave ${s.tokensPerSecond.toPrecision(4)} tokens/s, ` +
          `${rel(s.tokensPerSecond, best.tps)} vs the best earlier step (${best.step}), under the ` +
          `${spec.saturationTolerancePct}% tolerance` +
          (spec.patience > 1 ? ` for ${spec.patience} steps in a row` : '');
        return { saturatedAt: s.step, reason, decidedThrough };
      }
    } else flat = 0;
    if (best === null || s.tokensPerSecond > best.tps) best = { step: s.step, tps: s.tokensPerSecond };
  }
  const last = ordered.at(-1)?.step ?? -1;
  const all = last + 1 >= spec.maxSteps;
  return {
    saturatedAt: null,
    reason: all ? `did not saturate within maxSteps (${spec.maxSteps})` : 'not saturated so far',
    decidedThrough,
  };
}

export type LadderAction = { action: 'run' } | { action: 'hold'; reason: string } | { action: 'skip'; reason: string };

export interface LadderGateInputs {
  configurations: readonly Configuration[];
  runs: readonly PlannedRun[];
  /** The run has ended: complete, failed (retries spent) or skipped. */
  ended: (runId: string) => boolean;
  /** A step's figures, by configuration id (from the aggregator's results and SLO evaluation). */
  step: (configId: string) => { tokensPerSecond: number | null; sloBroken: string | null };
}

interface Group {
  spec: LadderSpec;
  /** Configuration ids by step. */
  steps: Map<number, string>;
  runsOf: Map<string, string[]>;
}

function groups(inputs: LadderGateInputs): Map<string, Group> {
  const out = new Map<string, Group>();
  for (const c of inputs.configurations) {
    if (c.ladder === undefined) continue;
    const g = out.get(c.ladder.group) ?? { spec: c.ladder.spec, steps: new Map(), runsOf: new Map() };
    g.steps.set(c.ladder.step, c.id);
    out.set(c.ladder.group, g);
  }
  for (const r of inputs.runs) {
    if (r.ladder === undefined) continue;
    const g = out.get(r.ladder.group);
    const configId = g?.steps.get(r.ladder.step);
    if (g === undefined || configId === undefined) continue;
    g.runsOf.set(configId, [...(g.runsOf.get(configId) ?? []), r.id]);
  }
  return out;
}

export function groupVerdict(group: Group, inputs: LadderGateInputs): LadderVerdict {
  const steps = [...group.steps.entries()].map(([step, configId]) => ({
    step,
    finished: (group.runsOf.get(configId) ?? []).every((id) => inputs.ended(id)),
    ...inputs.step(configId),
  }));
  return ladderVerdict(steps, group.spec);
}

/** What each ladder run should do now; runs of no ladder are absent (they always run). */
export function ladderGate(inputs: LadderGateInputs): Map<string, LadderAction> {
  const out = new Map<string, LadderAction>();
  for (const [name, g] of groups(inputs)) {
    const v = groupVerdict(g, inputs);
    for (const [step, configId] of g.steps) {
      for (const runId of g.runsOf.get(configId) ?? []) {
        if (v.saturatedAt !== null && step > v.saturatedAt)
          out.set(runId, { action: 'skip', reason: `ladder ${name} saturated at step ${v.saturatedAt}: ${v.reason}` });
        else if (step > v.decidedThrough + 1)
          out.set(runId, { action: 'hold', reason: `waits for step ${v.decidedThrough + 1} of ladder ${name}` });
        else out.set(runId, { action: 'run' });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- curves and the knee

export interface LadderPoint {
  step: number;
  configId: string;
  /** Offered load: requests/s (rate) or in-flight requests (concurrency). */
  load: number;
  ran: boolean;
  joulesPerToken: CycleStats | null;
  tokensPerSecond: CycleStats | null;
  ttftP50Ms: CycleStats | null;
  ttftP99Ms: CycleStats | null;
  itlP50Ms: CycleStats | null;
  itlP99Ms: CycleStats | null;
  meetsSlo: boolean | null;
}

export interface LadderCurve {
  group: string;
  backend: string;
  mode: LadderSpec['mode'];
  spec: LadderSpec;
  points: LadderPoint[];
  saturatedAt: number | null;
  reason: string;
  /** See kneeOf. */
  knee: { step: number; load: number; definition: string } | null;
  kneeReason: string;
}

export const KNEE_DEFINITION =
  'the lowest load whose mean tokens/s is within saturationTolerancePct of the ladder’s highest mean tokens/s ' +
  '(among steps meeting the SLOs, when SLOs are set): past it, more load adds latency, not throughput';

export function kneeOf(points: readonly LadderPoint[], spec: LadderSpec): { knee: LadderPoint | null; why: string } {
  const usable = points.filter((p) => p.ran && p.tokensPerSecond?.mean != null && p.meetsSlo !== false);
  const peak = Math.max(...usable.map((p) => p.tokensPerSecond?.mean ?? 0));
  if (usable.length === 0) return { knee: null, why: 'no step has a throughput figure (within the SLOs)' };
  const floor = peak * (1 - spec.saturationTolerancePct / 100);
  const knee = usable.find((p) => (p.tokensPerSecond?.mean ?? 0) >= floor) ?? null;
  return { knee, why: knee === null ? 'no step reaches the peak' : '' };
}

export function ladderCurves(
  configurations: readonly Configuration[],
  results: readonly ConfigResult[],
  slos: readonly ConfigSlo[],
  verdictOf: (group: string) => LadderVerdict,
): LadderCurve[] {
  const byId = new Map(results.map((r) => [r.configId, r]));
  const sloById = new Map(slos.map((s) => [s.configId, s]));
  const out = new Map<string, LadderCurve>();
  for (const c of configurations) {
    if (c.ladder === undefined) continue;
    const r = byId.get(c.id);
    const ran = r !== undefined && r.runsIncluded.length > 0;
    const q = (m: 'ttftMs' | 'itlMs', p: 'p50' | 'p99'): CycleStats | null => (ran ? r.latency[m][p] : null);
    const point: LadderPoint = {
      step: c.ladder.step,
      configId: c.id,
      load: c.ladder.value,
      ran,
      joulesPerToken: ran ? r.metrics.joulesPerToken : null,
      tokensPerSecond: ran ? r.metrics.tokensPerSecond : null,
      ttftP50Ms: q('ttftMs', 'p50'),
      ttftP99Ms: q('ttftMs', 'p99'),
      itlP50Ms: q('itlMs', 'p50'),
      itlP99Ms: q('itlMs', 'p99'),
      meetsSlo: sloById.get(c.id)?.meets ?? null,
    };
    const curve = out.get(c.ladder.group) ?? {
      group: c.ladder.group,
      backend: c.backend.name,
      mode: c.ladder.mode,
      spec: c.ladder.spec,
      points: [],
      saturatedAt: null,
      reason: '',
      knee: null,
      kneeReason: '',
    };
    curve.points.push(point);
    out.set(c.ladder.group, curve);
  }
  return [...out.values()].map((curve) => {
    const points = [...curve.points].sort((a, b) => a.step - b.step);
    const v = verdictOf(curve.group);
    const { knee, why } = kneeOf(points, curve.spec);
    return {
      ...curve,
      points,
      saturatedAt: v.saturatedAt,
      reason: v.reason,
      knee: knee === null ? null : { step: knee.step, load: knee.load, definition: KNEE_DEFINITION },
      kneeReason: why,
    };
  });
}

/** The Group of every ladder, for verdicts outside the gate (reports). */
export function ladderVerdicts(inputs: LadderGateInputs): Map<string, LadderVerdict> {
  return new Map([...groups(inputs)].map(([name, g]) => [name, groupVerdict(g, inputs)]));
}
