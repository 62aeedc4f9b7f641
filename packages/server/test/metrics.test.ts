import { afterEach, describe, expect, it } from 'vitest';
import {
  expectErrorEnvelope,
  json,
  loginUser,
  signedInAdmin,
  signedInUser,
  signupUser,
  startTestApp,
  STRONG_PASSWORD,
  testDialects,
  type TestApp,
} from './helpers.ts';
import { parseScrape, type Scrape } from './metrics-helpers.ts';
import { startMetricsListener } from '../src/metrics/listener.ts';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${METRICS_TOKEN}` };

describe.each(testDialects())('metrics [%s]', (dialect) => {
  let test: TestApp | undefined;
  afterEach(async () => {
    await test?.close();
    test = undefined;
  });

  async function start(env: Record<string, string> = {}) {
    test = await startTestApp(dialect, { METRICS_TOKEN, ...env });
    return test;
  }

  async function scrape(app: TestApp): Promise<Scrape> {
    const response = await app.app.inject({ method: 'GET', url: '/metrics', headers: AUTH });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseScrape(response.body);
  }

  it('is off without METRICS_TOKEN and METRICS_PORT: 404 on the API port, and no hook at all', async () => {
    test = await startTestApp(dialect);
    expect(test.app.metrics).toBeNull();
    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: '/metrics', headers: AUTH }), 404, 'not found');
  });

  it('with METRICS_PORT, not on the API port even with the token (the separate listener serves them)', async () => {
    await start({ METRICS_PORT: '9464' });
    expect(test!.app.metrics).not.toBeNull();
    expectErrorEnvelope(await test!.app.inject({ method: 'GET', url: '/metrics', headers: AUTH }), 404, 'not found');
  });

  it('wants METRICS_TOKEN as a bearer token: missing or wrong is a 401 envelope', async () => {
    const app = (await start()).app;
    const missing = expectErrorEnvelope(await app.inject({ method: 'GET', url: '/metrics' }), 401, 'auth failed - token is missing');
    expect(missing.data).toBeNull();
    for (const authorization of [
      `Bearer ${METRICS_TOKEN.slice(0, -1)}x`, // same length, last character differs
      `Bearer ${METRICS_TOKEN}extra`,
      `Basic ${Buffer.from(`x:${METRICS_TOKEN}`).toString('base64')}`,
      'Bearer',
    ]) {
      const response = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization } });
      expectErrorEnvelope(response, 401, 'auth failed - token is invalid', [METRICS_TOKEN]);
    }
    // A user's access token is not the metrics token.
    const user = await signedInUser(app, `scraper-${dialect}@example.com`);
    expectErrorEnvelope(await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${user.token}` } }), 401);
  });

  it('answers the Prometheus text format a real parser reads, process metrics included', async () => {
    const metrics = await scrape(await start());
    const types = Object.fromEntries(metrics.families.map((family) => [family.name, family.type]));
    expect(types).toMatchObject({
      gatehouse_http_request_duration_seconds: 'HISTOGRAM',
      gatehouse_logins_total: 'COUNTER',
      gatehouse_refreshes_total: 'COUNTER',
      gatehouse_refresh_reuse_detections_total: 'COUNTER',
      gatehouse_lockouts_total: 'COUNTER',
      gatehouse_locked_out_responses_total: 'COUNTER',
      gatehouse_rate_limited_responses_total: 'COUNTER',
      gatehouse_hashing_queue_depth: 'GAUGE',
      gatehouse_hashing_duration_seconds: 'HISTOGRAM',
      gatehouse_hashing_rejected_total: 'COUNTER',
      gatehouse_denylist_sessions: 'GAUGE',
      gatehouse_db_query_errors_total: 'COUNTER',
      gatehouse_audit_queue_depth: 'GAUGE',
      process_cpu_user_seconds_total: 'COUNTER',
      process_resident_memory_bytes: 'GAUGE',
      nodejs_eventloop_lag_seconds: 'GAUGE',
      nodejs_eventloop_lag_p99_seconds: 'GAUGE',
    });
    // The pool exists only on PostgreSQL (SQLite has one connection).
    if (dialect === 'postgres') {
      expect(metrics.value('gatehouse_db_pool_connections', { state: 'open' })).toBeGreaterThanOrEqual(1);
      expect(types.gatehouse_db_pool_waiting_requests).toBe('GAUGE');
    } else {
      expect(metrics.family('gatehouse_db_pool_connections')).toBeUndefined();
    }
    // Every outcome series exists at zero before the first event, so rate() sees it start.
    expect(metrics.samples('gatehouse_logins_total').map((sample) => sample.labels)).toEqual(
      expect.arrayContaining([{ outcome: 'success', reason: 'none' }, { outcome: 'failure', reason: 'wrong_password' }]),
    );
    expect(metrics.value('gatehouse_logins_total', { outcome: 'success' })).toBe(0);
  });

  it('times every answer by route template and status; unknown paths share one series', async () => {
    const app = await start();
    const admin = await signedInAdmin(app, `latency-${dialect}@example.com`);
    const before = await scrape(app);
    for (let index = 0; index < 3; index += 1) expect((await app.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    await app.app.inject({ method: 'GET', url: '/no/such/path-12345' });
    await app.app.inject({ method: 'GET', url: '/another-unknown' });
    // A parameterised route is labelled by its template, not by the id in the URL.
    const patch = await app.app.inject({ method: 'PATCH', url: '/clients/no-such-client', headers: { authorization: `Bearer ${admin.token}` }, payload: { disabled: true } });
    expect(patch.statusCode).toBe(404);
    const after = await scrape(app);

    const count = (metrics: Scrape, labels: Record<string, string>) => metrics.histogramCount('gatehouse_http_request_duration_seconds', labels);
    expect(count(after, { method: 'GET', route: '/healthz', status_code: '200' }) - count(before, { method: 'GET', route: '/healthz', status_code: '200' })).toBe(3);
    expect(count(after, { method: 'GET', route: 'unmatched', status_code: '404' }) - count(before, { method: 'GET', route: 'unmatched', status_code: '404' })).toBe(2);
    expect(count(after, { method: 'PATCH', route: '/clients/:id', status_code: '404' })).toBe(1);
    expect(count(after, { method: 'POST', route: '/login', status_code: '201' })).toBe(1);
    const routes = new Set(after.samples('gatehouse_http_request_duration_seconds_count').map((sample) => sample.labels?.route));
    expect(routes).toContain('/healthz');
    expect([...routes].some((route) => route?.includes('12345') || route?.includes('no-such-client'))).toBe(false);
    // The buckets are cumulative and end at the count.
    const labels = { method: 'GET', route: '/healthz', status_code: '200' };
    const buckets = after.histogramBuckets('gatehouse_http_request_duration_seconds', labels);
    const counts = buckets.map(([, count]) => count);
    expect([...counts].sort((a, b) => a - b)).toEqual(counts);
    expect(buckets.at(-1)).toEqual([Number.POSITIVE_INFINITY, after.histogramCount('gatehouse_http_request_duration_seconds', labels)]);
  });

  it('counts 429 answers by route', async () => {
    const app = await start({ RATE_LIMIT_PER_MINUTE: '3' });
    const statuses: number[] = [];
    for (let index = 0; index < 5; index += 1) {
      statuses.push((await app.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: 'not-a-refresh-token' } })).statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const metrics = await scrape(app);
    expect(metrics.value('gatehouse_rate_limited_responses_total', { route: '/token/refresh' })).toBe(2);
    expect(metrics.histogramCount('gatehouse_http_request_duration_seconds', { route: '/token/refresh', status_code: '429' })).toBe(2);
  });

  it('times password hashing by operation, and counts duplicate-email constraint errors', async () => {
    const app = await start();
    const email = `hashing-${dialect}@example.com`;
    expect((await signupUser(app.app, { email })).statusCode).toBe(201);
    expect((await loginUser(app.app, email)).statusCode).toBe(201);
    expect((await signupUser(app.app, { email })).statusCode).toBe(409);
    const metrics = await scrape(app);
    // The duplicate signup hashes its password too (before the insert the database refuses).
    expect(metrics.histogramCount('gatehouse_hashing_duration_seconds', { operation: 'argon2_hash' })).toBe(2);
    expect(metrics.histogramCount('gatehouse_hashing_duration_seconds', { operation: 'argon2_verify' })).toBe(1);
    expect(metrics.histogramCount('gatehouse_hashing_queue_wait_seconds')).toBe(3);
    expect(metrics.value('gatehouse_hashing_queue_depth')).toBe(0);
    expect(metrics.value('gatehouse_hashing_threads')).toBeGreaterThanOrEqual(1);
    expect(metrics.value('gatehouse_db_query_errors_total', { kind: 'constraint' })).toBe(1);
    expect(metrics.value('gatehouse_db_query_errors_total', { kind: 'unavailable' })).toBe(0);
  });

  it('counts hashing jobs refused because the queue was full, one per 503', async () => {
    // No strength estimator: its single worker thread would space the signups out (a loaded machine saw none refused).
    test = await startTestApp(dialect, { METRICS_TOKEN, HASH_POOL_SIZE: '1', HASH_QUEUE_MAX: '1', PASSWORD_BREACHED_CHECK: 'false' }, { ownHasher: { memoryCost: 19456, timeCost: 2, parallelism: 1 } });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, index) => signupUser(test!.app, { email: `crowd-${index}-${dialect}@example.com` })));
    const refused = answers.filter((answer) => answer.statusCode === 503).length;
    expect(refused).toBeGreaterThan(0);
    expect(answers.filter((answer) => answer.statusCode === 201).length).toBe(12 - refused);
    const metrics = await scrape(test);
    expect(metrics.value('gatehouse_hashing_rejected_total')).toBe(refused);
    expect(metrics.value('gatehouse_hashing_threads')).toBe(1);
  });

  it('shows the denylist growing with each logout', async () => {
    const app = await start();
    const before = (await scrape(app)).value('gatehouse_denylist_sessions');
    for (const name of ['a', 'b']) {
      const user = await signedInUser(app.app, `leaver-${name}-${dialect}@example.com`);
      expect((await app.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${user.token}` }, payload: {} })).statusCode).toBe(200);
    }
    expect((await scrape(app)).value('gatehouse_denylist_sessions')).toBe(before + 2);
  });

  it('counts each audit event it listens to once, whatever records it (reasons outside the set as other)', async () => {
    const app = await start();
    const actor = { type: 'anonymous' } as const;
    const { audit } = app.deps;
    audit.record({ action: 'user.login', actor: { type: 'user', id: '1' } });
    audit.record({ action: 'user.login_failed', outcome: 'failure', reason: 'wrong_password', actor });
    audit.record({ action: 'user.login_failed', outcome: 'failure', reason: 'locked', actor });
    audit.record({ action: 'user.login_failed', outcome: 'failure', reason: 'something new', actor });
    audit.record({ action: 'user.login_failed', outcome: 'failure', reason: 'email_not_verified', actor });
    audit.record({ action: 'user.lockout', outcome: 'failure', actor });
    audit.record({ action: 'session.refresh', actor: { type: 'user', id: '1' } });
    audit.record({ action: 'session.refresh_reuse', outcome: 'failure', actor });
    audit.record({ action: 'user.password_change', outcome: 'failure', reason: 'locked', actor: { type: 'user', id: '1' } });
    audit.record({ action: 'user.signup', actor: { type: 'user', id: '1' } });
    const metrics = await scrape(app);
    expect(metrics.value('gatehouse_logins_total', { outcome: 'success' })).toBe(1);
    expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'wrong_password' })).toBe(1);
    expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'locked' })).toBe(1);
    expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'other' })).toBe(1);
    expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'email_not_verified' })).toBe(1);
    expect(metrics.samples('gatehouse_logins_total', { reason: 'something new' })).toEqual([]);
    expect(metrics.value('gatehouse_lockouts_total')).toBe(1);
    expect(metrics.value('gatehouse_locked_out_responses_total', { flow: 'login' })).toBe(1);
    expect(metrics.value('gatehouse_locked_out_responses_total', { flow: 'password_change' })).toBe(1);
    expect(metrics.value('gatehouse_refreshes_total', { outcome: 'success' })).toBe(1);
    expect(metrics.value('gatehouse_refresh_reuse_detections_total')).toBe(1);
  });

  it('stops listening when the app closes (the audit log and the hasher may outlive it)', async () => {
    const app = await start();
    const first = app.app;
    const registry = first.metrics!.registry;
    await app.restart();
    // The old app's registry no longer hears events or hashing jobs.
    app.deps.audit.record({ action: 'user.login', actor: { type: 'user', id: '1' } });
    const old = parseScrape(await registry.metrics());
    expect(old.value('gatehouse_logins_total', { outcome: 'success' })).toBe(0);
  });

  // These drive the real flows: they need the audit events the flows record (audit.record in auth/*.ts).
  describe('counters that follow real logins and refreshes', () => {
    it('counts logins by outcome and reason', async () => {
      const app = await start();
      const email = `counted-${dialect}@example.com`;
      expect((await signupUser(app.app, { email })).statusCode).toBe(201);
      expect((await loginUser(app.app, email)).statusCode).toBe(201);
      expect((await loginUser(app.app, email)).statusCode).toBe(201);
      expect((await loginUser(app.app, email, 'not the password at all')).statusCode).toBe(403);
      expect((await loginUser(app.app, `nobody-${dialect}@example.com`, STRONG_PASSWORD)).statusCode).toBe(403);
      const metrics = await scrape(app);
      expect(metrics.value('gatehouse_logins_total', { outcome: 'success' })).toBe(2);
      expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'wrong_password' })).toBe(1);
      expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'unknown_email' })).toBe(1);
    });

    it('counts refreshes and reuse detections', async () => {
      const app = await start({ REFRESH_REUSE_GRACE: '0' });
      const user = await signedInUser(app.app, `refresher-${dialect}@example.com`);
      const first = await app.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: user.refreshToken } });
      expect(first.statusCode).toBe(201);
      expect((await app.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: json(first).refresh_token } })).statusCode).toBe(201);
      // The first token again: reuse, the session is revoked.
      expect((await app.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: user.refreshToken } })).statusCode).toBe(401);
      const metrics = await scrape(app);
      expect(metrics.value('gatehouse_refreshes_total', { outcome: 'success' })).toBe(2);
      expect(metrics.value('gatehouse_refresh_reuse_detections_total')).toBe(1);
    });

    it('counts lockouts and the answers refused while locked', async () => {
      const app = await start({ LOGIN_MAX_FAILURES: '3' });
      const email = `locked-${dialect}@example.com`;
      expect((await signupUser(app.app, { email })).statusCode).toBe(201);
      for (let attempt = 0; attempt < 3; attempt += 1) expect((await loginUser(app.app, email, 'wrong wrong wrong')).statusCode).toBe(403);
      expect((await loginUser(app.app, email)).statusCode).toBe(429);
      expect((await loginUser(app.app, email)).statusCode).toBe(429);
      const metrics = await scrape(app);
      expect(metrics.value('gatehouse_lockouts_total')).toBe(1);
      expect(metrics.value('gatehouse_locked_out_responses_total', { flow: 'login' })).toBe(2);
      expect(metrics.value('gatehouse_logins_total', { outcome: 'failure', reason: 'locked' })).toBe(2);
      expect(metrics.value('gatehouse_rate_limited_responses_total', { route: '/login' })).toBe(2);
    });
  });
});

describe('the METRICS_PORT listener', () => {
  it('needs no token by itself, and the METRICS_TOKEN when one is set too (a listener on a shared network)', async () => {
    const scrape = async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'up 1\n' });
    const open = await startMetricsListener({ host: '127.0.0.1', port: 0 }, scrape, () => undefined);
    const guarded = await startMetricsListener({ host: '127.0.0.1', port: 0, token: METRICS_TOKEN }, scrape, () => undefined);
    try {
      expect((await fetch(`http://127.0.0.1:${open.port}/metrics`)).status).toBe(200);
      const refused = await fetch(`http://127.0.0.1:${guarded.port}/metrics`);
      expect(refused.status).toBe(401);
      expect(await refused.text()).not.toContain('up 1');
      expect((await fetch(`http://127.0.0.1:${guarded.port}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).status).toBe(401);
      const allowed = await fetch(`http://127.0.0.1:${guarded.port}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toBe('up 1\n');
      expect((await fetch(`http://127.0.0.1:${guarded.port}/other`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(404);
    } finally {
      await open.close();
      await guarded.close();
    }
  });
});
