import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MetricsListener {
  port: number;
  close(): Promise<void>;
}

export type ScrapeMetrics = () => Promise<{ contentType: string; body: string }>;

/**
 * METRICS_PORT: GET /metrics on a listener of its own (bound to METRICS_HOST, 127.0.0.1 by default),
 * for a network only the scraper reaches; no token there, and nothing else served. A plain node:http
 * server: none of the API's hooks, and a scrape never competes with the API for its rate limits.
 */
export async function startMetricsListener(address: { host: string; port: number }, scrape: ScrapeMetrics, onError: (error: Error) => void): Promise<MetricsListener> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    scrape().then(
      ({ contentType, body }) => {
        response.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        onError(error instanceof Error ? error : new Error(String(error)));
        response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' }).end('metrics unavailable\n');
      },
    );
  });
  // A socket error (a scraper that hung up) must not take the process down.
  server.on('clientError', (_error, socket) => socket.destroy());
  server.on('error', onError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
