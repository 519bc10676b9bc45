// Starting runs: their pods rendered before anything is written (a render failure writes nothing),
// the run table stored first (write-ahead, ADR 0014), then the pods created, all in the background
// (ADR 0022); which created pods the cache may not show yet (expectations.ts); start signals.
import type { V1Pod } from '@kubernetes/client-node';
import type { RunMatrix } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import type { Logger } from '../lib/log.ts';
import { context } from '../lib/telemetry/index.ts';
import type { AttemptSpans } from './attempt-spans.ts';
import { busCredentialSecret } from './bus-credentials.ts';
import { PodExpectations } from './expectations.ts';
import type { KubeWriter } from './kube.ts';
import type { ControllerMetrics } from './metrics.ts';
import { buildPod, type ExperimentRef, type PodBuilderOptions } from './pods.ts';
import type { ExperimentFeed } from './results.ts';
import type { RunPlanOutput } from './runs.ts';

export interface RenderedPod {
  pod: V1Pod;
  runId: string;
}

export interface PodStartDeps {
  writer: KubeWriter;
  podOptions: PodBuilderOptions;
  log: Logger;
  attempts: AttemptSpans;
  metrics?: ControllerMetrics | undefined;
  renderPod?: typeof buildPod | undefined;
  /** Something failed: reconcile this key (namespace/name) again, rate-limited. */
  requeue?: ((key: string) => void) | undefined;
  /** Follows background work (BackgroundWrites.track), so a stop waits for it. */
  track: (work: Promise<void>) => void;
  nowMs?: () => number;
}

/**
 * A ready attempt's start signal is resent at most this often while it stays ready: a lost one is
 * resent, but a pass no longer publishes one signal per ready run (200 a pass at parallelism 200).
 */
export const SIGNAL_RESEND_MS = 2000;

export class PodStarts {
  readonly expectations: PodExpectations;
  /** `<uid>/<runId>` of runs whose credentials Secret exists (created or found). */
  private readonly busSecrets = new Set<string>();
  /** Start signals sent, by experiment uid: `<runId>/<attempt>` -> ms. Only attempts still signalled. */
  private readonly signalled = new Map<string, Map<string, number>>();

  constructor(private readonly deps: PodStartDeps) {
    this.expectations = new PodExpectations(deps.nowMs);
  }

  /** Every pod of this pass, rendered before anything is written: a render failure writes nothing. */
  render(ref: ExperimentRef, spec: EnergyExperimentSpec, matrix: RunMatrix, out: RunPlanOutput): RenderedPod[] {
    if (out.create.length === 0) return [];
    const render = this.deps.renderPod ?? buildPod;
    const byId = new Map(matrix.configurations.map((c) => [c.id, c]));
    return out.create.flatMap((c) => {
      const configuration = byId.get(c.run.configurationId);
      if (configuration === undefined) return [];
      // Rendered in the attempt's span: the agent config carries its traceparent (the agents' parent).
      const attempt = this.deps.attempts.started(ref.uid, c.run.id, c.attempt, {
        'llem.config.hash': c.run.configHash,
      });
      const pod = context.with(attempt, () =>
        render(
          { experiment: ref, spec, configuration, run: c.run, attempt: c.attempt, replica: c.replica },
          this.deps.podOptions,
        ),
      );
      return [{ pod, runId: c.run.id }];
    });
  }

  /** Expects the pods, then stores the run table and creates them, in the background. */
  start(ref: ExperimentRef, feed: ExperimentFeed, created: RenderedPod[]): void {
    for (const { pod } of created) this.expectations.expect(pod.metadata?.name ?? '', ref.uid);
    this.deps.track(this.persistThenCreate(ref, feed, created));
  }

  /**
   * Publishes start signals of ready attempts, each at most once per SIGNAL_RESEND_MS; returns how
   * long until one is due again (undefined: none waiting).
   */
  signal(
    ref: ExperimentRef,
    feed: ExperimentFeed,
    signals: RunPlanOutput['signal'],
    nowMs: number,
  ): number | undefined {
    const last = this.signalled.get(ref.uid);
    const next = new Map<string, number>();
    let dueMs: number | undefined;
    for (const s of signals) {
      const key = `${s.runId}/${s.attempt}`;
      const at = last?.get(key);
      if (at !== undefined && nowMs - at < SIGNAL_RESEND_MS) {
        next.set(key, at);
        dueMs = Math.min(dueMs ?? Infinity, at + SIGNAL_RESEND_MS - nowMs);
        continue;
      }
      next.set(key, nowMs);
      dueMs = Math.min(dueMs ?? Infinity, SIGNAL_RESEND_MS);
      this.deps.track(feed.signalStart(s.runId, s.attempt));
    }
    if (next.size > 0) this.signalled.set(ref.uid, next);
    else this.signalled.delete(ref.uid);
    return dueMs;
  }

  /** Sizes of what is kept across experiments (tests: a released experiment leaves nothing). */
  retained(): Record<string, number> {
    return {
      podExpectations: this.expectations.size,
      busSecrets: this.busSecrets.size,
      signalled: this.signalled.size,
    };
  }

  /** Everything kept for a finished or deleted experiment. */
  forget(uid: string): void {
    this.signalled.delete(uid);
    this.expectations.forgetExperiment(uid);
    const prefix = `${uid}/`;
    for (const k of this.busSecrets) if (k.startsWith(prefix)) this.busSecrets.delete(k);
  }

  /**
   * The run table first (write-ahead), then the pods. If either fails, the pods not created lose
   * their expectation and their runs are marked resumed, so the next pass creates the same attempt's
   * pods again instead of calling them lost; that pass is requeued.
   */
  private async persistThenCreate(ref: ExperimentRef, feed: ExperimentFeed, created: RenderedPod[]): Promise<void> {
    try {
      await feed.runs.persist();
    } catch (err) {
      for (const { pod, runId } of created) this.createFailed(ref, feed, runId, pod.metadata?.name, err);
      if (created.length === 0) throw err;
      return;
    }
    if (created.length > 0) await this.createPods(ref, feed, created);
  }

  private createFailed(
    ref: ExperimentRef,
    feed: ExperimentFeed,
    runId: string,
    name: string | undefined,
    err: unknown,
  ): void {
    if (name !== undefined) this.expectations.forget(name);
    feed.resumed.add(runId);
    this.deps.log.warn({ err, run: runId, pod: name }, 'pod not created; the next pass creates it again');
    this.deps.requeue?.(`${ref.namespace}/${ref.name}`);
  }

  private async createPods(ref: ExperimentRef, feed: ExperimentFeed, created: RenderedPod[]): Promise<void> {
    const failed = (runId: string, name: string | undefined, err: unknown): void =>
      this.createFailed(ref, feed, runId, name, err);
    await Promise.all(
      [...new Set(created.map((c) => c.runId))].map((runId) =>
        this.ensureBusCredentials(ref, runId).catch((err: unknown) => failed(runId, undefined, err)),
      ),
    );
    await Promise.all(
      created.map(async ({ pod, runId }) => {
        const name = pod.metadata?.name ?? '';
        if (feed.resumed.has(runId)) return void this.expectations.forget(name);
        try {
          const rv = await this.deps.writer.createPod(pod);
          this.expectations.created(name, rv ?? undefined);
          this.deps.metrics?.podsCreated.inc();
        } catch (err) {
          failed(runId, name, err);
        }
      }),
    );
  }

  /** The run's bus credentials Secret (ADR 0011), created once per run before its first pod. */
  private async ensureBusCredentials(ref: ExperimentRef, runId: string): Promise<void> {
    const issuer = this.deps.podOptions.busIssuer;
    const key = `${ref.uid}/${runId}`;
    if (issuer === undefined || this.busSecrets.has(key) || this.deps.writer.createSecret === undefined) return;
    await this.deps.writer.createSecret(busCredentialSecret(issuer, ref, runId));
    this.busSecrets.add(key);
  }
}
