// What a run's readings cannot be (issue #17 item 2), judged from the merged state when results are
// read, so the verdict is the same whatever order the messages arrived in: the same GPU counted
// twice, a GPU no hello announced, power above what the card can draw, a wall-clock step at a
// mark, protocol marks out of order. Each finding is a sentence; any finding makes the run
// incomplete (strict retries it) and keeps it out of every statistic, even under bestEffort.
import { implausibleCounter, type PowerBound } from './energy.ts';
import type { RunState } from './run-state.ts';
import type { GpuState, SegmentState } from './state.ts';

/** A card may briefly exceed its enforced limit; half again over it is a broken reading. */
export const POWER_LIMIT_FACTOR = 1.5;
/** Without a reported limit: no accelerator sold draws this much (B200 ~1 kW, MI355X ~1.4 kW). */
export const ABSOLUTE_POWER_CEILING_WATTS = 2000;

/** The bound for one GPU of one replica, from the power limit its hello reported. */
export function powerBound(run: RunState, replica: number, gpuUuid: string): PowerBound {
  const pub = run.publisher(replica);
  const i = pub?.gpuUuids?.indexOf(gpuUuid) ?? -1;
  const limit = i >= 0 ? (pub?.powerLimitsW[i] ?? null) : null;
  if (limit === null) {
    return { watts: ABSOLUTE_POWER_CEILING_WATTS, source: 'absolute ceiling; the GPU reported no power limit' };
  }
  return { watts: POWER_LIMIT_FACTOR * limit, source: `${POWER_LIMIT_FACTOR} x its ${limit} W power limit` };
}

function sharedGpus(run: RunState): string[] {
  const owners = new Map<string, Set<number>>();
  const note = (uuid: string, replica: number): void => {
    const set = owners.get(uuid) ?? new Set<number>();
    set.add(replica);
    owners.set(uuid, set);
  };
  const out: string[] = [];
  for (const p of run.data.publishers) {
    const uuids = p.gpuUuids ?? [];
    if (new Set(uuids).size !== uuids.length) out.push(`replica ${p.replica}: its hello lists the same GPU UUID twice`);
    for (const u of uuids) note(u, p.replica);
  }
  for (const g of run.data.gpus) note(g.gpuUuid, g.replica);
  for (const [uuid, replicas] of [...owners.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (replicas.size > 1) {
      out.push(
        `GPU ${uuid} is reported by replicas ${[...replicas].sort((a, b) => a - b).join(' and ')}: ` +
          'a shared GPU would be counted once per replica, so its energy cannot be attributed',
      );
    }
  }
  return out;
}

/** Judged only against a hello that listed GPUs: an empty list means the agent could not enumerate them. */
function unannounced(run: RunState, g: GpuState): string | null {
  const listed = run.publisher(g.replica)?.gpuUuids;
  if (listed === null || listed === undefined || listed.length === 0 || listed.includes(g.gpuUuid)) return null;
  return `replica ${g.replica}: telemetry for GPU ${g.gpuUuid}, which its hello did not list`;
}

function segmentProblems(seg: SegmentState | null, what: string, who: string, bound: PowerBound): string[] {
  if (seg === null) return [];
  const out: string[] = [];
  if (seg.maxImpliedPowerW > bound.watts) out.push(`${who}: ${implausibleCounter(seg, what, bound)}`);
  if (seg.peakPowerW !== null && seg.peakPowerW > bound.watts) {
    out.push(
      `${who}: sampled power ${seg.peakPowerW} W in the ${what} is above the plausible ${bound.watts} W ` +
        `(${bound.source})`,
    );
  }
  if (seg.clockStepBackMs > 0) {
    out.push(
      `${who}: the wall clock stepped back ${seg.clockStepBackMs} ms before the ${what}End mark, ` +
        `so the ${what}'s length is wrong`,
    );
  }
  return out;
}

function markOrder(g: GpuState, who: string): string[] {
  const b = g.baseline;
  const w = g.window;
  if (b === null || w === null || b.endMs === null) return [];
  if (w.startMs >= b.endMs) return [];
  return [`${who}: the window starts (t=${w.startMs} ms) before the baseline ends (t=${b.endMs} ms)`];
}

/** Every implausibility in the run's merged readings, as sentences; empty when there is none. */
export function plausibilityProblems(run: RunState): string[] {
  const out = sharedGpus(run);
  for (const g of run.data.gpus) {
    const who = `GPU ${g.gpuUuid} (replica ${g.replica})`;
    const bound = powerBound(run, g.replica, g.gpuUuid);
    const stray = unannounced(run, g);
    if (stray !== null) out.push(stray);
    out.push(...segmentProblems(g.baseline, 'baseline', who, bound));
    out.push(...segmentProblems(g.window, 'window', who, bound));
    out.push(...markOrder(g, who));
  }
  return out;
}
