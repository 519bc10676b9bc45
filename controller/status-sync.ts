// The status each experiment shows, as this controller knows it: its own wanted status while that
// patch is in flight or the cache has not caught up, else the cache's, parsed once per
// resourceVersion through the status schema; and sending a new one only when it differs.
import { canonicalJson } from '../api/paths.ts';
import type { EnergyExperimentStatus } from '../api/status.ts';
import type { AggregateResults } from '../aggregator/index.ts';
import type { Logger } from '../lib/log.ts';
import type { ExperimentObject } from './kube.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { ExperimentRef } from './pods.ts';
import { statusChanged } from './status.ts';
import { experimentStatus } from './status-view.ts';
import type { BackgroundWrites } from './status-writer.ts';

export class StatusSync {
  /** The status last read from the cache, by uid: parsed once per resourceVersion, not per reconcile. */
  private readonly parsed = new Map<string, { rv: string; status: EnergyExperimentStatus }>();

  constructor(
    private readonly background: BackgroundWrites,
    private readonly log: Logger,
  ) {}

  /** Status as last written (ours, when the cache lags), read through the status schema. */
  previous(obj: ExperimentObject): EnergyExperimentStatus {
    const uid = obj.metadata?.uid ?? '';
    const mine = this.background.wanted.get(uid);
    const rv = Number(obj.metadata?.resourceVersion ?? '0');
    // Ours while its patch is in flight, or until the cache shows a version at least as new.
    if (mine !== undefined && (mine.rv === undefined || (Number.isFinite(rv) && rv <= mine.rv))) return mine.status;
    const cached = this.parsed.get(uid);
    const rvText = obj.metadata?.resourceVersion ?? '';
    if (cached !== undefined && cached.rv === rvText && rvText !== '') return cached.status;
    const status = experimentStatus(obj.status, this.log);
    this.parsed.set(uid, { rv: rvText, status });
    return status;
  }

  /**
   * Sends the status when it differs from the last one wanted (or, without one, from the cache's);
   * true when it did. The patch goes in the background (status-writer.ts): the reconcile does not wait.
   */
  write(obj: ExperimentObject, ref: ExperimentRef, status: EnergyExperimentStatus): boolean {
    const canonical = canonicalJson(status);
    const mine = this.background.wanted.get(ref.uid);
    const prev = this.previous(obj);
    // What we wanted last is compared by its canonical form, computed once (status can be ~200 KB).
    if (mine !== undefined && prev === mine.status ? mine.canonical === canonical : !statusChanged(prev, status))
      return false;
    this.background.status(ref.uid, ref.namespace, ref.name, status, canonical);
    return true;
  }

  forget(uid: string): void {
    this.parsed.delete(uid);
  }

  /** The cache shows our last patch (or newer): the copy kept of it (status + canonical form) can go. */
  settled(obj: ExperimentObject): void {
    const uid = obj.metadata?.uid ?? '';
    const mine = this.background.wanted.get(uid);
    const rv = Number(obj.metadata?.resourceVersion ?? '0');
    if (mine?.rv !== undefined && Number.isFinite(rv) && rv >= mine.rv) this.background.forget(uid);
  }
}

/** Gauges from the status just built (in flight at most every STATUS_REFRESH_MS). */
export function observeStatus(
  m: ControllerMetrics,
  ref: ExperimentRef,
  status: EnergyExperimentStatus,
  aggregate: AggregateResults | null,
): void {
  const p = status.progress;
  if (p === undefined) return;
  const labels = { namespace: ref.namespace, experiment: ref.name };
  for (const [phase, n] of [
    ['Pending', p.pending],
    ['Running', p.running],
    ['Succeeded', p.succeeded],
    ['Failed', p.failed],
  ] as const)
    m.experimentRuns.set({ ...labels, phase }, n);
  const energy = aggregate?.experiment.totals.energyJoules ?? null;
  if (energy !== null) m.experimentEnergy.set(labels, energy);
  else m.experimentEnergy.remove(labels);
  if (status.best !== undefined) m.experimentJoulesPerToken.set(labels, status.best.joulesPerToken);
}
