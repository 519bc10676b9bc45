// bench/otel-overhead: the agent's measurement protocol (runAgent: simulated GPU, in-process bus,
// mock OpenAI server, streaming client) with OpenTelemetry off vs on, in the same run.
//  - off: no OTEL_* variables: only the no-op API is loaded (what every user gets by default).
//  - on:  OTEL_EXPORTER_OTLP_ENDPOINT set: the SDK exports every span (phase spans, NATS trace
//         headers on every published message, per-run gauges) to a local OTLP/HTTP endpoint that
//         answers 200, so serialisation and export really happen.
// Each sample is a fresh child process; modes alternate (off, on, off, on ...) so drift hits both.
// Reported: median over samples of the main event loop's delay p99 during the protocol, and of the
// window's streamed tokens/s. Pass: p99 increase < 0.5 ms and |tokens/s change| < 2 %.
// Usage: node --import tsx bench/otel-overhead.ts [--samples 3] [--requests 400] [--concurrency 32]
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseAgentConfig } from '../agent/config.ts';
import { startMockServer } from '../agent/mock-server.ts';
import { runAgent } from '../agent/runner.ts';
import { createSimulatedGpu } from '../agent/telemetry/sampler.ts';
import { InProcessBus } from '../lib/bus/inprocess.ts';
import { createLatencySketch } from '../lib/sketch/index.ts';
import { shutdownTelemetry, startTelemetry, telemetryEnabled } from '../lib/telemetry/index.ts';

const { values } = parseArgs({
  options: {
    samples: { type: 'string' },
    requests: { type: 'string' },
    concurrency: { type: 'string' },
    child: { type: 'string' },
  },
});
const SAMPLES = Number(values.samples ?? 3);
const REQUESTS = Number(values.requests ?? 400);
const CONCURRENCY = Number(values.concurrency ?? 32);

interface Sample {
  mode: string;
  loopP99Ms: number;
  tokensPerSecond: number;
  spansExported: number;
}

/** An OTLP/HTTP endpoint that accepts everything (counts trace requests). */
async function startSink(): Promise<{ url: string; requests: () => number; close: () => void }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/v1/traces') n++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return {
    url: `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`,
    requests: () => n,
    close: () => server.close(),
  };
}

async function child(mode: string): Promise<Sample> {
  const sink = await startSink();
  if (mode === 'on') {
    // The OTLP exporters read the endpoint from process.env themselves, as in production.
    process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = sink.url;
    process.env['OTEL_BSP_SCHEDULE_DELAY'] = '200';
    await startTelemetry('llem-bench');
    if (!telemetryEnabled()) throw new Error('telemetry did not start');
  }
  const server = await startMockServer({ ttft: { meanMs: 20 }, itl: { meanMs: 5 }, seed: 7 });
  const config = parseAgentConfig(
    {
      publisher: { namespace: 'bench', experimentUid: 'bench', runId: 'run-0' },
      model: 'mock-simulated',
      backend: { name: 'mock', baseUrl: server.url, readinessTimeoutSeconds: 10 },
      workload: { requests: REQUESTS, concurrency: CONCURRENCY, inputTokens: 64, outputTokens: 64, seed: 3 },
      measurement: {
        warmupRequests: 8,
        baselineSeconds: 0.3,
        cooldownSeconds: 0.2,
        minWindowSeconds: 0,
        sampleIntervalMs: 100,
      },
      start: { mode: 'immediate', timeoutSeconds: 10 },
      telemetry: { source: 'simulated' },
    },
    'bench',
  );
  const bus = new InProcessBus();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const summary = await runAgent(config, {
    bus,
    telemetry: createSimulatedGpu({ gpuCount: 1, sampleIntervalMs: 100 }),
    createSketch: createLatencySketch,
    simulatedBackend: true,
  });
  loop.disable();
  await shutdownTelemetry();
  await server.close();
  sink.close();
  await bus.close();
  const seconds = ((summary.windowEndMs ?? 0) - (summary.windowStartMs ?? 0)) / 1000;
  return {
    mode,
    loopP99Ms: loop.percentile(99) / 1e6,
    tokensPerSecond: summary.outputTokens / seconds,
    spansExported: sink.requests(),
  };
}

function runChild(mode: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const c = spawn(
      process.execPath,
      [
        ...process.execArgv,
        process.argv[1] ?? '',
        '--child',
        mode,
        '--requests',
        String(REQUESTS),
        '--concurrency',
        String(CONCURRENCY),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))),
          LLEM_LOG_LEVEL: 'warn',
        },
      },
    );
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as Sample)
        : reject(new Error(`child ${mode} exited ${code}`)),
    );
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

async function main(): Promise<void> {
  if (values.child !== undefined) {
    process.stdout.write(`${JSON.stringify(await child(values.child))}\n`);
    return;
  }
  const samples: Sample[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    for (const mode of ['off', 'on']) {
      const s = await runChild(mode);
      samples.push(s);
      process.stdout.write(
        `sample ${i + 1} ${mode}: loop p99 ${s.loopP99Ms.toFixed(3)} ms, ${s.tokensPerSecond.toFixed(0)} tokens/s, trace exports ${s.spansExported}\n`,
      );
    }
  }
  const pick = (mode: string, f: (s: Sample) => number): number =>
    median(samples.filter((s) => s.mode === mode).map(f));
  const p99Off = pick('off', (s) => s.loopP99Ms);
  const p99On = pick('on', (s) => s.loopP99Ms);
  const tpsOff = pick('off', (s) => s.tokensPerSecond);
  const tpsOn = pick('on', (s) => s.tokensPerSecond);
  const changePct = ((tpsOn - tpsOff) / tpsOff) * 100;
  const exportsOn = pick('on', (s) => s.spansExported);
  // Adjacent off/on pairs share the machine's state of the moment: their differences drift less.
  const pairs = Array.from(
    { length: SAMPLES },
    (_, i) => [samples[2 * i] as Sample, samples[2 * i + 1] as Sample] as const,
  );
  const pairedP99 = median(pairs.map(([off, on]) => on.loopP99Ms - off.loopP99Ms));
  const pairedTps = median(
    pairs.map(([off, on]) => ((on.tokensPerSecond - off.tokensPerSecond) / off.tokensPerSecond) * 100),
  );
  const spread = (mode: string): number => {
    const xs = samples.filter((s) => s.mode === mode).map((s) => s.tokensPerSecond);
    return ((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100;
  };
  const ok =
    p99On - p99Off < 0.5 && Math.abs(changePct) < 2 && exportsOn > 0 && pick('off', (s) => s.spansExported) === 0;
  process.stdout.write(
    `RESULT bench=otel-overhead samples=${SAMPLES} requests=${REQUESTS} concurrency=${CONCURRENCY} ` +
      `loop_p99_off_ms=${p99Off.toFixed(3)} loop_p99_on_ms=${p99On.toFixed(3)} loop_p99_increase_ms=${(p99On - p99Off).toFixed(3)} ` +
      `tokens_per_s_off=${tpsOff.toFixed(0)} tokens_per_s_on=${tpsOn.toFixed(0)} tokens_per_s_change_pct=${changePct.toFixed(2)} ` +
      `paired_loop_p99_increase_ms=${pairedP99.toFixed(3)} paired_tokens_per_s_change_pct=${pairedTps.toFixed(2)} ` +
      `tokens_per_s_spread_off_pct=${spread('off').toFixed(1)} trace_exports_on=${exportsOn} pass=${ok}\n`,
  );
}

await main();
