// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews every
// retry period; others take over only after they have watched the same renewTime sit unchanged for
// a whole lease duration by their own clock (so clock skew between replicas does not matter).
// Writes are guarded by resourceVersion, so two candidates can never both win one round.
import type { V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from '../lib/log.ts';
import type { LeaseClient } from './kube.ts';
import { isConflict } from './kube.ts';

export interface LeaderElectionOptions {
  leases: LeaseClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/** RFC 3339 with exactly six fractional digits: the API server parses MicroTime strictly. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private observed: { holder: string; renew: string; atMs: number } | undefined;
  private lastRenewMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly durationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.durationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      if (!isConflict(err)) this.opts.log.warn({ err }, 'lease update failed');
    }
    if (ok) this.lastRenewMs = Date.now();
    if (ok && !this.leading) {
      this.leading = true;
      this.opts.log.info({ lease: this.opts.name, identity: this.opts.identity }, 'became leader');
      this.opts.onStartedLeading();
    } else if (!ok && this.leading && Date.now() - this.lastRenewMs > this.renewDeadlineMs) {
      this.leading = false;
      this.opts.log.warn({ lease: this.opts.name }, 'lost leadership: could not renew the lease in time');
      this.opts.onStoppedLeading();
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retryMs);
  }

  private spec(now: Date, prev: V1Lease | null, transitions: number): V1LeaseSpec {
    const mine = prev?.spec?.holderIdentity === this.opts.identity;
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
      acquireTime: (mine && prev?.spec?.acquireTime !== undefined
        ? prev.spec.acquireTime
        : microTime(now)) as unknown as Date,
      renewTime: microTime(now) as unknown as Date,
      leaseTransitions: transitions,
    };
  }

  /**
   * Another holder's lease has expired when its renewTime has not changed for a lease duration, as
   * this process observed it (clocks of different nodes are never compared).
   */
  private expired(lease: V1Lease): boolean {
    const holder = lease.spec?.holderIdentity ?? '';
    const renew = String(lease.spec?.renewTime ?? '');
    const seen =
      this.observed?.holder === holder && this.observed.renew === renew
        ? this.observed
        : { holder, renew, atMs: Date.now() };
    this.observed = seen;
    const durationMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.durationMs / 1000)) * 1000;
    return Date.now() - seen.atMs > durationMs;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const lease = await this.opts.leases.get(this.opts.namespace, this.opts.name);
    if (lease === null) {
      await this.opts.leases.create({
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: this.spec(now, null, 0),
      });
      return true;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== '' && holder !== this.opts.identity && !this.expired(lease)) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.opts.identity ? 0 : 1);
    await this.opts.leases.replace({ ...lease, spec: this.spec(now, lease, transitions) });
    return true;
  }

  /** Stops renewing; a leader releases the lease so a successor need not wait out the duration. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.opts.leases.get(this.opts.namespace, this.opts.name);
      if (lease?.spec?.holderIdentity === this.opts.identity) {
        await this.opts.leases.replace({
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
        });
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'could not release the lease');
    }
  }
}
