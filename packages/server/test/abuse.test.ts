import { afterEach, describe, expect, it } from 'vitest';
import { json, loginUser, signupUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';

describe.each(testDialects())('throttling [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('/signup, /login and /token/refresh share one per-IP budget per minute', async () => {
    test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '5' });
    const answers = [
      await signupUser(test.app, { email: 'budget@example.com' }),
      await loginUser(test.app, 'budget@example.com'),
      await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: 'x' } }),
      await loginUser(test.app, 'budget@example.com', 'wrong password here'),
      await signupUser(test.app, { email: 'budget2@example.com' }),
    ];
    expect(answers.map((answer) => answer.statusCode)).toEqual([201, 201, 401, 403, 201]);

    for (const next of [
      () => loginUser(test.app, 'budget@example.com'),
      () => signupUser(test.app, { email: 'budget3@example.com' }),
      () => test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: 'x' } }),
    ]) {
      const limited = await next();
      expect(limited.statusCode).toBe(429);
      expect(json(limited)).toEqual({ status: false, code: 429, message: 'too many requests - try again later', data: null });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    // Another address has its own budget; other routes are not throttled.
    const otherAddress = await test.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: '10.0.0.2',
      payload: { email: 'budget@example.com', password: STRONG_PASSWORD },
    });
    expect(otherAddress.statusCode).toBe(201);
    expect((await test.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    test.clock.advanceSeconds(60);
    expect((await loginUser(test.app, 'budget@example.com')).statusCode).toBe(201);
  });

  it('locks an account after LOGIN_MAX_FAILURES failures, doubling the window, for known and unknown emails alike', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3' });
    await signupUser(test.app, { email: 'known@example.com' });
    for (const email of ['known@example.com', 'nobody@example.com']) {
      const statuses = [];
      for (let attempt = 0; attempt < 4; attempt += 1) statuses.push((await loginUser(test.app, email, 'wrong password again')).statusCode);
      expect(statuses).toEqual([403, 403, 403, 429]);
      // Locked even with the right password; the answer does not tell whether the account exists.
      const locked = await loginUser(test.app, email);
      expect(locked.statusCode).toBe(429);
      expect(locked.headers['retry-after']).toBe('60');
      expect(json(locked).message).toBe('too many requests - try again later');
    }

    test.clock.advanceSeconds(60);
    expect((await loginUser(test.app, 'nobody@example.com', 'wrong password again')).statusCode).toBe(403);
    const doubled = await loginUser(test.app, 'nobody@example.com');
    expect(doubled.statusCode).toBe(429);
    expect(doubled.headers['retry-after']).toBe('120');

    test.clock.advanceSeconds(60);
    const success = await loginUser(test.app, 'known@example.com');
    expect(success.statusCode).toBe(201);
    // Success resets the count: three more failures are needed to lock again.
    expect((await loginUser(test.app, 'known@example.com', 'wrong password again')).statusCode).toBe(403);
    expect((await loginUser(test.app, 'KNOWN@example.com')).statusCode).toBe(201);
  });

  it('caps the lockout window at an hour', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '1' });
    let retryAfter = 0;
    for (let round = 0; round < 10; round += 1) {
      await loginUser(test.app, 'hammer@example.com', 'wrong password again');
      const locked = await loginUser(test.app, 'hammer@example.com');
      retryAfter = Number(locked.headers['retry-after']);
      test.clock.advanceSeconds(retryAfter);
    }
    expect(retryAfter).toBe(3600);
  });
});

describe('edges', () => {
  let test: TestApp;
  afterEach(() => test.close());

  it('sends security headers on every answer and no X-Powered-By', async () => {
    test = await startTestApp('sqlite');
    for (const url of ['/', '/healthz', '/users', '/nowhere', '/.well-known/jwks.json']) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['content-security-policy']).toContain("default-src 'none'");
      expect(response.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(response.headers['x-powered-by']).toBeUndefined();
    }
    expect((await test.app.inject({ method: 'GET', url: '/healthz' })).headers['cache-control']).toBe('no-store');
    expect((await test.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).headers['cache-control']).toContain('max-age');
  });

  it('allows CORS only for CORS_ORIGINS', async () => {
    test = await startTestApp('sqlite', { CORS_ORIGINS: 'https://app.example.com' });
    const preflight = (origin: string) =>
      test.app.inject({ method: 'OPTIONS', url: '/login', headers: { origin, 'access-control-request-method': 'POST' } });
    expect((await preflight('https://app.example.com')).headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect((await preflight('https://evil.example.com')).headers['access-control-allow-origin']).toBeUndefined();
    const simple = await test.app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example.com' } });
    expect(simple.headers['access-control-allow-origin']).toBeUndefined();
    await test.close();

    test = await startTestApp('sqlite');
    const closed = await test.app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://app.example.com' } });
    expect(closed.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers unknown methods and paths with a 404 envelope', async () => {
    test = await startTestApp('sqlite');
    for (const [method, url] of [['PUT', '/login'], ['DELETE', '/signup'], ['GET', '/login'], ['PATCH', '/nowhere']] as const) {
      const response = await test.app.inject({ method, url });
      expect(response.statusCode).toBe(404);
      expect(json(response)).toEqual({ status: false, code: 404, message: 'not found', data: null });
    }
  });

  it('refuses oversize headers on a real socket without harm', async () => {
    test = await startTestApp('sqlite');
    const address = await test.app.listen({ host: '127.0.0.1', port: 0 });
    const huge = await fetch(`${address}/healthz`, { headers: { 'x-filler': 'a'.repeat(64 * 1024) } }).catch(() => undefined);
    expect(huge === undefined || huge.status === 431 || huge.status === 400).toBe(true);
    expect((await fetch(`${address}/healthz`)).status).toBe(200);
  });
});
