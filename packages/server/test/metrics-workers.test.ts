import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testDialects, type TestDatabase } from './helpers.ts';
import { parseScrape } from './metrics-helpers.ts';
import { buildService, freePort, listeningPids, requestLines, requestOnFreshConnection, startService, waitUntil, type ServiceProcess } from './service-process.ts';

// The built service (dist/main.js) as a child process tree: metrics of several workers add up to the service's.
beforeAll(() => buildService(), 60_000);

const METRICS_TOKEN = 'cluster-metrics-token-0123456789';
const HEALTH = { method: 'GET', route: '/healthz', status_code: '200' };

/** Sends `count` requests, each on a connection of its own so the round-robin spreads them; returns the pids that answered. */
async function spreadHealthChecks(service: ServiceProcess, count: number): Promise<Set<number>> {
  const before = requestLines(service).length;
  for (let index = 0; index < count; index += 1) {
    expect((await requestOnFreshConnection(service.baseUrl, 'GET', `/healthz?spread=${index}`)).status).toBe(200);
  }
  await waitUntil(service, 5_000, () => requestLines(service).slice(before).filter((line) => String(line.url).startsWith('/healthz?spread=')).length >= count);
  return new Set(requestLines(service).slice(before).filter((line) => String(line.url).startsWith('/healthz?spread=')).map((line) => line.pid as number));
}

describe.each(testDialects())('metrics with WORKERS=2, METRICS_TOKEN on the API port [workers] [%s]', (dialect) => {
  let database: TestDatabase;
  let service: ServiceProcess;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    service = await startService({ DATABASE_URL: database.url, WORKERS: '2', LOG_LEVEL: 'info', METRICS_TOKEN });
    await waitUntil(service, 60_000, () => new Set(listeningPids(service)).size === 2);
  }, 90_000);
  afterAll(async () => {
    await service?.stop();
    await database?.drop();
  });

  it('whichever worker takes the scrape answers for both', async () => {
    const answeredBy = await spreadHealthChecks(service, 10);
    // Both workers served some: apart, neither could count all ten.
    expect(answeredBy.size).toBe(2);
    const scrapedBy = new Set<number>();
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const before = requestLines(service).length;
      const response = await requestOnFreshConnection(service.baseUrl, 'GET', '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(response.status).toBe(200);
      expect(String(response.headers['content-type'])).toMatch(/^text\/plain/);
      const metrics = parseScrape(String(response.body));
      expect(metrics.histogramCount('gatehouse_http_request_duration_seconds', HEALTH)).toBeGreaterThanOrEqual(10);
      expect(metrics.value('gatehouse_cluster_workers')).toBe(2);
      expect(metrics.value('gatehouse_cluster_workers_reporting')).toBe(2);
      // Each worker has its hashing pool: the threads add up (HASH_POOL_SIZE is cores / workers, at least 1).
      expect(metrics.value('gatehouse_hashing_threads')).toBeGreaterThanOrEqual(2);
      await waitUntil(service, 5_000, () => requestLines(service).slice(before).some((line) => line.url === '/metrics'));
      scrapedBy.add(requestLines(service).slice(before).find((line) => line.url === '/metrics')!.pid as number);
    }
    expect(scrapedBy.size).toBe(2);
    // The readiness probes of startService also count: exactly the ten plus those, never a half.
    const healthLines = requestLines(service).filter((line) => String(line.url).startsWith('/healthz') && line.status === 200).length;
    const final = parseScrape(String((await requestOnFreshConnection(service.baseUrl, 'GET', '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body));
    expect(final.histogramCount('gatehouse_http_request_duration_seconds', HEALTH)).toBe(healthLines);
  });

  it('refuses a scrape without the token on every worker', async () => {
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const response = await requestOnFreshConnection(service.baseUrl, 'GET', '/metrics');
      expect(response.status).toBe(401);
      expect(response.body).toMatchObject({ status: false, code: 401 });
    }
  });
});

describe('METRICS_PORT: a listener of its own [workers]', () => {
  let database: TestDatabase;
  let cluster: ServiceProcess;
  let single: ServiceProcess;
  let clusterMetricsPort: number;
  let singleMetricsPort: number;

  beforeAll(async () => {
    database = await createTestDatabase('sqlite');
    clusterMetricsPort = await freePort();
    singleMetricsPort = await freePort();
    cluster = await startService({ DATABASE_URL: database.url, WORKERS: '2', LOG_LEVEL: 'info', METRICS_PORT: String(clusterMetricsPort) });
    await waitUntil(cluster, 60_000, () => new Set(listeningPids(cluster)).size === 2);
    single = await startService({ DATABASE_URL: database.url, WORKERS: '1', LOG_LEVEL: 'info', METRICS_PORT: String(singleMetricsPort), METRICS_TOKEN });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    await single?.stop();
    await database?.drop();
  });

  it('the primary serves the sum of its workers there, and the API port answers 404', async () => {
    const answeredBy = await spreadHealthChecks(cluster, 10);
    expect(answeredBy.size).toBe(2);
    const response = await fetch(`http://127.0.0.1:${clusterMetricsPort}/metrics`);
    expect(response.status).toBe(200);
    const metrics = parseScrape(await response.text());
    const healthLines = requestLines(cluster).filter((line) => String(line.url).startsWith('/healthz') && line.status === 200).length;
    expect(metrics.histogramCount('gatehouse_http_request_duration_seconds', HEALTH)).toBe(healthLines);
    expect(metrics.value('gatehouse_cluster_workers_reporting')).toBe(2);
    expect((await fetch(`http://127.0.0.1:${clusterMetricsPort}/other`)).status).toBe(404);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      expect((await requestOnFreshConnection(cluster.baseUrl, 'GET', '/metrics')).status).toBe(404);
    }
  });

  it('a single process serves it there too (with METRICS_TOKEN set as well, only for that token), and not on the API port even with it', async () => {
    // Both set: a listener that may sit on a shared network asks for the token too.
    expect((await fetch(`http://127.0.0.1:${singleMetricsPort}/metrics`)).status).toBe(401);
    const response = await fetch(`http://127.0.0.1:${singleMetricsPort}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    const metrics = parseScrape(await response.text());
    expect(metrics.value('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(metrics.family('gatehouse_cluster_workers')).toBeUndefined();
    const onApi = await requestOnFreshConnection(single.baseUrl, 'GET', '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(onApi.status).toBe(404);
  });
});
