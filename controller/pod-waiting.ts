// Why a run's pod waits for a node, from the scheduler's own verdict (PodScheduled=False, Unschedulable):
// a retried run whose only node is lost, or a cluster with no free GPU, says so in the Running condition
// instead of looking like progress (ADR 0026).
import type { V1Pod } from '@kubernetes/client-node';
import type { RunSummary } from '../api/status.ts';
import { LABEL_ATTEMPT, LABEL_RUN } from './kube.ts';
import { labelValue } from './pods.ts';

/** The scheduler's reason when it cannot place this pod, or undefined. */
function unschedulable(p: V1Pod): string | undefined {
  if (p.metadata?.deletionTimestamp !== undefined || p.status?.phase !== 'Pending') return undefined;
  const c = p.status.conditions?.find((x) => x.type === 'PodScheduled');
  if (c?.status !== 'False' || c.reason !== 'Unschedulable') return undefined;
  return (c.message ?? 'no reason given').trim();
}

/** The scheduler's message for the first pod of a running attempt it cannot place, or undefined. */
export function waitingForNode(pods: readonly V1Pod[], runs: readonly RunSummary[]): string | undefined {
  // Pods first (bounded by the runs in flight, and almost never unschedulable): the run table, which can
  // hold 20,000 runs, is read only when one is.
  const stuck = pods.flatMap((p) => {
    const why = unschedulable(p);
    return why === undefined ? [] : [{ p, why }];
  });
  if (stuck.length === 0) return undefined;
  const running = new Set<string>();
  for (const r of runs) if (r.phase === 'Running') running.add(`${labelValue(r.id)}/${r.attempt}`);
  for (const { p, why } of stuck) {
    const labels = p.metadata?.labels ?? {};
    if (running.has(`${labels[LABEL_RUN] ?? ''}/${labels[LABEL_ATTEMPT] ?? ''}`))
      return `pod ${p.metadata?.name ?? '?'} cannot be scheduled: ${why}`.slice(0, 1000);
  }
  return undefined;
}
