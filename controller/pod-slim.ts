// What the pod cache keeps of each agent pod: the fields the controller reads, nothing else (client-go's
// cache transform, done in place on the object the informer stores). A finished 20,000-run experiment
// leaves thousands of pods in the cache while their deletions drain (ADR 0034); whole, each held its
// spec, managedFields, annotations and every container's image, ids and timestamps (~4 KB), and the
// controller's memory after the release followed the API server's deletion rate (ADR 0035).
// Read elsewhere: metadata name/namespace/labels/deletionTimestamp/ownerReferences (manager.ts: the
// owning experiment); the informer's own bookkeeping: uid and resourceVersion; status phase, reason and
// message (runs.ts: failed pods), the PodScheduled condition (pod-waiting.ts) and each container's
// name and state (runs.ts: stuck, failed, finished).
import type { V1ContainerStatus, V1Pod, V1PodStatus } from '@kubernetes/client-node';

const KEPT_METADATA = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'labels', 'deletionTimestamp']);
const KEPT_STATUS = new Set(['phase', 'reason', 'message', 'conditions', 'containerStatuses', 'initContainerStatuses']);

function slimContainers(list: V1ContainerStatus[] | undefined): V1ContainerStatus[] | undefined {
  // The generated type marks image, imageID, ready and restartCount required; the controller reads none.
  return list?.map(
    (c) => ({ name: c.name, ...(c.state !== undefined ? { state: c.state } : {}) }) as V1ContainerStatus,
  );
}

function slimMetadata(p: V1Pod): void {
  const meta = p.metadata as Record<string, unknown> | undefined;
  if (meta === undefined || p.metadata === undefined) return;
  const owner = p.metadata.ownerReferences?.find((o) => o.controller === true);
  for (const k of Object.keys(meta)) if (!KEPT_METADATA.has(k)) delete meta[k];
  if (owner !== undefined)
    p.metadata.ownerReferences = [
      { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid, controller: true },
    ];
}

function slimStatus(status: V1PodStatus): void {
  const st = status as Record<string, unknown>;
  for (const k of Object.keys(st)) if (!KEPT_STATUS.has(k)) delete st[k];
  const scheduled = status.conditions?.filter((c) => c.type === 'PodScheduled' && c.status === 'False') ?? [];
  if (scheduled.length === 0) delete status.conditions;
  else
    status.conditions = scheduled.map((c) => ({
      type: c.type,
      status: c.status,
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      ...(c.message !== undefined ? { message: c.message } : {}),
    }));
  const containers = slimContainers(status.containerStatuses);
  if (containers === undefined) delete status.containerStatuses;
  else status.containerStatuses = containers;
  const init = slimContainers(status.initContainerStatuses);
  if (init === undefined) delete status.initContainerStatuses;
  else status.initContainerStatuses = init;
}

/** Drops, in place, every field of a pod the controller never reads. */
export function slimPod(p: V1Pod): void {
  delete (p as { spec?: unknown }).spec;
  slimMetadata(p);
  if (p.status !== undefined) slimStatus(p.status);
}
