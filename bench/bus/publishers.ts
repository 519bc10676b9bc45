// Where the bus bench's publishers run: in the consumer's own thread, or in worker threads with a NATS
// connection each (as agents run in their own pods). Either way they are set up first and start on go().
import { Worker } from 'node:worker_threads';
import type { SketchBody } from '../../agent/slices.ts';
import type { Bus } from '../../lib/bus/types.ts';
import type { Publishers } from './measure.ts';
import { publishAll, type PublishPlan } from './publish.ts';

/** The plan's publishers on `buses`, in the consumer's own thread (the in-process bus can only do this). */
export function sameThread(buses: Bus[], plan: PublishPlan, slices: SketchBody[], applied: Int32Array): Publishers {
  return { where: 'consumer_thread', go: () => publishAll(buses, plan, slices, applied), close: async () => {} };
}

/** The plan's publishers split over `threads` worker threads, each publisher on its own NATS connection. */
export async function workerThreads(
  servers: string,
  plan: PublishPlan,
  threads: number,
  applied: Int32Array,
): Promise<Publishers> {
  const workers = Array.from({ length: threads }, (_, t) => {
    const mine = plan.publishers.filter((_p, i) => i % threads === t);
    const url = new URL('./publisher-worker.ts', import.meta.url);
    return new Worker(url, { workerData: { servers, plan: { ...plan, publishers: mine }, applied } });
  });
  const answer = (w: Worker): Promise<string> =>
    new Promise((res, rej) => {
      w.once('message', (m: string) => (m.startsWith('error') ? rej(new Error(m)) : res(m)));
      w.once('error', rej);
    });
  await Promise.all(workers.map(answer)); // 'ready': connected
  return {
    where: 'worker_threads',
    go: async () => {
      const done = workers.map(answer);
      for (const w of workers) w.postMessage('go');
      await Promise.all(done);
    },
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
