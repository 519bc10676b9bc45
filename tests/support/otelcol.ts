// A real OpenTelemetry Collector for tests, and the JSON sink it exports to.
//
//   const col = await startCollector();      // otelcol on 127.0.0.1:<free port>, OTLP/HTTP in
//   col.endpoint                             // 'http://127.0.0.1:<port>': OTEL_EXPORTER_OTLP_ENDPOINT
//   await col.waitForSpans((s) => ..., ms)   // spans the collector forwarded, once the predicate holds
//   col.spans(), col.metrics()               // everything received so far (flattened)
//   await col.stop()
//
// What the tests check has really passed through the collector: its only exporter is `otlp_http`
// with `encoding: json`, pointed at a small HTTP server in this process that parses the OTLP JSON.
// The binary is built by scripts/ensure-deps.d/otelcol.sh into ~/.cache/llem/otelcol/<version>/
// (or $LLEM_OTELCOL_BIN/<version>/); collectorBinary() returns null when it is missing, for tests
// to skip with a reason.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, isAddressInUse } from './ports.ts';

const COLLECTOR_MODULE = join(import.meta.dirname, '..', 'otel', 'collector', 'go.mod');

export function collectorVersion(): string {
  const line = readFileSync(COLLECTOR_MODULE, 'utf8')
    .split('\n')
    .find((l) => l.trim().startsWith('go.opentelemetry.io/collector/otelcol '));
  const version = line?.trim().split(/\s+/)[1];
  if (version === undefined)
    throw new Error(`${COLLECTOR_MODULE}: no go.opentelemetry.io/collector/otelcol requirement`);
  return version;
}

/** The cached collector binary, or null (with the reason in `collectorMissing`). */
export function collectorBinary(): string | null {
  const root =
    process.env['LLEM_OTELCOL_BIN'] ?? join(process.env['LLEM_CACHE'] ?? join(homedir(), '.cache', 'llem'), 'otelcol');
  const bin = join(root, collectorVersion(), 'otelcol');
  return existsSync(bin) ? bin : null;
}

export const collectorMissing = 'otelcol not built: run `bash scripts/ensure-deps.d/otelcol.sh` (Go, ~20 min once)';

/** One span as the OTLP JSON encoding carries it, with its resource and scope flattened in. */
export interface CollectedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  scope: string;
  status: { code?: number; message?: string };
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
}

/** One metric data point: name, resource and point attributes, and its value (sum/gauge) or count (histogram). */
export interface CollectedPoint {
  metric: string;
  type: string;
  resource: Record<string, unknown>;
  attributes: Record<string, unknown>;
  value: number;
}

interface KeyValue {
  key: string;
  value: Record<string, unknown>;
}

function anyValue(v: Record<string, unknown>): unknown {
  if ('stringValue' in v) return v['stringValue'];
  if ('intValue' in v) return Number(v['intValue']);
  if ('doubleValue' in v) return Number(v['doubleValue']);
  if ('boolValue' in v) return v['boolValue'];
  const arr = v['arrayValue'] as { values?: Record<string, unknown>[] } | undefined;
  if (arr !== undefined) return (arr.values ?? []).map(anyValue);
  return undefined;
}

function attrs(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

/* eslint-disable @typescript-eslint/no-explicit-any -- OTLP JSON is parsed loosely, field by field */
function flattenSpans(body: any): CollectedSpan[] {
  const out: CollectedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: attrs(s.attributes),
          resource,
          scope: ss.scope?.name ?? '',
          status: s.status ?? {},
          links: (s.links ?? []).map((l: any) => ({
            traceId: l.traceId,
            spanId: l.spanId,
            attributes: attrs(l.attributes),
          })),
        });
      }
    }
  }
  return out;
}

function pointsOf(m: any, resource: Record<string, unknown>): CollectedPoint[] {
  return ['sum', 'gauge', 'histogram'].flatMap((type) =>
    (m[type]?.dataPoints ?? []).map((p: any) => ({
      metric: m.name,
      type,
      resource,
      attributes: attrs(p.attributes),
      value: type === 'histogram' ? Number(p.count) : Number(p.asDouble ?? p.asInt ?? 0),
    })),
  );
}

function flattenMetrics(body: any): CollectedPoint[] {
  const out: CollectedPoint[] = [];
  for (const rm of body.resourceMetrics ?? []) {
    const resource = attrs(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        out.push(...pointsOf(m, resource));
      }
    }
  }
  return out;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

interface Sink {
  server: Server;
  port: number;
  spans: CollectedSpan[];
  points: CollectedPoint[];
  contentTypes: Set<string>;
}

async function startSink(): Promise<Sink> {
  const sink: Omit<Sink, 'port'> = { server: createServer(), spans: [], points: [], contentTypes: new Set() };
  sink.server.on('request', (req, res) => {
    readBody(req)
      .then((text) => {
        sink.contentTypes.add(String(req.headers['content-type']));
        const body: unknown = JSON.parse(text);
        if (req.url === '/v1/traces') sink.spans.push(...flattenSpans(body));
        if (req.url === '/v1/metrics') sink.points.push(...flattenMetrics(body));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      })
      .catch((err: unknown) => res.writeHead(400).end(String(err)));
  });
  await new Promise<void>((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
  const address = sink.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { ...sink, port };
}

function collectorConfig(receiverPort: number, sinkPort: number): string {
  // The collector's own telemetry is off: its default Prometheus port (8888) would collide across tests.
  return `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${receiverPort}
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:${sinkPort}
    encoding: json
    compression: none
    retry_on_failure:
      enabled: false
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
    metrics:
      receivers: [otlp]
      exporters: [otlp_http]
`;
}

export interface CollectorHandle {
  /** OTLP/HTTP base URL of the collector's receiver. */
  readonly endpoint: string;
  spans(): CollectedSpan[];
  metrics(): CollectedPoint[];
  /** Content types the sink received (proves `encoding: json` came through). */
  contentTypes(): string[];
  waitForSpans(ready: (spans: CollectedSpan[]) => boolean, timeoutMs?: number): Promise<CollectedSpan[]>;
  waitForMetrics(ready: (points: CollectedPoint[]) => boolean, timeoutMs?: number): Promise<CollectedPoint[]>;
  stop(): Promise<void>;
}

async function waitFor<T extends { name?: string; metric?: string }>(
  get: () => T[],
  ready: (items: T[]) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  while (!ready(get())) {
    if (Date.now() > deadline) {
      const names = [...new Set(get().map((x) => x.name ?? x.metric))].join(', ');
      throw new Error(`collector: ${what} not as expected after ${timeoutMs} ms (${get().length} received: ${names})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return get();
}

export async function startCollector(): Promise<CollectorHandle> {
  const binary = collectorBinary();
  if (binary === null) throw new Error(collectorMissing);
  const sink = await startSink();
  const dir = await mkdtemp(join(tmpdir(), 'llem-otelcol-'));
  let child: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 1; child === null; attempt += 1) {
    port = await freePort();
    await writeFile(join(dir, 'config.yaml'), collectorConfig(port, sink.port));
    try {
      child = await launch(binary, join(dir, 'config.yaml'));
    } catch (err) {
      if (attempt >= 5 || !isAddressInUse(String(err))) throw err;
    }
  }
  const running = child;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans: () => [...sink.spans],
    metrics: () => [...sink.points],
    contentTypes: () => [...sink.contentTypes],
    waitForSpans: (ready, timeoutMs = 15_000) => waitFor(() => [...sink.spans], ready, timeoutMs, 'spans'),
    waitForMetrics: (ready, timeoutMs = 15_000) => waitFor(() => [...sink.points], ready, timeoutMs, 'metrics'),
    stop: async () => {
      if (running.exitCode === null && running.signalCode === null) {
        const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
        running.kill('SIGTERM');
        // A collector stuck in shutdown (an export retrying) must not hang the test run.
        const late = setTimeout(() => running.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(late);
      }
      // The collector's keep-alive connection would hold close() open.
      sink.server.closeAllConnections();
      await new Promise<void>((resolve) => sink.server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts otelcol and resolves once its OTLP receiver accepts connections ("Everything is ready"). */
async function launch(binary: string, config: string): Promise<ChildProcess> {
  const child = spawn(binary, ['--config', `file:${config}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`otelcol not ready after 20 s:\n${log}`)), 20_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`otelcol exited (${String(code)}) before ready:\n${log}`)));
    const onData = (chunk: Buffer): void => {
      log = (log + chunk.toString('utf8')).slice(-8000);
      if (!log.includes('Everything is ready')) return;
      // Detach: a later chunk must not strip the exit listener stop() adds.
      child.stderr?.off('data', onData);
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve();
    };
    child.stderr?.on('data', onData);
  });
  child.stderr?.resume();
  return child;
}
