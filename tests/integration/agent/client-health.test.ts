// The client's own health in every run (issue #25 items 2 and 3): connections are opened and used
// before the window (one per stream slot, none inside it), and a client whose event loop is blocked
// says so as `clientSaturated` in its summary and in the aggregated results.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeMessages, startSubject, type SummaryMessage, type WireMessage } from '../../../api/protocol.ts';
import { Aggregator } from '../../../aggregator/aggregator.ts';
import { measurementWeaknesses } from '../../../controller/aggregate-view.ts';
import { runsCsv } from '../../../report/csv.ts';
import { createLatencySketch } from '../../../lib/sketch/index.ts';
import { runAgent } from '../../../agent/runner.ts';
import { startMockServer, type MockServer } from '../../../agent/mock-server.ts';
import { createSimulatedGpu } from '../../../agent/telemetry/sampler.ts';
import { recordingBus } from './recording-bus.ts';
import { protocolConfig } from './protocol-helpers.ts';

let server: MockServer;
before(async () => {
  server = await startMockServer({ ttft: { meanMs: 15 }, itl: { meanMs: 3 } });
});
after(async () => server.close());

const deps = (bus: ReturnType<typeof recordingBus>['bus']): Parameters<typeof runAgent>[1] => ({
  bus,
  telemetry: createSimulatedGpu({ sampleIntervalMs: 20, batchIntervalMs: 50 }),
  createSketch: createLatencySketch,
});

/**
 * Connections the server accepted from the start of the baseline (the readiness probe, before it,
 * has its own) to the `ready` message, and to the end of the run.
 */
async function connectionsAroundWindow(
  threads: string | undefined,
): Promise<{ atReady: number; after: number; summary: SummaryMessage }> {
  const own = await startMockServer({ ttft: { meanMs: 10 }, itl: { meanMs: 3 } });
  const saved = process.env['LLEM_CLIENT_THREADS'];
  if (threads === undefined) delete process.env['LLEM_CLIENT_THREADS'];
  else process.env['LLEM_CLIENT_THREADS'] = threads;
  try {
    const { bus, messages } = recordingBus();
    let atReady = -1;
    let atBaseline = -1;
    const publish = bus.publish.bind(bus);
    bus.publish = async (subject, data, opts) => {
      // One wire message or a batch of them (ADR 0021).
      const d = decodeMessages(data);
      for (const m of d.ok ? d.messages : []) {
        if (m.kind === 'ready') atReady = own.stats().connections;
        if (m.kind === 'telemetry' && m.mark === 'baselineStart') atBaseline = own.stats().connections;
      }
      return publish(subject, data, opts);
    };
    const config = protocolConfig(own.url, {
      workload: { concurrency: 16, requests: 64 },
      measurement: { warmupRequests: 0, baselineSeconds: 0.1 },
    });
    await runAgent(config, deps(bus));
    return {
      atReady: atReady - atBaseline,
      after: own.stats().connections - atBaseline,
      summary: messages.at(-1) as SummaryMessage,
    };
  } finally {
    if (saved === undefined) delete process.env['LLEM_CLIENT_THREADS'];
    else process.env['LLEM_CLIENT_THREADS'] = saved;
    await own.close();
  }
}

void test('one keep-alive connection per stream slot is opened before the window and none inside it', async () => {
  const r = await connectionsAroundWindow('0');
  assert.equal(r.atReady, 16, 'opened before the window');
  assert.equal(r.after, 16, 'none opened inside the window');
  assert.equal(r.summary.client?.connectionsWarmed, 16);
  assert.equal(r.summary.client?.streamSlots, 16);
});

void test('with the streams spread over client threads, each thread warms its share and the window opens none', async () => {
  const r = await connectionsAroundWindow('2');
  assert.equal(r.atReady, 16);
  assert.equal(r.after, 16);
  assert.equal(r.summary.client?.connectionsWarmed, 16);
});

/** Blocks the agent's event loop for `busyMs` every `everyMs`: a client with no CPU to spare. */
function blockLoop(busyMs: number, everyMs: number): () => void {
  const timer = setInterval(() => {
    const end = performance.now() + busyMs;
    while (performance.now() < end) {
      // spin: this is the saturation being simulated
    }
  }, everyMs);
  return () => clearInterval(timer);
}

function aggregate(messages: readonly WireMessage[]): ReturnType<Aggregator['results']> {
  const agg = new Aggregator({
    experimentUid: 'uid-1',
    runs: [{ runId: 'run-a', configId: 'c', configHash: '', cycle: 0, replicas: 1, failurePolicy: 'strict' }],
  });
  agg.startAttempt('run-a', 2); // protocolConfig's attempt: the runtime started it
  messages.forEach((m, i) => agg.apply(m, i + 1));
  return agg.results();
}

void test('a deliberately blocked client loop is reported as clientSaturated in the summary and the results', async () => {
  const { bus, messages } = recordingBus();
  const config = protocolConfig(server.url, {
    workload: { mode: 'rate', ratePerSecond: 100, requests: 80 },
    measurement: { warmupRequests: 0, baselineSeconds: 0 },
  });
  const unblock = blockLoop(25, 60);
  let summary;
  try {
    summary = await runAgent(config, deps(bus));
  } finally {
    unblock();
  }
  const client = summary.client;
  assert.ok(client !== undefined);
  assert.ok(client.saturated, JSON.stringify(client));
  assert.ok((client.eventLoopDelayP99Ms ?? 0) >= 15, `event-loop delay p99 ${client.eventLoopDelayP99Ms}`);
  assert.ok((client.schedulingLagP99Ms ?? 0) >= 10, `scheduling lag p99 ${client.schedulingLagP99Ms}`);
  assert.ok(
    summary.warnings.some((w) => w.startsWith('clientSaturated:')),
    summary.warnings.join('; '),
  );
  const results = aggregate(messages);
  const run = results.runs[0];
  assert.equal(run?.client[0]?.saturated, true);
  assert.ok(
    run.notes.some((n) => n.includes('clientSaturated')),
    run.notes.join('; '),
  );
  // The experiment's status says so too: Degraded with reason ClientSaturated.
  assert.equal(measurementWeaknesses(results).clientSaturated, 1);
  const [header, row] = runsCsv(results)
    .split('\n')
    .map((l) => l.split(','));
  const col = (name: string): string | undefined => row?.[header?.indexOf(name) ?? -1];
  assert.equal(col('client_saturated'), 'true', 'runs.csv carries client_saturated');
  assert.ok(Number(col('tpot_p99_ms')) >= Number(col('tpot_p90_ms')), 'runs.csv carries TPOT p90 and p99');
  assert.ok(Number(col('tpot_p90_ms')) > 0);
});

void test('a client with time to spare is not flagged and reports no scheduling lag outside rate mode', async () => {
  const { bus } = recordingBus();
  const summary = await runAgent(
    protocolConfig(server.url, { measurement: { warmupRequests: 0, baselineSeconds: 0 } }),
    deps(bus),
  );
  assert.equal(summary.client?.schedulingLagP99Ms, null);
  assert.equal(summary.client?.tokenAccounting, 'arrival');
  assert.ok(summary.client?.eventLoopDelayP99Ms !== null);
});

void test('connections the server closed during a long wait for the start signal are opened again before the window', async () => {
  // A server that drops idle connections after 2 s (uvicorn drops them after 5 s). Node's client also
  // retires a free socket a second before the server's advertised Keep-Alive timeout.
  const own = await startMockServer({ ttft: { meanMs: 5 }, itl: { meanMs: 2 }, keepAliveTimeoutMs: 2000 });
  try {
    const { bus, messages } = recordingBus();
    let atBaseline = -1;
    let atWindow = -1;
    const publish = bus.publish.bind(bus);
    bus.publish = async (subject, data, opts) => {
      const d = decodeMessages(data);
      for (const m of d.ok ? d.messages : []) {
        if (m.kind === 'telemetry' && m.mark === 'baselineStart') atBaseline = own.stats().connections;
        if (m.kind === 'telemetry' && m.mark === 'windowStart') atWindow = own.stats().connections;
      }
      return publish(subject, data, opts);
    };
    const config = protocolConfig(own.url, {
      workload: { concurrency: 8, requests: 32 },
      measurement: { warmupRequests: 0, baselineSeconds: 0.1 },
      start: { mode: 'signal' },
    });
    const run = runAgent(config, deps(bus));
    const end = Date.now() + 15_000;
    while (!messages.some((m) => m.kind === 'ready') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 3500));
    const signal = { v: 1, experimentUid: 'uid-1', runId: 'run-a', attempt: 2, startAtMs: Date.now() + 300 };
    await bus.publishControl(startSubject('ns', 'uid-1', 'run-a'), Buffer.from(JSON.stringify(signal)));
    await run;
    assert.equal(atWindow - atBaseline, 16, 'eight warmed, closed by the server, eight warmed again');
    assert.equal(own.stats().connections - atBaseline, 16, 'none opened inside the window');
  } finally {
    await own.close();
  }
});
