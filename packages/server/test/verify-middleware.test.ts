import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireClient, requireRole, requireScope, requireUser, type Claims, type Verifier } from '../../verify/src/index.ts';
import { signedInAdmin, signedInUser, testDialects } from './helpers.ts';
import { grantedClientToken, startLiveGatehouse, type LiveGatehouse } from './verify-helpers.ts';

/** In a service of your own, declare `auth: Claims | null` on FastifyRequest; here the server's own declaration is in the way. */
const authOf = (request: object) => (request as { auth: Claims }).auth;

interface Answer {
  status: number;
  challenge: string | null;
  body: any;
}

async function call(baseUrl: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`${baseUrl}${path}`, { method, headers });
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: await response.json() };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** One small resource server per framework, protected by the same verifier and guards. */
function expressService(verifier: Verifier) {
  const app = express();
  app.get('/orders', verifier.express(), requireUser(), (request, response) => {
    response.json({ orders: [], for: authOf(request).subject });
  });
  app.post('/orders', verifier.express(requireRole('admin')), (_request, response) => {
    response.status(201).json({ created: true });
  });
  app.get('/internal/stats', verifier.express(), requireClient(), requireScope('orders:stats'), (_request, response) => {
    response.json({ orders: 0 });
  });
  return app;
}

async function fastifyService(verifier: Verifier): Promise<FastifyInstance> {
  const app = Fastify();
  app.get('/healthz', async () => ({ ok: true }));
  await app.register(async (api) => {
    await api.register(verifier.fastifyPlugin);
    api.get('/orders', { onRequest: requireUser() }, async (request) => ({ orders: [], for: authOf(request).subject }));
    api.post('/orders', { onRequest: requireRole('admin') }, async (_request, reply) => reply.code(201).send({ created: true }));
    api.get('/internal/stats', { onRequest: [requireClient(), requireScope('orders:stats')] }, async () => ({ orders: 0 }));
  });
  return app;
}

describe.each(testDialects())('@gatehouse/verify guards in Express and Fastify [%s]', (dialect) => {
  let gatehouse: LiveGatehouse;
  let closeService: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    gatehouse = await startLiveGatehouse(dialect);
  });
  afterEach(async () => {
    await closeService?.();
    closeService = undefined;
    await gatehouse.close();
  });

  async function startService(framework: 'express' | 'fastify', verifier: Verifier): Promise<string> {
    if (framework === 'express') {
      const server = expressService(verifier).listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      closeService = () => new Promise((resolve) => server.close(() => resolve()));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
    const app = await fastifyService(verifier);
    closeService = () => app.close();
    return app.listen({ host: '127.0.0.1', port: 0 });
  }

  for (const framework of ['express', 'fastify'] as const) {
    it(`${framework}: RFC 6750 answers for missing, invalid, revoked and insufficient tokens`, async () => {
      const { test } = gatehouse;
      const verifier = gatehouse.verifier({ realm: 'orders', revocations: await gatehouse.feedClient() });
      const baseUrl = await startService(framework, verifier);
      const user = await signedInUser(test.app, 'reader@example.com');
      const admin = await signedInAdmin(test, 'boss@example.com');
      const service = await grantedClientToken(test, 'billing-service', ['orders:stats']);
      const unscoped = await grantedClientToken(test, 'nosy-service', ['orders:read']);

      // No token: a bare challenge, no error code (RFC 6750 section 3.1).
      const missing = await call(baseUrl, 'GET', '/orders');
      expect(missing).toMatchObject({ status: 401, challenge: 'Bearer realm="orders"', body: { error: 'token_missing' } });
      // Another scheme counts as no token.
      expect((await call(baseUrl, 'GET', '/orders', { authorization: 'Basic dXNlcjpwYXNz' })).challenge).toBe('Bearer realm="orders"');
      const invalid = await call(baseUrl, 'GET', '/orders', bearer(`${user.token}x`));
      expect(invalid).toEqual({
        status: 401,
        challenge: 'Bearer realm="orders", error="invalid_token", error_description="the access token is invalid"',
        body: { error: 'invalid_token', error_description: 'the access token is invalid' },
      });
      const twoTokens = await call(baseUrl, 'GET', '/orders', { ...bearer(user.token), 'x-access-token': admin.token });
      expect(twoTokens.status).toBe(400);
      expect(twoTokens.challenge).toMatch(/^Bearer realm="orders", error="invalid_request"/);

      // Users read orders (Bearer or the seed's header); only admins create them.
      expect(await call(baseUrl, 'GET', '/orders', bearer(user.token))).toMatchObject({ status: 200, body: { for: String(user.id) } });
      expect((await call(baseUrl, 'GET', '/orders', { 'x-access-token': user.token })).status).toBe(200);
      const notAdmin = await call(baseUrl, 'POST', '/orders', bearer(user.token));
      expect(notAdmin).toMatchObject({ status: 403, body: { error: 'insufficient_scope', error_description: 'role admin required' } });
      expect(notAdmin.challenge).toBe('Bearer realm="orders", error="insufficient_scope", error_description="role admin required"');
      expect((await call(baseUrl, 'POST', '/orders', bearer(admin.token))).status).toBe(201);

      // Service tokens: only on the internal route, and only with its scope; never where a user is required.
      expect((await call(baseUrl, 'GET', '/internal/stats', bearer(service))).status).toBe(200);
      const userOnInternal = await call(baseUrl, 'GET', '/internal/stats', bearer(admin.token));
      expect(userOnInternal).toMatchObject({ status: 403, body: { error: 'insufficient_scope', error_description: 'a client token is required' } });
      const clientOnOrders = await call(baseUrl, 'GET', '/orders', bearer(service));
      expect(clientOnOrders).toMatchObject({ status: 403, body: { error_description: 'a user token is required' } });
      expect((await call(baseUrl, 'POST', '/orders', bearer(service))).status).toBe(403);
      const noScope = await call(baseUrl, 'GET', '/internal/stats', bearer(unscoped));
      expect(noScope.status).toBe(403);
      expect(noScope.challenge).toBe('Bearer realm="orders", error="insufficient_scope", error_description="scope orders:stats required", scope="orders:stats"');

      // Logged out at Gatehouse: refused here within a second.
      const loggedOutAt = performance.now();
      expect((await fetch(`${gatehouse.issuer}/logout`, { method: 'POST', headers: bearer(user.token) })).status).toBe(200);
      let revoked: Answer | undefined;
      while (!revoked && performance.now() - loggedOutAt < 2000) {
        const answer = await call(baseUrl, 'GET', '/orders', bearer(user.token));
        if (answer.status === 401) revoked = answer;
      }
      expect(performance.now() - loggedOutAt).toBeLessThan(1000);
      expect(revoked?.challenge).toBe('Bearer realm="orders", error="invalid_token", error_description="the access token has been revoked"');
    });

    it(`${framework}: 503 with Retry-After when Gatehouse's keys cannot be fetched`, async () => {
      const user = await signedInUser(gatehouse.test.app, 'stranded@example.com');
      const baseUrl = await startService(framework, gatehouse.verifier({ issuer: 'http://127.0.0.1:1' }));
      const response = await fetch(`${baseUrl}/orders`, { headers: bearer(user.token) });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(response.headers.get('www-authenticate')).toBeNull();
      expect(await response.json()).toEqual({ error: 'keys_unavailable', error_description: 'tokens cannot be verified right now' });
    });
  }

  it('fastify: the plugin guards only the routes of the context it is registered in', async () => {
    const baseUrl = await startService('fastify', gatehouse.verifier());
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${baseUrl}/orders`)).status).toBe(401);
  });

  it('express: a guard without the verifier before it fails closed (500), never open', async () => {
    const app = express();
    app.get('/oops', requireRole('admin'), (_request, response) => {
      response.json({ leaked: true });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    closeService = () => new Promise((resolve) => server.close(() => resolve()));
    const answer = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/oops`);
    expect(answer.status).toBe(500);
    expect(await answer.text()).not.toContain('leaked');
  });
});
