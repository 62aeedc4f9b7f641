import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setClientDisabled } from '../src/clients/clients.ts';
import { expectErrorEnvelope, json, signupUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { registerConfidentialClient, registerPublicClient } from './oauth-helpers.ts';

const ORDERS = 'https://orders.example';
const NOT_A_CLIENT = 'invalid request - client_id is not a public client that can sign in here';

// The JSON routes of the seed, with the optional client_id and audience/resource (RFC 8707) fields.
describe.each(testDialects())('client_id and audience on /login and /token/refresh [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    await registerPublicClient(test, 'spa', [ORDERS]);
    await registerPublicClient(test, 'old-spa');
    await setClientDisabled(test.deps, 'old-spa', true);
    await registerConfidentialClient(test, { id: 'orders-api', audiences: [ORDERS] });
    await signupUser(test.app, { email: 'carol@example.com' });
  });
  afterAll(() => test.close());

  const login = (extra: Record<string, unknown> = {}) => test.app.inject({ method: 'POST', url: '/login', payload: { email: 'carol@example.com', password: STRONG_PASSWORD, ...extra } });
  const refresh = (refreshToken: string, extra: Record<string, unknown> = {}) =>
    test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken, ...extra } });
  const me = (token: string) => test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': token } });

  it('signs in through a public client for an audience it may ask for; the session keeps both across refreshes', async () => {
    const signedIn = await login({ client_id: 'spa', audience: ORDERS });
    expect(signedIn.statusCode).toBe(201);
    const body = json(signedIn);
    expect(Object.keys(body).sort()).toEqual(['code', 'data', 'expires_in', 'message', 'refresh_token', 'status', 'token', 'token_type']);
    expect(decodeJwt(body.token)).toMatchObject({ client_id: 'spa', aud: ORDERS });
    // For the orders API, not for Gatehouse.
    expectErrorEnvelope(await me(body.token), 401, 'auth failed - token is invalid');

    const refreshed = await refresh(body.refresh_token);
    expect(refreshed.statusCode).toBe(201);
    expect(decodeJwt(json(refreshed).token)).toMatchObject({ client_id: 'spa', aud: ORDERS });
    // The same session under client_id spa, asking once for Gatehouse's own audience by resource.
    const own = await refresh(json(refreshed).refresh_token, { client_id: 'spa', resource: 'gatehouse' });
    expect(own.statusCode).toBe(201);
    expect((await me(json(own).token)).statusCode).toBe(200);
    expect(decodeJwt(json((await refresh(json(own).refresh_token))).token).aud).toBe(ORDERS);
  });

  it('refuses an unknown, disabled or confidential client_id with one 400, before any password check', async () => {
    const answers = [];
    for (const clientId of ['nobody', 'old-spa', 'orders-api']) {
      const response = await login({ client_id: clientId, password: 'the wrong password entirely' });
      answers.push(expectErrorEnvelope(response, 400, NOT_A_CLIENT));
    }
    expect(new Set(answers.map((answer) => JSON.stringify(answer))).size).toBe(1);
    expectErrorEnvelope(await login({ client_id: 'Not A Client' }), 400);
    expectErrorEnvelope(await login({ client_id: '' }), 400);
  });

  it('refuses an audience the client may not ask for, and resource and audience that disagree', async () => {
    const refused = expectErrorEnvelope(await login({ audience: ORDERS }), 400, 'invalid request - audience is not an audience this client may ask for');
    expect(refused.data.errors).toEqual([{ field: 'audience', message: 'audience is not an audience this client may ask for' }]);
    expectErrorEnvelope(await login({ client_id: 'spa', resource: 'https://billing.example' }), 400, /resource is not an audience/);
    expectErrorEnvelope(await login({ client_id: 'spa', resource: ORDERS, audience: 'gatehouse' }), 400, /resource and audience must be the same/);
    expectErrorEnvelope(await login({ client_id: 'spa', audience: 'has space' }), 400);
    expect((await login({ client_id: 'spa', resource: ORDERS, audience: ORDERS })).statusCode).toBe(201);
  });

  it('on refresh: a client_id other than the session\'s is refused (401) and leaves the token unspent; an unknown one is a 400', async () => {
    const body = json(await login());
    expectErrorEnvelope(await refresh(body.refresh_token, { client_id: 'spa' }), 401, 'refresh failed - token is invalid');
    expectErrorEnvelope(await refresh(body.refresh_token, { client_id: 'nobody' }), 400, NOT_A_CLIENT);
    expectErrorEnvelope(await refresh(body.refresh_token, { audience: ORDERS }), 400, /audience is not an audience/);
    const refreshed = await refresh(body.refresh_token, { client_id: 'gatehouse' });
    expect(refreshed.statusCode).toBe(201);
  });

  it("stops refreshing a session once its client is disabled", async () => {
    await registerPublicClient(test, 'short-lived');
    const body = json(await login({ client_id: 'short-lived' }));
    await setClientDisabled(test.deps, 'short-lived', true);
    expectErrorEnvelope(await refresh(body.refresh_token), 401, 'refresh failed - token is invalid');
    await setClientDisabled(test.deps, 'short-lived', false);
    expect((await refresh(body.refresh_token)).statusCode).toBe(201);
  });

  it('keeps the default session as the seed knows it: client gatehouse, audience JWT_AUDIENCE', async () => {
    const body = json(await login());
    expect(decodeJwt(body.token)).toMatchObject({ client_id: 'gatehouse', aud: 'gatehouse' });
    const session = await test.deps.db.selectFrom('sessions').select(['client_id', 'audience']).where('id', '=', decodeJwt(body.token).sid as string).executeTakeFirstOrThrow();
    expect(session).toEqual({ client_id: 'gatehouse', audience: null });
  });
});
