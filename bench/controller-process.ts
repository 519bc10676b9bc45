// The controller under benchmark, alone in its own process so its RSS is its own: the same Controller
// `llem controller` runs, plus an IPC channel that reports reconcile durations (apart from queue
// wait), errors, feeds in memory and RSS to bench/controller.ts.
import { Controller } from '../controller/index.ts';
import { Reconciler } from '../controller/reconciler.ts';
import { StatusSync } from '../controller/status-sync.ts';
import { Aggregator } from '../aggregator/index.ts';
import { openNatsBus } from '../lib/bus/index.ts';
import { rootLogger } from '../lib/log.ts';
import { KubeConfig } from '@kubernetes/client-node';
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { readFileSync } from 'node:fs';

/** Resident anonymous memory (heap, malloc) apart from file-backed pages (the node binary's code). */
function anonBytes(): number | undefined {
  try {
    const kb = /^Anonymous:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

interface Args {
  kubeconfig: string;
  natsUrl: string;
  namespace: string;
  workers: number;
}

const gc = (globalThis as { gc?: (o: unknown) => void }).gc;
const args = JSON.parse(process.argv[2] ?? '{}') as Args;
let durations: number[] = [];
let queued: number[] = [];
let errors = 0;

/**
 * Where the slowest passes spent their time: the Reconciler's pass phases timed by wrapping them (a pass
 * never yields, so their sync parts add up to the pass). Kept for the SLOWEST passes only.
 */
const SLOWEST = 12;
const parts: Record<string, number> = {};
let slowest: { ms: number; parts: Record<string, number> }[] = [];
function timed(proto: Record<string, (...a: unknown[]) => unknown>, m: string, label = m): void {
  const orig = proto[m];
  if (orig === undefined) return;
  proto[m] = function (this: unknown, ...a: unknown[]): unknown {
    const t0 = performance.now();
    try {
      return orig.apply(this, a);
    } finally {
      parts[label] = (parts[label] ?? 0) + performance.now() - t0;
    }
  };
}
type Proto = Record<string, (...a: unknown[]) => unknown>;
for (const m of ['step', 'actuate', 'publish', 'statusOf', 'releasedPass', 'validated'])
  timed(Reconciler.prototype as unknown as Proto, m);
timed(Aggregator.prototype as unknown as Proto, 'results', 'results');
timed(StatusSync.prototype as unknown as Proto, 'write', 'statusWrite');
timed(StatusSync.prototype as unknown as Proto, 'previous', 'statusPrevious');

function notePass(ms: number): void {
  const taken = { ...parts };
  for (const k of Object.keys(parts)) delete parts[k];
  if (slowest.length < SLOWEST || ms > (slowest[slowest.length - 1]?.ms ?? 0)) {
    slowest.push({ ms, parts: taken });
    slowest.sort((a, b) => b.ms - a.ms);
    slowest.length = Math.min(slowest.length, SLOWEST);
  }
}

const kc = new KubeConfig();
kc.loadFromFile(args.kubeconfig);
const bus = await openNatsBus({ servers: args.natsUrl, name: 'bench-controller' });
const controller = new Controller({
  kubeConfig: kc,
  bus,
  namespace: args.namespace,
  workers: args.workers,
  podOptions: { agentImage: 'llem/agent:bench', backendImages: {}, agentEnv: [], simulate: true },
  leaderElection: { enabled: false, namespace: args.namespace, name: 'bench' },
  probe: null,
  log: rootLogger.child({ component: 'bench-controller' }, { level: 'error' }),
  onReconcile: (_k, ms, ok, queuedMs) => {
    durations.push(ms);
    queued.push(queuedMs);
    notePass(ms);
    if (!ok) errors += 1;
  },
});
await controller.start();

process.on('message', (m: { cmd: string; path?: string }) => {
  if (m.cmd === 'heap-snapshot') {
    // What is still held (bench --heap-snapshot DIR): the heap written after a full collection.
    process.send?.({
      path: writeHeapSnapshot(m.path),
      feeds: controller.activeFeeds(),
      rssBytes: process.memoryUsage().rss,
    });
  } else if (m.cmd === 'take') {
    const feeds = controller.activeFeeds();
    process.send?.({ durations, queued, errors, feeds, rssBytes: process.memoryUsage().rss, slowest });
    slowest = [];
    durations = [];
    queued = [];
    errors = 0;
  } else if (m.cmd === 'rss' || m.cmd === 'rss-gc') {
    // 'rss': as the process is (after idling, V8's memory reducer has shrunk the heap by itself);
    // 'rss-gc': after a memory-reducing full collection, so what is reported is what is still held.
    if (m.cmd === 'rss-gc') gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const m2 = process.memoryUsage();
    const heapCommittedBytes = getHeapStatistics().total_heap_size;
    process.send?.({
      feeds: controller.activeFeeds(),
      rssBytes: m2.rss,
      heapUsedBytes: m2.heapUsed,
      heapCommittedBytes,
      externalBytes: m2.external,
      arrayBuffersBytes: m2.arrayBuffers,
      anonBytes: anonBytes(),
      retained: controller.retained(),
    });
  } else if (m.cmd === 'stop') {
    void controller
      .stop()
      .then(() => bus.close())
      .then(() => process.exit(0));
  }
});
process.send?.({ ready: true });
