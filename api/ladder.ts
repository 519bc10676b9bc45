// Load-ladder expansion (issue #22 item 1, ADR 0030). A configuration whose workload has a `ladder`
// becomes one configuration per step, each an ordinary workload (mode + ratePerSecond or concurrency
// set from the step, `ladder` removed), so a step hashes like the same fixed load written by hand and
// `llem results compare` matches them. Every step is planned up front with a content-derived id; the
// runtimes decide at run time which steps run (aggregator/ladder.ts), from recorded results only, so
// a resumed or restarted ladder takes the same decisions.
import type { LadderSpec, WorkloadSpec } from './spec.ts';

/** Where a configuration sits on its ladder. */
export interface LadderPosition {
  /** Id shared by every step of one ladder: `<backend>-<short hash of the base configuration>`. */
  group: string;
  /** From 0. */
  step: number;
  /** The step's load: requests/s (rate) or in-flight requests (concurrency). */
  value: number;
  mode: LadderSpec['mode'];
  /** The ladder as written (saturation tolerance, patience, maxSteps). */
  spec: LadderSpec;
}

/**
 * The load of every step. Concurrency steps are whole numbers and strictly rising: a factor that
 * would repeat a value (1 x 1.2 -> 1) moves on by one instead.
 */
export function ladderValues(l: LadderSpec): number[] {
  const out: number[] = [];
  for (let k = 0; k < l.maxSteps; k++) {
    const raw = l.factor !== undefined ? l.start * l.factor ** k : l.start + k * (l.step ?? 0);
    if (l.mode === 'rate') {
      out.push(Number(raw.toPrecision(12)));
      continue;
    }
    const prev = out[k - 1];
    const rounded = Math.round(raw);
    out.push(prev !== undefined && rounded <= prev ? prev + 1 : rounded);
  }
  return out;
}

/** The swept path a ladder sets, per mode. */
export function ladderField(mode: LadderSpec['mode']): 'workload.ratePerSecond' | 'workload.concurrency' {
  return mode === 'rate' ? 'workload.ratePerSecond' : 'workload.concurrency';
}

/** The ordinary workload of one step. */
export function stepWorkload(w: WorkloadSpec, l: LadderSpec, value: number): WorkloadSpec {
  const { ladder: _ladder, ...rest } = w;
  if (l.mode === 'rate') return { ...rest, mode: 'rate', ratePerSecond: value };
  return { ...rest, mode: 'concurrency', concurrency: value };
}
