// A worker thread of the bus bench running some of its publishers on their own NATS connections, as
// agents run in their own pods: the consumer's thread then pays only for consuming. The parent sends
// { servers, plan }, this thread connects and answers 'ready', the parent sends 'go', this thread
// publishes and answers 'done' (or 'error: ...').
import { parentPort, workerData } from 'node:worker_threads';
import { openNatsBus } from '../../lib/bus/nats.ts';
import { publishAll, type PublishPlan } from './publish.ts';
import { slicePool } from './slices.ts';

const { servers, plan, applied } = workerData as { servers: string; plan: PublishPlan; applied: Int32Array };
const port = parentPort;
if (port === null) throw new Error('publisher-worker.ts runs as a worker thread');
const slices = slicePool();
const buses = await Promise.all(plan.publishers.map(() => openNatsBus({ servers })));
port.once('message', () => {
  void publishAll(buses, plan, slices, applied)
    .then(
      () => 'done',
      (err: unknown) => `error: ${(err as Error).message}`,
    )
    .then(async (answer) => {
      for (const b of buses) await b.close();
      port.postMessage(answer);
    });
});
port.postMessage('ready');
