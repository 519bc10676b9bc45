// Informers over @kubernetes/client-node's ListWatch. Its watch relists by itself on 410 Gone; any
// other error stops it, so restarting with capped exponential backoff is done here. Readiness is
// reported only after the first list has seeded the cache; a periodic resync re-announces every
// cached object so a missed event is never permanent.
import {
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ListPromise,
  type ObjectCache,
  type V1Pod,
} from '@kubernetes/client-node';
import { makeApiClient } from './api-client.ts';
import { API_GROUP, API_VERSION_NAME, PLURAL } from '../api/spec.ts';
import type { Logger } from '../lib/log.ts';
import { LABEL_EXPERIMENT_UID, LABEL_RUN, type ExperimentObject } from './kube.ts';
import { slimPod } from './pod-slim.ts';

/** Read side of the cache, as the reconciler sees it. */
export interface ObjectStore<T> {
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string): T[];
  /**
   * The last resourceVersion the cache observed (a watch event or a list); '' while unknown. A store
   * without it makes pod expectations fall back to a timeout (expectations.ts).
   */
  resourceVersion?(): string;
  /** Objects whose `indexLabel` (InformerOptions) has this value, without a scan of the whole cache. */
  withLabel?(value: string): T[];
}

export type ChangeHandler<T> = (kind: 'add' | 'update' | 'delete' | 'resync', obj: T) => void;

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  path: string;
  list: ListPromise<T>;
  labelSelector?: string;
  onChange: ChangeHandler<T>;
  log: Logger;
  resyncMs?: number;
  /** Called on every restart after an error (metrics). */
  onRestart?: () => void;
  /** A label whose values index the cache (`withLabel`): e.g. the experiment uid of agent pods. */
  indexLabel?: string;
  /** Drops what the controller never reads from each cached object (client-go's cache transform). */
  transform?: (o: T) => void;
}

export class ResilientInformer<T extends KubernetesObject> implements ObjectStore<T> {
  private informer: (Informer<T> & ObjectCache<T>) | undefined;
  private synced = false;
  private stopped = false;
  private failures = 0;
  private resyncTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  /** client-node's start() reports a failed list through the error callback, not by throwing. */
  private starting = false;
  private startError: unknown;
  /** indexLabel value -> `<namespace>/<name>` -> object, kept by the informer's own events. */
  private readonly index = new Map<string, Map<string, T>>();

  constructor(private readonly opts: InformerOptions<T>) {}

  private indexed(kind: 'add' | 'update' | 'delete', o: T): void {
    const label = this.opts.indexLabel;
    const value = label === undefined ? undefined : o.metadata?.labels?.[label];
    if (value === undefined) return;
    const key = `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    let bucket = this.index.get(value);
    if (kind === 'delete') {
      bucket?.delete(key);
      if (bucket?.size === 0) this.index.delete(value);
      return;
    }
    if (bucket === undefined) this.index.set(value, (bucket = new Map()));
    bucket.set(key, o);
  }

  withLabel(value: string): T[] {
    return [...(this.index.get(value)?.values() ?? [])];
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  async start(): Promise<void> {
    this.informer = makeInformer(this.opts.kc, this.opts.path, this.opts.list, this.opts.labelSelector);
    for (const kind of ['add', 'update', 'delete'] as const)
      this.informer.on(kind, (o) => {
        // Like client-go's cache transform: managedFields (about half of a pod's bytes) are never
        // read by the controller, so the cached object does not keep them.
        if (o.metadata?.managedFields !== undefined) delete o.metadata.managedFields;
        this.opts.transform?.(o);
        this.indexed(kind, o);
        this.opts.onChange(kind, o);
      });
    this.informer.on('error', (err: unknown) => {
      if (this.starting) this.startError = err;
      else this.scheduleRestart(err);
    });
    this.informer.on('connect', () => {
      this.failures = 0;
    });
    await this.startWithRetry();
    const resyncMs = this.opts.resyncMs ?? 5 * 60 * 1000;
    this.resyncTimer = setInterval(() => this.resync(), resyncMs);
    this.resyncTimer.unref();
  }

  private async startWithRetry(): Promise<void> {
    while (!this.stopped) {
      this.starting = true;
      this.startError = undefined;
      try {
        await this.informer?.start();
      } catch (err) {
        this.startError = err;
      }
      this.starting = false;
      if (this.startError === undefined) {
        this.synced = true;
        return;
      }
      this.opts.log.warn({ err: this.startError, path: this.opts.path }, 'informer list failed; retrying');
      await sleep(this.backoffMs());
    }
  }

  private backoffMs(): number {
    this.failures += 1;
    return Math.min(100 * 2 ** Math.min(this.failures, 10), 30_000);
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.restartTimer !== undefined) return;
    const delay = this.backoffMs();
    this.opts.log.warn({ err, path: this.opts.path, delayMs: delay }, 'informer stopped; restarting');
    this.opts.onRestart?.();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopped) void this.startWithRetry();
    }, delay);
  }

  private resync(): void {
    for (const o of this.list()) this.opts.onChange('resync', o);
  }

  get(namespace: string, name: string): T | undefined {
    return this.informer?.get(name, namespace);
  }

  list(namespace?: string): T[] {
    return [...(this.informer?.list(namespace) ?? [])];
  }

  resourceVersion(): string {
    return (this.informer as { latestResourceVersion?: () => string } | undefined)?.latestResourceVersion?.() ?? '';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    clearTimeout(this.restartTimer);
    await this.informer?.stop();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function experimentInformer(
  kc: KubeConfig,
  namespace: string | undefined,
  onChange: ChangeHandler<ExperimentObject & KubernetesObject>,
  log: Logger,
): ResilientInformer<ExperimentObject & KubernetesObject> {
  const api = makeApiClient(kc, CustomObjectsApi);
  const base = { group: API_GROUP, version: API_VERSION_NAME, plural: PLURAL };
  const path =
    namespace === undefined
      ? `/apis/${API_GROUP}/${API_VERSION_NAME}/${PLURAL}`
      : `/apis/${API_GROUP}/${API_VERSION_NAME}/namespaces/${namespace}/${PLURAL}`;
  const list = (): Promise<never> =>
    (namespace === undefined
      ? api.listClusterCustomObject(base)
      : api.listNamespacedCustomObject({ ...base, namespace })) as Promise<never>;
  return new ResilientInformer({ kc, path, list, onChange, log: log.child({ informer: 'experiments' }) });
}

export function podInformer(
  kc: KubeConfig,
  namespace: string | undefined,
  onChange: ChangeHandler<V1Pod>,
  log: Logger,
): ResilientInformer<V1Pod> {
  const api = makeApiClient(kc, CoreV1Api);
  const labelSelector = LABEL_RUN;
  const path = namespace === undefined ? '/api/v1/pods' : `/api/v1/namespaces/${namespace}/pods`;
  const list = (): Promise<never> =>
    (namespace === undefined
      ? api.listPodForAllNamespaces({ labelSelector })
      : api.listNamespacedPod({ namespace, labelSelector })) as Promise<never>;
  return new ResilientInformer({
    kc,
    path,
    list,
    labelSelector,
    onChange,
    log: log.child({ informer: 'pods' }),
    // A pass reads its own experiment's pods, not every agent pod of the namespace (2,000 at 200 x 10).
    indexLabel: LABEL_EXPERIMENT_UID,
    // The controller reads a few fields of a pod's metadata and status, never its spec (containers, env,
    // volumes: most of its bytes); thousands of finished pods wait in the cache for their deletions
    // (ADR 0034), so each keeps only what is read (ADR 0035).
    transform: slimPod,
  });
}
