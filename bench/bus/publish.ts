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
}

/** Runs the plan's publishers, publisher p on buses[i % buses.length]; resolves when all are stored. */
export async function publishAll(buses: Bus[], plan: PublishPlan, slices: SketchBody[]): Promise<void> {
  const { uid, perPublisher, inFlight, maxBatch, kind, batchFormat } = plan;
  await Promise.all(
    plan.publishers.map(async (p, i) => {
      const bus = buses[i % buses.length] as Bus;
      const key = { namespace: NS, experimentUid: uid, runId: `run-${p}`, attempt: 0, replica: 0 };
      const publisher = new Publisher(bus, key, true, inFlight, maxBatch, batchFormat);
      // Before message i, wait for the ack of message i - inFlight, so the queue never outgrows the window.
      const window: Array<Promise<void>> = [];
      for (let m = 0; m < perPublisher; m++) {
        if (m >= inFlight) await window[m % inFlight];
        window[m % inFlight] =
          kind === 'ready'
            ? publisher.publish('ready', {})
            : publisher.publish('sketch', slices[(m + p) % slices.length] as SketchBody);
      }
      await publisher.drain();
    }),
  );
}
