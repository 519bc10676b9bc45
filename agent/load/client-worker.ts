// One client thread: a StreamingClient on its own event loop. The main thread sends requests and
// aborts; this thread answers with first-token events and results, timestamps already moved onto the
// main thread's performance.now() clock (each thread has its own time origin).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { StreamingClient, type ClientOptions, type RequestResult } from './client.ts';
import type { ClientThreadReply, ClientThreadRequest } from './threaded-client.ts';

const port = parentPort;
if (port === null) throw new Error('client-worker.ts runs only as a worker thread');
const { options, mainTimeOrigin } = workerData as { options: ClientOptions; mainTimeOrigin: number };
const client = new StreamingClient(options);
const shift = performance.timeOrigin - mainTimeOrigin;
const pending = new Map<number, AbortController>();
// Measured only once asked (the benchmark): a 1 ms timer has no place on a measuring agent's loop.
const loop = monitorEventLoopDelay({ resolution: 1 });
let measuring = false;

const post = (m: ClientThreadReply): void => port.postMessage(m);

function onMain(r: RequestResult): RequestResult {
  return { ...r, startMs: r.startMs + shift, endMs: r.endMs + shift };
}

port.on('message', (m: ClientThreadRequest) => {
  if (m.type === 'send') {
    const abort = new AbortController();
    pending.set(m.id, abort);
    const hooks = m.firstToken ? { onFirstToken: () => post({ type: 'first', id: m.id }) } : undefined;
    void client.send(m.req, abort.signal, hooks).then((r) => {
      pending.delete(m.id);
      post({ type: 'result', id: m.id, result: onMain(r) });
    });
  } else if (m.type === 'warm') {
    void client.warm(m.connections, m.path).then((connections) => post({ type: 'warmed', id: m.id, connections }));
  } else if (m.type === 'abort') {
    pending.get(m.id)?.abort();
  } else if (m.type === 'loop') {
    if (!measuring) {
      loop.enable();
      measuring = true;
    }
    post({ type: 'loop', id: m.id, p99Ms: loop.percentile(99) / 1e6 });
    if (m.reset) loop.reset();
  } else {
    for (const a of pending.values()) a.abort();
    client.close();
    loop.disable();
    port.close();
  }
});
