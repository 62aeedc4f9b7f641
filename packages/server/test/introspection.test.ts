import { generateKeyPair, SignJWT, decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deleteClient, setClientDisabled } from '../src/clients/clients.ts';
import { expectErrorEnvelope, json, signedInUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { expectOAuthError, expectTokenAnswer, postForm, registerConfidentialClient, registerPublicClient, type RegisteredClient } from './oauth-helpers.ts';

const ISSUER = 'http://localhost:2000';
const ORDERS = 'https://orders.example';

describe.each(testDialects())('POST /introspect [%s]', (dialect) => {
  let test: TestApp;
  let start: Date;
  let resourceServer: RegisteredClient;
  let worker: RegisteredClient;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    start = test.clock.now();
    resourceServer = await registerConfidentialClient(test, { id: 'orders-api', audiences: [ORDERS] });
    worker = await registerConfidentialClient(test, { id: 'report-worker', scopes: ['orders:read', 'reports:write'] });
    await registerPublicClient(test, 'spa', [ORDERS]);
  });
  beforeEach(() => test.clock.set(start));
  afterAll(() => test.close());

  const introspect = (token: string, client: RegisteredClient = resourceServer, extra: Record<string, string> = {}) =>
    postForm(test.app, '/introspect', { token, ...extra }, { authorization: client.basic });
  async function expectInactive(token: string): Promise<void> {
    const response = await introspect(token);
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    // Nothing but the verdict: never why.
    expect(response.body).toBe('{"active":false}');
  }
  const clientToken = async (client: RegisteredClient) =>
    json((await postForm(test.app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: client.basic }))).access_token as string;

  it("answers a live user token's claims, as RFC 7662 names them", async () => {
    const user = await signedInUser(test.app, 'live@example.com');
    const response = await introspect(user.token);
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const claims = decodeJwt(user.token);
    expect(json(response)).toStrictEqual({
      active: true,
      token_type: 'Bearer',
      iss: ISSUER,
      sub: String(user.id),
      aud: 'gatehouse',
      client_id: 'gatehouse',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      sid: claims.sid,
      roles: ['user'],
      email: 'live@example.com',
      username: 'live@example.com',
    });
    // The hint changes nothing, right or wrong.
    expect(json(await introspect(user.token, resourceServer, { token_type_hint: 'refresh_token' })).active).toBe(true);
  });

  it("answers a live client token's claims: the client as sub, its scope, no user claims", async () => {
    const token = await clientToken(worker);
    const claims = decodeJwt(token);
    expect(json(await introspect(token))).toStrictEqual({
      active: true,
      token_type: 'Bearer',
      iss: ISSUER,
      sub: 'report-worker',
      aud: 'gatehouse',
      client_id: 'report-worker',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      scope: 'orders:read reports:write',
    });
  });

  it('introspects tokens for any audience Gatehouse issued, not only its own', async () => {
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'live@example.com', password: STRONG_PASSWORD, client_id: 'spa', audience: ORDERS } });
    const body = json(await introspect(json(login).token));
    expect(body).toMatchObject({ active: true, aud: ORDERS, client_id: 'spa' });
  });

  it('answers {"active":false} for an expired token, exactly at exp', async () => {
    const user = await signedInUser(test.app, 'expiring@example.com');
    test.clock.advanceSeconds(899);
    expect(json(await introspect(user.token)).active).toBe(true);
    test.clock.advanceSeconds(1);
    await expectInactive(user.token);
    const token = await clientToken(worker);
    test.clock.advanceSeconds(300);
    await expectInactive(token);
  });

  it('answers {"active":false} once the session is revoked (logout), the user disabled or deleted', async () => {
    const loggedOut = await signedInUser(test.app, 'logout@example.com');
    expect((await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': loggedOut.token } })).statusCode).toBe(200);
    await expectInactive(loggedOut.token);

    const disabled = await signedInUser(test.app, 'disabled@example.com');
    const deleted = await signedInUser(test.app, 'deleted@example.com');
    expect(json(await introspect(disabled.token)).active).toBe(true);
    expect(json(await introspect(deleted.token)).active).toBe(true);
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', disabled.id).execute();
    await test.deps.db.deleteFrom('users').where('id', '=', deleted.id).execute();
    // A user's status is trusted for a second (users/status-cache.ts), as on Gatehouse's own routes.
    test.clock.advanceSeconds(1);
    await expectInactive(disabled.token);
    await expectInactive(deleted.token);
  });

  it("answers {\"active\":false} for a client token once its client is disabled or deleted", async () => {
    const doomed = await registerConfidentialClient(test, { id: 'doomed-worker', scopes: ['a'] });
    const paused = await registerConfidentialClient(test, { id: 'paused-worker' });
    const doomedToken = await clientToken(doomed);
    const pausedToken = await clientToken(paused);
    expect(json(await introspect(doomedToken)).active).toBe(true);
    expect(json(await introspect(pausedToken)).active).toBe(true);
    await deleteClient(test.deps, 'doomed-worker');
    await setClientDisabled(test.deps, 'paused-worker', true);
    test.clock.advanceSeconds(1); // a client's status is trusted for a second (clients/status-cache.ts)
    await expectInactive(doomedToken);
    await expectInactive(pausedToken);
    await setClientDisabled(test.deps, 'paused-worker', false);
    test.clock.advanceSeconds(1);
    expect(json(await introspect(pausedToken)).active).toBe(true);
  });

  it('refuses the user tokens of an application once it is disabled, here and on Gatehouse\'s own routes', async () => {
    await registerPublicClient(test, 'kiosk');
    await signedInUser(test.app, 'kiosk-user@example.com');
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'kiosk-user@example.com', password: STRONG_PASSWORD, client_id: 'kiosk' } });
    const token = json(login).token as string;
    const me = () => test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': token } });
    expect((await me()).statusCode).toBe(200);
    expect(json(await introspect(token)).active).toBe(true);
    await setClientDisabled(test.deps, 'kiosk', true);
    test.clock.advanceSeconds(1);
    await expectInactive(token);
    expectErrorEnvelope(await me(), 401, 'auth failed - token has been revoked');
    await setClientDisabled(test.deps, 'kiosk', false);
    test.clock.advanceSeconds(1);
    expect((await me()).statusCode).toBe(200);
  });

  it('answers {"active":false} for foreign, forged, malformed and refresh tokens', async () => {
    const user = await signedInUser(test.app, 'forged@example.com');
    const claims = decodeJwt(user.token);
    // The same claims under the same kid, signed by another key.
    const foreign = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const foreignToken = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: test.deps.keys.current().kid }).sign(foreign.privateKey);
    await expectInactive(foreignToken);
    // Our key, but another issuer: not a Gatehouse token.
    const key = test.deps.keys.current();
    await expectInactive(await new SignJWT({ ...claims, iss: 'https://evil.example' }).setProtectedHeader({ alg: key.algorithm, typ: 'at+jwt', kid: key.kid }).sign(key.privateKey));
    const [header, payload, signature] = user.token.split('.') as [string, string, string];
    const tampered = Buffer.from(JSON.stringify({ ...claims, roles: ['admin'] })).toString('base64url');
    await expectInactive(`${header}.${tampered}.${signature}`);
    for (const garbage of ['x', 'a.b.c', '...', `${header}.${payload}`, `${header}.${payload}.`, 'A'.repeat(4096), user.refreshToken]) {
      await expectInactive(garbage);
    }
  });

  it('refuses every caller but an authenticated confidential client (401 invalid_client), and a request without token (400)', async () => {
    const user = await signedInUser(test.app, 'callers@example.com');
    const wrongSecret = `${resourceServer.secret.slice(0, -1)}${resourceServer.secret.endsWith('A') ? 'B' : 'A'}`;
    const publicBasic = `Basic ${Buffer.from(`spa:${resourceServer.secret}`).toString('base64')}`;
    const wrongBasic = `Basic ${Buffer.from(`orders-api:${wrongSecret}`).toString('base64')}`;
    const callers: Array<Record<string, string>> = [{}, { authorization: publicBasic }, { authorization: wrongBasic }, { authorization: 'Basic ###' }, { authorization: `Bearer ${user.token}` }];
    for (const headers of callers) {
      const response = await postForm(test.app, '/introspect', { token: user.token }, headers);
      expectOAuthError(response, 401, 'invalid_client', [resourceServer.secret, wrongSecret]);
    }
    // A public client naming itself in the body is not authentication.
    expectOAuthError(await postForm(test.app, '/introspect', { token: user.token, client_id: 'spa' }), 401, 'invalid_client');
    expectOAuthError(await postForm(test.app, '/introspect', {}, { authorization: resourceServer.basic }), 400, 'invalid_request');
    expectOAuthError(await postForm(test.app, '/introspect', 'token=a&token=b', { authorization: resourceServer.basic }), 400, 'invalid_request');
    const asJson = await test.app.inject({ method: 'POST', url: '/introspect', headers: { authorization: resourceServer.basic }, payload: { token: user.token } });
    expect(asJson.statusCode).toBe(415);
  });

  it('throttles each client on the shared counters: past its budget 429 with Retry-After, other clients unaffected, a new minute restores it', async () => {
    const user = await signedInUser(test.app, 'busy@example.com');
    const throttled = await registerConfidentialClient(test, { id: 'busy-api' });
    // The budget is counted where every worker and instance counts it; spend all but one of it there.
    for (let spent = 1; spent < test.deps.config.limits.introspectionPerMinute; spent += 1) {
      await test.deps.shared.counters.increment('introspect:busy-api', 60, test.clock.nowSeconds());
    }
    expect(json(await introspect(user.token, throttled)).active).toBe(true);
    const limited = await introspect(user.token, throttled);
    expectOAuthError(limited, 429, 'temporarily_unavailable');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(json(await introspect(user.token, resourceServer)).active).toBe(true);
    test.clock.advanceSeconds(60);
    expect(json(await introspect(user.token, throttled)).active).toBe(true);
  });

  it('introspects the tokens the token endpoint issues through a public client', async () => {
    const { body } = expectTokenAnswer(
      await postForm(test.app, '/oauth/token', { grant_type: 'password', username: 'busy@example.com', password: STRONG_PASSWORD, client_id: 'spa', resource: ORDERS }),
    );
    expect(json(await introspect(body.access_token))).toMatchObject({ active: true, client_id: 'spa', aud: ORDERS, username: 'busy@example.com' });
    await expectInactive(body.refresh_token!);
  });
});
