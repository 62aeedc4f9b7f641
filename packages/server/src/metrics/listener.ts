import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MetricsListener {
  port: number;
  close(): Promise<void>;
}

export type ScrapeMetrics = () => Promise<{ contentType: string; body: string }>;

/**
 * Whether an Authorization header carries the metrics token. Both sides are hashed, so
 * timingSafeEqual compares equal lengths and the comparison tells nothing of the token's length.
 */
export function presentsMetricsToken(authorization: string | undefined, token: string): boolean {
  const match = typeof authorization === 'string' ? /^Bearer +(\S+)\s*$/i.exec(authorization) : null;
  const presented = createHash('sha256').update(match?.[1] ?? '', 'utf8').digest();
  const expected = createHash('sha256').update(token, 'utf8').digest();
  return match !== null && timingSafeEqual(presented, expected);
}

/**
 * METRICS_PORT: GET /metrics on a listener of its own (bound to METRICS_HOST, 127.0.0.1 by default),
 * for a network only the scraper reaches, and nothing else served. No token is needed there unless
 * METRICS_TOKEN is set too (a listener on a shared network): then it is required here as well. A
 * plain node:http server: none of the API's hooks, and a scrape never competes with the API for its
 * rate limits.
 */
export async function startMetricsListener(
  address: { host: string; port: number; token?: string | undefined },
  scrape: ScrapeMetrics,
  onError: (error: Error) => void,
): Promise<MetricsListener> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (address.token !== undefined && !presentsMetricsToken(request.headers.authorization, address.token)) {
      response.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer' }).end('metrics token required\n');
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
