// /metrics (Prometheus), /healthz (the process is alive) and /readyz (caches seeded; a standby
// replica that is not leader is still ready: it can take over at once).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthSource {
  healthy(): boolean;
  ready(): boolean;
}

export interface ProbeServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startProbeServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  health: HealthSource;
}): Promise<ProbeServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (path === '/healthz' || path === '/livez')
      return reply(opts.health.healthy() ? 200 : 503, opts.health.healthy() ? 'ok\n' : 'unhealthy\n');
    if (path === '/readyz')
      return reply(opts.health.ready() ? 200 : 503, opts.health.ready() ? 'ok\n' : 'caches not synced\n');
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => reply(200, text, opts.registry.contentType),
        (err: unknown) => reply(500, `metrics failed: ${String(err)}\n`),
      );
      return;
    }
    reply(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
