import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USER_STATUS_STALE_LIMIT_MS } from '../src/users/status-cache.ts';
import { assertNoLeak, expectErrorEnvelope, json, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

describe.each(testDialects())('meta routes [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(() => test.close());

  it('GET /healthz answers 200 with the envelope', async () => {
    const response = await test.app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(json(response)).toEqual({ status: true, code: 200, message: 'ok', data: { status: 'ok' } });
  });

  it('GET /readyz answers 200 while the database is up', async () => {
    const response = await test.app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(json(response)).toEqual({ status: true, code: 200, message: 'ready', data: { database: 'up' } });
  });

  it('GET /openapi.json is OpenAPI 3.1 listing the routes of the contract', async () => {
    const response = await test.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const document = json(response);
    expect(document.openapi).toMatch(/^3\.1\./);
    expect(document.info.title).toBe('Gatehouse');
    for (const path of ['/signup', '/login', '/users', '/me', '/healthz', '/readyz', '/.well-known/jwks.json']) {
      expect(Object.keys(document.paths)).toContain(path);
    }
    expect(document.paths['/signup'].post.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['name', 'email', 'password']),
    );
    expect(document.paths['/users'].get.security).toEqual(expect.arrayContaining([{ bearerAuth: [] }]));
    expect(document.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    assertNoLeak(response.body);
  });

  it('GET /docs serves Swagger UI', async () => {
    let response = await test.app.inject({ method: 'GET', url: '/docs' });
    for (let hops = 0; response.statusCode >= 300 && response.statusCode < 400 && hops < 3; hops++) {
      const location = response.headers.location;
      expect(typeof location).toBe('string');
      response = await test.app.inject({ method: 'GET', url: new URL(String(location), 'http://localhost/docs/').pathname });
    }
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.body).toMatch(/swagger-ui/i);
  });

  it('GET / is the seed greeting', async () => {
    const response = await test.app.inject({ method: 'GET', url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.body).toBe('flask rest connected');
  });
});

describe.each(testDialects())('readiness with the database down [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(async () => {
    // The database is closed already; close the app and drop the data without closing it twice.
    await test.app.close();
    await test.database.drop();
  });

  it('GET /readyz answers 503 once the database is closed, while /healthz stays 200', async () => {
    expect((await test.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    await test.deps.db.destroy();

    const response = await test.app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(json(response)).toEqual({ status: false, code: 503, message: 'not ready', data: { database: 'down' } });
    assertNoLeak(response.body);
    expect((await test.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe.each(testDialects())('readiness reports shared dependencies [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(() => test.close());

  it('stays 200 with the detail when a shared dependency is down (counters fall back to per process)', async () => {
    // The Redis suites cut a real Redis; here only what the route makes of the shared state's report.
    test.deps.shared.status = () => ({ redis: 'down' });
    const response = await test.app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(json(response)).toEqual({ status: true, code: 200, message: 'ready', data: { database: 'up', redis: 'down' } });
  });
});

describe.each(testDialects())('user status while the database is unreachable [%s]', (dialect) => {
  let test: TestApp;
  let seen: { id: number; token: string };
  let unseen: { id: number; token: string };
  beforeAll(async () => {
    test = await startTestApp(dialect);
    seen = await signedInUser(test.app, 'seen@example.com');
    unseen = await signedInUser(test.app, 'unseen@example.com');
    // An authenticated request: the guard reads the user's status once, then the database goes away.
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${seen.token}` } })).statusCode).toBe(200);
    await test.deps.db.destroy();
  });
  afterAll(async () => {
    await test.app.close();
    await test.database.drop();
  });

  it('serves the last known status of a user it saw, for up to a minute', async () => {
    test.clock.advanceSeconds(5);
    expect(await test.deps.userStatus.statusOf(seen.id)).toBe('active');
    test.clock.advanceSeconds(USER_STATUS_STALE_LIMIT_MS / 1000 - 10);
    expect(await test.deps.userStatus.statusOf(seen.id)).toBe('active');
    test.clock.advanceSeconds(10);
    await expect(test.deps.userStatus.statusOf(seen.id)).rejects.toThrow();
  });

  it('refuses a user it never saw with a 503 envelope, never a 500', async () => {
    await expect(test.deps.userStatus.statusOf(unseen.id)).rejects.toThrow();
    const response = await test.app.inject({ method: 'GET', url: '/users', headers: { authorization: `Bearer ${unseen.token}` } });
    expectErrorEnvelope(response, 503, 'service unavailable');
    expect(response.headers['retry-after']).toBe('5');
  });
});
