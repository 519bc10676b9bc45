// The only writes the controller makes to Kubernetes, behind one small interface (KubeWriter) so
// the reconciler can be unit-tested with a fake. Implementation: @kubernetes/client-node.
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Lease,
  type V1ObjectMeta,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { makeApiClient } from './api-client.ts';
import type { EnergyExperimentStatus } from '../api/status.ts';
import { API_GROUP, API_VERSION_NAME, KIND, PLURAL } from '../api/spec.ts';
import { LlemError } from '../lib/errors.ts';

export const FINALIZER = 'llem.dev/cleanup';
export const LABEL_EXPERIMENT = 'llem.dev/experiment';
export const LABEL_EXPERIMENT_UID = 'llem.dev/experiment-uid';
export const LABEL_RUN = 'llem.dev/run';
export const LABEL_ATTEMPT = 'llem.dev/attempt';
export const LABEL_REPLICA = 'llem.dev/replica';
export const FIELD_MANAGER = 'llem-controller';

/** An EnergyExperiment as read from the API server: spec not yet validated. */
export interface ExperimentObject {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: unknown;
  /** Raw, as the API server returned it: read only through the status schema (status-view.ts). */
  status?: unknown;
}

export class KubeError extends LlemError {
  override name = 'KubeError';
  readonly statusCode: number;
  constructor(message: string, statusCode: number, options: { cause?: unknown } = {}) {
    super('LLEM_E_KUBE', message, options);
    this.statusCode = statusCode;
  }
}

export function statusCodeOf(err: unknown): number | undefined {
  if (err instanceof KubeError) return err.statusCode;
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
export const isAlreadyExists = (err: unknown): boolean => statusCodeOf(err) === 409;

export type EventType = 'Normal' | 'Warning';

export interface KubeWriter {
  /** Merge-patches `.status` through the status subresource. */
  patchExperimentStatus(namespace: string, name: string, status: EnergyExperimentStatus): Promise<ExperimentObject>;
  /** Replaces the finalizer list, guarded by resourceVersion (409 on a stale object). */
  setFinalizers(obj: ExperimentObject, finalizers: string[]): Promise<void>;
  deleteExperiment(namespace: string, name: string): Promise<void>;
  /**
   * Creates the pod; one that already exists is fine (a retried reconcile). Resolves to the stored
   * pod's resourceVersion when the answer has one (expectations.ts), else undefined.
   */
  createPod(pod: V1Pod): Promise<string | undefined | void>;
  /** Deletes the pod; one already gone is fine. */
  deletePod(namespace: string, name: string): Promise<void>;
  /** Creates the Secret (a run's bus credentials); one that already exists is fine. Create only: never reads. */
  createSecret?(secret: V1Secret): Promise<void>;
  recordEvent(obj: ExperimentObject, type: EventType, reason: string, message: string): Promise<void>;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const EVENT_DEDUP_MS = 10 * 60 * 1000;

export class ClientNodeWriter implements KubeWriter {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly recentEvents = new Map<string, number>();

  constructor(
    kc: KubeConfig,
    private readonly component = FIELD_MANAGER,
  ) {
    this.custom = makeApiClient(kc, CustomObjectsApi);
    this.core = makeApiClient(kc, CoreV1Api);
  }

  async patchExperimentStatus(
    namespace: string,
    name: string,
    status: EnergyExperimentStatus,
  ): Promise<ExperimentObject> {
    return (await this.custom.patchNamespacedCustomObjectStatus(
      {
        group: API_GROUP,
        version: API_VERSION_NAME,
        plural: PLURAL,
        namespace,
        name,
        body: { status },
        fieldManager: FIELD_MANAGER,
      },
      mergePatch,
    )) as ExperimentObject;
  }

  async setFinalizers(obj: ExperimentObject, finalizers: string[]): Promise<void> {
    const md = obj.metadata ?? {};
    const body = { metadata: { finalizers, resourceVersion: md.resourceVersion } };
    await this.custom.patchNamespacedCustomObject(
      {
        group: API_GROUP,
        version: API_VERSION_NAME,
        plural: PLURAL,
        namespace: md.namespace ?? 'default',
        name: md.name ?? '',
        body,
        fieldManager: FIELD_MANAGER,
      },
      mergePatch,
    );
  }

  async deleteExperiment(namespace: string, name: string): Promise<void> {
    try {
      await this.custom.deleteNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION_NAME,
        plural: PLURAL,
        namespace,
        name,
        propagationPolicy: 'Background',
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async createPod(pod: V1Pod): Promise<string | undefined> {
    try {
      const created = await this.core.createNamespacedPod({
        namespace: pod.metadata?.namespace ?? 'default',
        body: pod,
        fieldManager: FIELD_MANAGER,
      });
      return created.metadata?.resourceVersion;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return undefined;
    }
  }

  async createSecret(secret: V1Secret): Promise<void> {
    try {
      await this.core.createNamespacedSecret({
        namespace: secret.metadata?.namespace ?? 'default',
        body: secret,
        fieldManager: FIELD_MANAGER,
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  async deletePod(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 30 });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async recordEvent(obj: ExperimentObject, type: EventType, reason: string, message: string): Promise<void> {
    const md = obj.metadata ?? {};
    const dedupKey = `${md.uid ?? ''}\0${reason}\0${message}`;
    const now = Date.now();
    if ((this.recentEvents.get(dedupKey) ?? 0) > now - EVENT_DEDUP_MS) return;
    this.recentEvents.set(dedupKey, now);
    if (this.recentEvents.size > 5000) this.recentEvents.clear();
    const namespace = md.namespace ?? 'default';
    const time = new Date(now);
    await this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${md.name ?? 'experiment'}.`, namespace },
        involvedObject: {
          apiVersion: `${API_GROUP}/${API_VERSION_NAME}`,
          kind: KIND,
          name: md.name ?? '',
          namespace,
          uid: md.uid ?? '',
          resourceVersion: md.resourceVersion ?? '',
        },
        type,
        reason,
        message,
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: process.env['HOSTNAME'] ?? 'llem-controller',
        firstTimestamp: time,
        lastTimestamp: time,
        count: 1,
      },
    });
  }
}

/** Lease reads and writes for leader election. */
export interface LeaseClient {
  get(namespace: string, name: string): Promise<V1Lease | null>;
  create(lease: V1Lease): Promise<V1Lease>;
  /** Replace guarded by the lease's resourceVersion: 409 when someone else wrote first. */
  replace(lease: V1Lease): Promise<V1Lease>;
}

export class ClientNodeLeases implements LeaseClient {
  private readonly api: CoordinationV1Api;
  constructor(kc: KubeConfig) {
    this.api = makeApiClient(kc, CoordinationV1Api);
  }
  async get(namespace: string, name: string): Promise<V1Lease | null> {
    try {
      return await this.api.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
  create(lease: V1Lease): Promise<V1Lease> {
    return this.api.createNamespacedLease({ namespace: lease.metadata?.namespace ?? 'default', body: lease });
  }
  replace(lease: V1Lease): Promise<V1Lease> {
    return this.api.replaceNamespacedLease({
      namespace: lease.metadata?.namespace ?? 'default',
      name: lease.metadata?.name ?? '',
      body: lease,
    });
  }
}
