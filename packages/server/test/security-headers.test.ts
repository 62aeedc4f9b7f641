import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPECTED_SECURITY_HEADERS } from './expected-headers.ts';
import { json, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

function expectSecurityHeaders(response: LightMyRequestResponse): void {
  for (const [name, value] of Object.entries(EXPECTED_SECURITY_HEADERS)) {
    expect(response.headers[name], `${name} on ${response.statusCode}`).toBe(value);
  }
  expect(response.headers['x-powered-by']).toBeUndefined();
}

describe.each(testDialects())('security headers [%s]', (dialect) => {
  let test: TestApp;
  let session: Awaited<ReturnType<typeof signedInUser>>;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    session = await signedInUser(test.app, 'headers@example.com');
  });
  afterAll(() => test.close());

  it('are on normal answers, each with its exact value', async () => {
    for (const url of ['/', '/healthz', '/readyz']) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expectSecurityHeaders(response);
    }
    const me = await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${session.token}` } });
    expect(me.statusCode).toBe(200);
    expectSecurityHeaders(me);
  });

  it('are on error answers: 404, 401, 400, 415, 413', async () => {
    const answers = [
      [404, await test.app.inject({ method: 'GET', url: '/nowhere' })],
      [401, await test.app.inject({ method: 'GET', url: '/me' })],
      [401, await test.app.inject({ method: 'GET', url: '/users', headers: { authorization: 'Bearer not-a-token' } })],
      [400, await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'not an email' } })],
      [400, await test.app.inject({ method: 'GET', url: '/healthz?access_token=abc' })],
      [415, await test.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'text/plain' }, payload: 'x' })],
      [413, await test.app.inject({ method: 'POST', url: '/signup', payload: { name: 'x'.repeat(100_000), email: 'a@example.com', password: 'x' } })],
    ] as const;
    for (const [status, response] of answers) {
      expect(response.statusCode, response.body).toBe(status);
      expectSecurityHeaders(response);
    }
  });

  it('are on the answers that carry tokens: login, refresh, and no cache may keep them', async () => {
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'headers@example.com', password: 'correct horse battery staple' } });
    expect(login.statusCode).toBe(201);
    expectSecurityHeaders(login);
    const refresh = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: json(login).refresh_token } });
    expect(refresh.statusCode).toBe(201);
    expectSecurityHeaders(refresh);
    const signup = await test.app.inject({ method: 'POST', url: '/signup', payload: { name: 'New', email: 'new@example.com', password: 'correct horse battery staple' } });
    expect(signup.statusCode).toBe(201);
    expectSecurityHeaders(signup);
  });

  it('are on the public discovery documents too, which alone may be cached', async () => {
    for (const url of ['/.well-known/jwks.json', '/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      for (const [name, value] of Object.entries(EXPECTED_SECURITY_HEADERS)) {
        if (name !== 'cache-control') expect(response.headers[name], `${name} on ${url}`).toBe(value);
      }
      expect(response.headers['cache-control'], url).toMatch(/^public, max-age=\d+/);
    }
  });
});
