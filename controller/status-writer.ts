// Status patches and pod deletions, off the reconcile's critical path. A status patch of a big
// experiment is ~200 KB the API server decodes, validates and stores: on a loaded server it takes
// seconds, and a reconcile waiting for it held the experiment's key (and a worker) that long. Here a
// reconcile records the status it wants and returns; one patch per experiment is in flight at a
// time and only the newest wanted status is sent next (older ones are never sent). A failed patch
// forgets what it wanted, so the next reconcile compares with the cache and writes again, and asks
// for that reconcile. Pod deletions are idempotent and re-issued by the next pass while a finished
// run's pod still shows, so they are sent in the background too, each name once at a time.
import type { EnergyExperimentStatus } from '../api/status.ts';
import type { Logger } from '../lib/log.ts';
import type { KubeWriter } from './kube.ts';

export interface WantedStatus {
  status: EnergyExperimentStatus;
  canonical: string;
  /** resourceVersion the API server gave it; undefined while its patch is in flight. */
  rv: number | undefined;
}

/** Pod DELETE requests open at once (client-go's default QPS is 5, burst 10; this is a concurrency cap). */
export const MAX_DELETES_IN_FLIGHT = 64;
/**
 * A pod deleted moments ago is not deleted again while the cache has not shown the deletion yet (the
 * next pass still sees it): without this a finishing big experiment sent each DELETE about twice.
 * Remembered for one to two of these windows (two generations of names, swapped as time passes).
 */
export const DELETED_RECENTLY_MS = 30_000;

/**
 * Names of pods whose DELETE succeeded, in two generations: the current window and the one before.
 * Lookups and expiry are O(1): a Map of timestamps pruned from its oldest entry was scanned past every
 * entry deleted before (V8 keeps deleted slots until it rehashes), which made each lookup of a big
 * experiment's pod cost thousands of steps, and names never looked up again were kept for good.
 */
class RecentDeletes {
  private current = new Set<string>();
  private previous = new Set<string>();
  private windowStartMs: number;

  constructor(private readonly nowMs: () => number) {
    this.windowStartMs = nowMs();
  }

  private rotate(): void {
    const now = this.nowMs();
    const age = now - this.windowStartMs;
    if (age < DELETED_RECENTLY_MS) return;
    this.previous = age < 2 * DELETED_RECENTLY_MS ? this.current : new Set();
    this.current = new Set();
    this.windowStartMs = now;
  }

  add(key: string): void {
    this.rotate();
    this.current.add(key);
  }

  has(key: string): boolean {
    this.rotate();
    return this.current.has(key) || this.previous.has(key);
  }

  get size(): number {
    this.rotate();
    return this.current.size + this.previous.size;
  }
}

interface Slot {
  namespace: string;
  name: string;
  inFlight: Promise<void> | undefined;
  next: WantedStatus | undefined;
}

export class BackgroundWrites {
  /** What each experiment (by uid) should show: the last status wanted, written or on its way. */
  readonly wanted = new Map<string, WantedStatus>();
  private readonly slots = new Map<string, Slot>();
  /** Pods whose deletion is queued or in flight, by namespace/name. */
  private readonly deleting = new Set<string>();
  /** Deletions waiting for a free slot, oldest first (at most MAX_DELETES_IN_FLIGHT are sent at once). */
  private readonly deleteQueue: { namespace: string; name: string; uid: string }[] = [];
  private deleteHead = 0;
  private deletesSent = 0;
  /** Pods whose DELETE succeeded lately, by experiment uid, then namespace/name. */
  private readonly deleted = new Map<string, RecentDeletes>();
  /** Other background work (pod creates, run-table writes, start signals), until it settles. */
  private readonly tracked = new Set<Promise<void>>();
  /** Patches sent, and patches skipped because a newer status replaced them (tests, metrics). */
  readonly counts = { patched: 0, superseded: 0, failed: 0, deletes: 0 };

  constructor(
    private readonly writer: KubeWriter,
    private readonly log: Logger,
    /** A write failed: reconcile this experiment again (namespace/name). */
    private readonly retry: (key: string) => void,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Records the status wanted and sends it (now, or after the patch in flight). */
  status(uid: string, namespace: string, name: string, status: EnergyExperimentStatus, canonical: string): void {
    const want: WantedStatus = { status, canonical, rv: undefined };
    this.wanted.set(uid, want);
    let slot = this.slots.get(uid);
    if (slot === undefined) {
      slot = { namespace, name, inFlight: undefined, next: undefined };
      this.slots.set(uid, slot);
    }
    if (slot.next !== undefined) this.counts.superseded += 1;
    slot.next = want;
    // Started at once when nothing is in flight: the patch request is issued before this returns.
    if (slot.inFlight === undefined) slot.inFlight = this.drain(uid, slot);
  }

  private async drain(uid: string, slot: Slot): Promise<void> {
    for (let want = slot.next; want !== undefined; want = slot.next) {
      slot.next = undefined;
      try {
        const updated = await this.writer.patchExperimentStatus(slot.namespace, slot.name, want.status);
        this.counts.patched += 1;
        const rv = Number(updated.metadata?.resourceVersion ?? '0');
        if (Number.isFinite(rv)) want.rv = rv;
      } catch (err) {
        this.counts.failed += 1;
        // Forgotten, so the next reconcile compares with the cache and writes again.
        if (this.wanted.get(uid) === want) this.wanted.delete(uid);
        this.log.warn({ err, experiment: `${slot.namespace}/${slot.name}` }, 'status patch failed; reconciling again');
        this.retry(`${slot.namespace}/${slot.name}`);
      }
    }
    slot.inFlight = undefined;
    if (slot.next === undefined) this.slots.delete(uid);
  }

  /** Follows background work so `idle()` can wait for it; a failure is logged (the next pass redoes it). */
  track(work: Promise<void>): void {
    const p = work
      .catch((err: unknown) => this.log.warn({ err }, 'background write failed; the next pass redoes it'))
      .finally(() => this.tracked.delete(p));
    this.tracked.add(p);
  }

  /** Waits for every patch in flight (and the ones queued behind them) and, without `uid`, all other work. */
  async idle(uid?: string): Promise<void> {
    if (uid === undefined) while (this.tracked.size > 0) await Promise.all([...this.tracked]);
    for (;;) {
      const pending = [...this.slots.entries()]
        .filter(([u]) => uid === undefined || u === uid)
        .map(([, s]) => s.inFlight)
        .filter((p) => p !== undefined);
      if (pending.length === 0) return;
      await Promise.all(pending);
    }
  }

  forget(uid: string): void {
    this.wanted.delete(uid);
    this.deleted.delete(uid);
  }

  /**
   * Deletes the pod in the background, unless its deletion is already queued or in flight. At most
   * MAX_DELETES_IN_FLIGHT requests are open at once: a 20,000-run experiment finishing 2,000 runs
   * in a few passes once opened 2,000 HTTP/2 streams at once, which stalled for minutes and kept
   * every request, and every pod in the cache, alive long after the experiment was released.
   */
  deletePod(namespace: string, name: string, uid = ''): void {
    const key = `${namespace}/${name}`;
    if (this.deleting.has(key) || this.deleted.get(uid)?.has(key) === true) return;
    this.deleting.add(key);
    this.counts.deletes += 1;
    this.deleteQueue.push({ namespace, name, uid });
    this.sendDeletes();
  }

  /** The experiment's pods are gone from the cache: what was deleted lately need not be remembered. */
  forgetDeletions(uid: string): void {
    this.deleted.delete(uid);
  }

  private sendDeletes(): void {
    while (this.deletesSent < MAX_DELETES_IN_FLIGHT && this.deleteHead < this.deleteQueue.length) {
      const { namespace, name, uid } = this.deleteQueue[this.deleteHead] as {
        namespace: string;
        name: string;
        uid: string;
      };
      this.deleteHead += 1;
      this.deletesSent += 1;
      const key = `${namespace}/${name}`;
      const sent = this.writer
        .deletePod(namespace, name)
        .then(() => this.recentlyDeleted(uid).add(key))
        .catch((err: unknown) => this.log.warn({ err, pod: key }, 'pod deletion failed; the next pass retries it'))
        .finally(() => {
          this.deleting.delete(key);
          this.deletesSent -= 1;
          this.sendDeletes();
        });
      this.track(sent);
    }
    // The queue's array is dropped once drained, so a big experiment's names do not stay behind.
    if (this.deleteHead === this.deleteQueue.length) {
      this.deleteQueue.length = 0;
      this.deleteHead = 0;
    }
  }

  private recentlyDeleted(uid: string): RecentDeletes {
    let recent = this.deleted.get(uid);
    if (recent === undefined) this.deleted.set(uid, (recent = new RecentDeletes(this.nowMs)));
    return recent;
  }

  retained(): Record<string, number> {
    let recentDeletes = 0;
    for (const r of this.deleted.values()) recentDeletes += r.size;
    return {
      recentDeletes,
      wantedStatuses: this.wanted.size,
      statusSlots: this.slots.size,
      podDeletions: this.deleting.size,
      deleteQueue: this.deleteQueue.length,
    };
  }

  /** Pod deletions queued or in flight (tests). */
  get deletesInFlight(): number {
    return this.deleting.size;
  }

  /** Requests open right now (at most MAX_DELETES_IN_FLIGHT; tests). */
  get deleteRequestsOpen(): number {
    return this.deletesSent;
  }
}
