// Wires the controller: informers (kept warm on every replica), leader election, the work queue and
// its workers (only on the leader), the experiment streams, metrics and probes.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Bus } from '../lib/bus/types.ts';
import type { Logger } from '../lib/log.ts';
import { experimentInformer, podInformer, type ResilientInformer } from './informer.ts';
import { ClientNodeLeases, ClientNodeWriter, type ExperimentObject, type KubeWriter } from './kube.ts';
import { LeaderElector } from './leader.ts';
import { ControllerMetrics } from './metrics.ts';
import type { PodBuilderOptions } from './pods.ts';
import { Reconciler } from './reconciler.ts';
import { BusExperimentStreams } from './results.ts';
import { startProbeServer, type ProbeServer } from './http.ts';
import { WorkQueue, DEFAULT_RATE_LIMITS, type RateLimiterOptions } from './workqueue.ts';
import { LlemError } from '../lib/errors.ts';
import { exportPrometheusRegistry } from '../lib/telemetry/index.ts';
import { MemoryReclaimer } from './memory.ts';

/** A reconcile error that retrying cannot fix: logged and counted, never requeued. */
export class TerminalError extends LlemError {
  override name = 'TerminalError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LLEM_E_KUBE', message, options);
  }
}

export interface LeaderElectionConfig {
  enabled: boolean;
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  bus: Bus;
  /** Watch one namespace; undefined = all namespaces. */
  namespace?: string;
  workers?: number;
  podOptions: PodBuilderOptions;
  leaderElection: LeaderElectionConfig;
  /** Probe + metrics listener; null = none (tests). */
  probe?: { host: string; port: number } | null;
  retryBaseMs?: number;
  rateLimits?: RateLimiterOptions;
  checkpointMs?: number;
  log: Logger;
  metrics?: ControllerMetrics;
  writer?: KubeWriter;
  /**
   * Called after every reconcile (benchmarks): its duration, and apart from it how long the key waited in the queue.
   */
  onReconcile?: (key: string, ms: number, ok: boolean, queuedMs: number) => void;
  /** Leadership lost: default stops the controller; the CLI exits so a fresh process starts. */
  onLostLeadership?: () => void;
}

export class Controller {
  readonly metrics: ControllerMetrics;
  private readonly experiments: ResilientInformer<ExperimentObject & { metadata?: object }>;
  private readonly pods: ResilientInformer<V1Pod>;
  private readonly streams: BusExperimentStreams;
  private readonly reconciler: Reconciler;
  private readonly elector: LeaderElector | undefined;
  private queue: WorkQueue | undefined;
  private workers: Promise<void>[] = [];
  private probe: ProbeServer | undefined;
  private stopped = false;
  readonly identity: string;
  /** Gives a released large experiment's heap back to the OS (memory.ts). */
  readonly memory: MemoryReclaimer;

  constructor(private readonly opts: ControllerOptions) {
    this.metrics = opts.metrics ?? new ControllerMetrics();
    // The same metrics over OTLP, read at each export; a no-op unless OTEL_* turned telemetry on.
    exportPrometheusRegistry(this.metrics.registry);
    this.identity = opts.leaderElection.identity ?? `${hostname()}_${randomUUID().slice(0, 8)}`;
    const log = opts.log;
    this.memory = new MemoryReclaimer(log);
    this.experiments = experimentInformer(
      opts.kubeConfig,
      opts.namespace,
      (_k, o) => this.enqueue(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`),
      log,
    );
    this.pods = podInformer(opts.kubeConfig, opts.namespace, (_k, p) => this.onPod(p), log);
    this.streams = new BusExperimentStreams(
      opts.bus,
      {
        changed: (ref) => this.enqueue(`${ref.namespace}/${ref.name}`),
        applied: (_ref, kind) => this.metrics.messagesApplied.inc({ kind }),
        lag: (ref, s) => this.metrics.aggregatorLag.set({ namespace: ref.namespace, experiment: ref.name }, s),
        message: (ref, msg) => this.metrics.runPower.observe(ref.namespace, ref.name, msg),
      },
      log,
      opts.checkpointMs,
    );
    this.reconciler = new Reconciler({
      experiments: this.experiments,
      pods: this.pods,
      writer: opts.writer ?? new ClientNodeWriter(opts.kubeConfig),
      streams: this.streams,
      podOptions: opts.podOptions,
      log,
      metrics: this.metrics,
      requeue: (key) => void this.queue?.addRateLimited(key),
      released: (runs) => this.memory.released(runs),
      ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}),
    });
    if (opts.leaderElection.enabled) {
      const le = opts.leaderElection;
      this.elector = new LeaderElector({
        leases: new ClientNodeLeases(opts.kubeConfig),
        namespace: le.namespace,
        name: le.name,
        identity: this.identity,
        ...(le.leaseDurationMs !== undefined ? { leaseDurationMs: le.leaseDurationMs } : {}),
        ...(le.renewDeadlineMs !== undefined ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
        ...(le.retryPeriodMs !== undefined ? { retryPeriodMs: le.retryPeriodMs } : {}),
        log,
        onStartedLeading: () => this.lead(),
        onStoppedLeading: () => this.lostLeadership(),
      });
    }
  }

  /** Experiments whose stream feed (consumer, Aggregator, run table) is in memory. */
  activeFeeds(): number {
    return this.streams.active();
  }

  /** Per-experiment state the reconciler holds, by structure, and pods in the cache (bench, tests). */
  retained(): Record<string, number> {
    const pods = this.pods.list();
    const terminating = pods.filter((p) => p.metadata?.deletionTimestamp !== undefined).length;
    return {
      ...this.reconciler.retained(),
      cachedPods: pods.length,
      cachedPodsTerminating: terminating,
      reclaims: this.memory.reclaims,
    };
  }

  /** `llem.run.attempt` spans started and not yet ended (runs in flight, when tracing is on). */
  openAttemptSpans(): number {
    return this.reconciler.attempts.size;
  }

  get isLeader(): boolean {
    return this.queue !== undefined;
  }

  ready(): boolean {
    return this.experiments.hasSynced && this.pods.hasSynced;
  }

  probePort(): number | undefined {
    return this.probe?.port;
  }

  async start(): Promise<void> {
    if (this.opts.probe !== null && this.opts.probe !== undefined) {
      this.probe = await startProbeServer({
        ...this.opts.probe,
        registry: this.metrics.registry,
        health: { healthy: () => !this.stopped, ready: () => this.ready() },
      });
    }
    await this.opts.bus.ensureLayout();
    await Promise.all([this.experiments.start(), this.pods.start()]);
    if (this.elector !== undefined) this.elector.start();
    else this.lead();
  }

  private enqueue(key: string): void {
    this.queue?.add(key);
    if (this.queue !== undefined) this.metrics.queueDepth.set(this.queue.stats().depth);
  }

  private onPod(pod: V1Pod): void {
    const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
    if (owner !== undefined) this.enqueue(`${pod.metadata?.namespace ?? ''}/${owner.name}`);
  }

  private lead(): void {
    if (this.stopped || this.queue !== undefined) return;
    this.metrics.leader.set(1);
    this.queue = new WorkQueue(this.opts.rateLimits ?? DEFAULT_RATE_LIMITS);
    for (const o of this.experiments.list()) this.enqueue(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`);
    const n = this.opts.workers ?? 4;
    const queue = this.queue;
    this.workers = Array.from({ length: n }, () => this.work(queue));
  }

  private lostLeadership(): void {
    this.metrics.leader.set(0);
    if (this.opts.onLostLeadership !== undefined) this.opts.onLostLeadership();
    else void this.stop();
  }

  private async work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const queuedMs = queue.takeQueuedMs(key);
      this.metrics.queueDuration.observe(queuedMs / 1000);
      const t0 = performance.now();
      let ok = true;
      try {
        const res = await this.reconciler.reconcile(key);
        queue.forget(key);
        if (res.requeueAfterMs !== undefined) queue.addAfter(key, res.requeueAfterMs);
        this.metrics.reconciles.inc({ result: res.requeueAfterMs !== undefined ? 'requeue' : 'success' });
      } catch (err) {
        ok = false;
        this.onError(queue, key, err);
      } finally {
        const ms = performance.now() - t0;
        this.metrics.reconcileDuration.observe(ms / 1000);
        this.metrics.queueDepth.set(queue.stats().depth);
        queue.done(key);
        this.opts.onReconcile?.(key, ms, ok, queuedMs);
      }
    }
  }

  private onError(queue: WorkQueue, key: string, err: unknown): void {
    if (err instanceof TerminalError) {
      queue.forget(key);
      this.metrics.reconciles.inc({ result: 'terminal' });
      this.opts.log.error({ err, key }, 'reconcile failed permanently');
      return;
    }
    this.metrics.reconciles.inc({ result: 'error' });
    this.metrics.reconcileErrors.inc();
    this.metrics.retries.inc();
    const delay = queue.addRateLimited(key);
    this.opts.log.warn({ err, key, retryInMs: delay }, 'reconcile failed; retrying');
  }

  /** Stops workers (in-flight reconciles finish), writes checkpoints, releases the lease. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.queue?.shutdown();
    await Promise.allSettled(this.workers);
    this.queue = undefined;
    await this.reconciler.background.idle();
    await this.elector?.stop();
    await this.streams.stopAll();
    await this.experiments.stop();
    await this.pods.stop();
    await this.probe?.close();
    this.memory.stop();
  }
}
