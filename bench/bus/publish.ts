// How the bus bench's publishers send: each one a real agent Publisher with its own seq, behind a
// window of `inFlight` wire messages not yet stored (an agent that outruns the bus feels it so).
import { Publisher, type BatchFormat } from '../../agent/publisher.ts';
import type { SketchBody } from '../../agent/slices.ts';
import type { Bus } from '../../lib/bus/types.ts';

export const NS = 'bench';

export interface PublishPlan {
  uid: string;
  /** Publisher indexes this thread runs (run-<p>). */
  publishers: number[];
  perPublisher: number;
  inFlight: number;
  maxBatch: number;
  kind: 'ready' | 'sketch';
  /** Binary batches (ADR 0033) or JSON ones (the previous release's agents; the baseline consumer reads only these). */
  batchFormat: BatchFormat;
  /**
   * At most this many of a publisher's messages between publish and apply (0: no such bound). The
   * consumer counts what it applied per publisher in `applied` (shared with worker threads).
   */
  unapplied: number;
  /** Bus messages (batches) each Publisher keeps awaiting their acks (its maxInFlight); inFlight when absent. */
  busInFlight?: number;
}

/** Applied messages per publisher, written by the consumer, read by the publishers (any thread). */
export function appliedCounters(publishers: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(publishers * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Counts n applied messages of publisher `p`. No Atomics.notify: waking a waiter in another thread
 * cost the consumer's thread ~50 us a bus message (a fifth of its time), a cost of this bench's pacing
 * that no deployment has; the publishers poll instead (untilApplied).
 */
export function countApplied(applied: Int32Array, p: number, n: number): void {
  Atomics.add(applied, p, n);
}

/** How often paced publishers look at their applied counts again. */
const POLL_MS = 1;

interface Waiter {
  /** The phase's counts (appliedCounters) this waiter reads. */
  applied: Int32Array;
  p: number;
  sent: number;
  window: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * The thread's paced publishers that wait for the consumer, and one timer that looks at all of them every
 * POLL_MS (ADR 0041): a timer and a promise per publisher per millisecond were 12.8% of the publisher
 * threads' busy time in a profile. The timer runs only while someone waits.
 */
const waiters = new Set<Waiter>();
let polling = false;
/** The counts of phases whose publishAll has settled: nothing waits on them any more. */
const over = new WeakSet<Int32Array>();
const phaseOver = (): Error => new Error('the phase is over (a publisher failed): no more waiting for the consumer');

function poll(): void {
  for (const w of waiters)
    if (w.sent - Atomics.load(w.applied, w.p) < w.window) {
      waiters.delete(w);
      w.resolve();
    }
  polling = waiters.size > 0;
  if (polling) setTimeout(poll, POLL_MS);
}

/** Resolves once fewer than `window` of publisher p's first `sent` messages are unapplied. */
function untilApplied(applied: Int32Array, p: number, sent: number, window: number): Promise<void> | undefined {
  if (over.has(applied)) return Promise.reject(phaseOver());
  if (sent - Atomics.load(applied, p) < window) return undefined;
  return new Promise((resolve, reject) => {
    waiters.add({ applied, p, sent, window, resolve, reject });
    if (!polling) {
      polling = true;
      setTimeout(poll, POLL_MS);
    }
  });
}

/** Paced publishers still waiting on `applied` (a phase's counts); 0 once the phase has settled. */
export function waitingOn(applied: Int32Array): number {
  let n = 0;
  for (const w of waiters) if (w.applied === applied) n++;
  return n;
}

/**
 * Runs the plan's publishers, publisher p on buses[i % buses.length]; resolves when all are stored.
 * `applied`: appliedCounters, counted by the consumer.
 */
export async function publishAll(
  buses: Bus[],
  plan: PublishPlan,
  slices: SketchBody[],
  applied: Int32Array,
): Promise<void> {
  const { uid, perPublisher, inFlight, maxBatch, kind, batchFormat, unapplied } = plan;
  const busInFlight = plan.busInFlight ?? inFlight;
  try {
    await Promise.all(
      plan.publishers.map(async (p, i) => {
        const bus = buses[i % buses.length] as Bus;
        const key = { namespace: NS, experimentUid: uid, runId: `run-${p}`, attempt: 0, replica: 0 };
        const publisher = new Publisher(bus, key, true, busInFlight, { maxBatch, format: batchFormat });
        // Before message i, wait for the ack of message i - inFlight, so the queue never outgrows the window.
        const window: Array<Promise<void>> = [];
        for (let m = 0; m < perPublisher; m++) {
          if (m >= inFlight) await window[m % inFlight];
          if (unapplied > 0) await untilApplied(applied, p, m, unapplied);
          window[m % inFlight] =
            kind === 'ready'
              ? publisher.publish('ready', {})
              : publisher.publish('sketch', slices[(m + p) % slices.length] as SketchBody);
        }
        await publisher.drain();
      }),
    );
  } finally {
    // After a failed publish the other publishers may still wait, or come to wait: nothing will count for
    // them again, so their loops end here (Promise.all has already settled, so it ignores them).
    over.add(applied);
    for (const w of waiters)
      if (w.applied === applied) {
        waiters.delete(w);
        w.reject(phaseOver());
      }
  }
}
