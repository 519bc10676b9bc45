// Pods this controller created that its pod cache may not show yet (client-go's "expectations"), judged
// by the cache's own progress instead of a clock (ADR 0028). A create returns the pod's resourceVersion
// R; one watch delivers its events in resourceVersion order, so once the pod cache has observed any
// event (or a list) at R or later, it has seen this pod's ADDED event, and a pod it does not hold then
// was really deleted. Until then the pod counts as existing, however long the API server or the watch
// lag: a loaded host can delay a create or a watch event by minutes, and a fixed expectation timeout
// (60 s before, 5 min in client-go) turned exactly those pods into PodLost failures. A pod that
// vanished is judged lost as soon as the cache has caught up with its create, not after a timeout.
// resourceVersions are compared as integers (etcd revisions; comparable by KEP-5504); when either is
// not an integer, or the create's answer carried none (AlreadyExists), the old timeout is the fallback.

/** Fallback only: how long a create whose resourceVersion is unknown counts as existing (client-go's). */
export const EXPECTATION_TTL_MS = 5 * 60_000;

interface Expectation {
  /** When the create was decided (ms). */
  atMs: number;
  /** The created pod's resourceVersion; undefined while the create is in flight. */
  rv: bigint | undefined;
  /** The create returned without a comparable resourceVersion: only the timeout ends the expectation. */
  unknownRv: boolean;
  /** The experiment the pod belongs to. */
  uid: string;
}

function parseRv(rv: string | undefined): bigint | undefined {
  if (rv === undefined || !/^\d{1,30}$/.test(rv)) return undefined;
  return BigInt(rv);
}

export class PodExpectations {
  /** Pod name -> expectation, across experiments (pod names are unique per namespace and carry the uid). */
  private readonly byName = new Map<string, Expectation>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  get size(): number {
    return this.byName.size;
  }

  /** A create of this pod (of experiment `uid`) is about to be sent. */
  expect(name: string, uid = ''): void {
    this.byName.set(name, { atMs: this.nowMs(), rv: undefined, unknownRv: false, uid });
  }

  /**
   * A finished or deleted experiment's expectations: a pod created and deleted between two passes is
   * never observed in the cache, so without this its expectation stayed for the process's life.
   */
  forgetExperiment(uid: string): void {
    for (const [name, e] of this.byName) if (e.uid === uid) this.byName.delete(name);
  }

  /** The create succeeded: the API server stored the pod at `resourceVersion` (undefined: unknown). */
  created(name: string, resourceVersion: string | undefined): void {
    const e = this.byName.get(name);
    if (e === undefined) return;
    e.rv = parseRv(resourceVersion);
    e.unknownRv = e.rv === undefined;
  }

  /** The create failed (or was not sent): nothing to wait for. */
  forget(name: string): void {
    this.byName.delete(name);
  }

  /**
   * Whether `name` still counts as existing though the cache does not hold it. `cacheRv` is the pod
   * cache's last observed resourceVersion ('' or undefined: unknown, e.g. relisting).
   */
  pending(name: string, cacheRv: string | undefined): boolean {
    const e = this.byName.get(name);
    if (e === undefined) return false;
    const seen = parseRv(cacheRv);
    // Caught up with the create: the cache would hold the pod if it still existed.
    const over = e.rv !== undefined && seen !== undefined ? seen >= e.rv : this.expired(e);
    if (over) this.byName.delete(name);
    return !over;
  }

  /** No comparable resourceVersion on one side (a cache without one, an AlreadyExists answer): the timeout. */
  private expired(e: Expectation): boolean {
    // In flight (no answer yet) an expectation never expires: the create's failure ends it.
    if (e.rv === undefined && !e.unknownRv) return false;
    return this.nowMs() - e.atMs > EXPECTATION_TTL_MS;
  }

  /** The cache shows these pods: their expectations are met. */
  observed(names: Iterable<string>): void {
    for (const n of names) this.byName.delete(n);
  }
}
