import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, signedInUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { expectOAuthError, expectTokenAnswer, postForm, registerConfidentialClient, registerPublicClient, type RegisteredClient } from './oauth-helpers.ts';

describe.each(testDialects())('POST /revoke (RFC 7009) [%s]', (dialect) => {
  let test: TestApp;
  let orders: RegisteredClient;
  let billing: RegisteredClient;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    orders = await registerConfidentialClient(test, { id: 'orders-api', scopes: ['orders:read'] });
    billing = await registerConfidentialClient(test, { id: 'billing-api' });
    await registerPublicClient(test, 'spa');
  });
  afterAll(() => test.close());

  const revokeJson = (payload: Record<string, string>) => test.app.inject({ method: 'POST', url: '/revoke', payload });
  const me = (token: string) => test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': token } });
  const refresh = (refreshToken: string) => test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } });
  const revocationOf = async (sessionId: string) =>
    (await test.deps.db.selectFrom('sessions').select('revoked_reason').where('id', '=', sessionId).executeTakeFirstOrThrow()).revoked_reason;
  const sid = (accessToken: string) => JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).sid as string;

  /** 200 with no body, whatever happened: RFC 7009 section 2.2. */
  function expectRevocationAnswer(response: LightMyRequestResponse): void {
    expect(response.statusCode, response.body).toBe(200);
    expect(response.body).toBe('');
    expect(response.headers['cache-control']).toBe('no-store');
  }

  it('revokes the session of a refresh token (JSON, as the seed client would) even after its access token expired', async () => {
    const user = await signedInUser(test.app, 'logout@example.com');
    test.clock.advanceSeconds(900); // the access token is dead; logging out still works
    expectRevocationAnswer(await revokeJson({ token: user.refreshToken }));
    expect(await revocationOf(sid(user.token))).toBe('token_revocation');
    expectErrorEnvelope(await refresh(user.refreshToken), 401, 'refresh failed - token is invalid');
  });

  it('revokes the session of an access token (form), refusing the access token at once and its refresh token', async () => {
    const user = await signedInUser(test.app, 'access@example.com');
    expect((await me(user.token)).statusCode).toBe(200);
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token: user.token, token_type_hint: 'refresh_token' }));
    expectErrorEnvelope(await me(user.token), 401, 'auth failed - token has been revoked');
    expectErrorEnvelope(await refresh(user.refreshToken), 401);
  });

  it("answers 200 and changes nothing for unknown, malformed and expired tokens, and for another client's tokens", async () => {
    const bystander = await signedInUser(test.app, 'bystander@example.com');
    for (const token of ['A'.repeat(43), 'garbage', 'a.b.c', 'x'.repeat(4096)]) expectRevocationAnswer(await postForm(test.app, '/revoke', { token }));
    // The gatehouse session is not spa's, nor orders-api's, to end.
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token: bystander.refreshToken, client_id: 'spa' }));
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token: bystander.token }, { authorization: orders.basic }));
    expect(await revocationOf(sid(bystander.token))).toBeNull();
    expect((await me(bystander.token)).statusCode).toBe(200);

    const expiring = await signedInUser(test.app, 'expired-access@example.com');
    test.clock.advanceSeconds(900);
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token: expiring.token }));
    expect(await revocationOf(sid(expiring.token))).toBeNull();
  });

  it("a logout that names no client (the seed's, with the refresh token alone) ends a public client's session, never a confidential one's", async () => {
    await signedInUser(test.app, 'spa-user@example.com');
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'spa-user@example.com', password: STRONG_PASSWORD, client_id: 'spa' } });
    const spaSession = json(login) as { token: string; refresh_token: string };
    expectRevocationAnswer(await revokeJson({ token: spaSession.refresh_token }));
    expect(await revocationOf(sid(spaSession.token))).toBe('token_revocation');
    expectErrorEnvelope(await refresh(spaSession.refresh_token), 401);

    const confidential = expectTokenAnswer(
      await postForm(test.app, '/oauth/token', { grant_type: 'password', username: 'spa-user@example.com', password: STRONG_PASSWORD }, { authorization: orders.basic }),
    ).body;
    expectRevocationAnswer(await revokeJson({ token: confidential.refresh_token! }));
    expectRevocationAnswer(await revokeJson({ token: confidential.access_token }));
    expect(await revocationOf(sid(confidential.access_token))).toBeNull();
  });

  it("a confidential client's tokens are revoked only with its secret", async () => {
    const login = await postForm(test.app, '/oauth/token', { grant_type: 'password', username: 'bystander@example.com', password: STRONG_PASSWORD }, { authorization: orders.basic });
    const { body } = expectTokenAnswer(login);
    expectOAuthError(await postForm(test.app, '/revoke', { token: body.refresh_token!, client_id: 'orders-api' }), 401, 'invalid_client');
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token: body.refresh_token! }, { authorization: billing.basic }));
    expect(await revocationOf(sid(body.access_token))).toBeNull();
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token: body.refresh_token! }, { authorization: orders.basic }));
    expect(await revocationOf(sid(body.access_token))).toBe('token_revocation');
  });

  it('tells a client its own client token cannot be revoked (unsupported_token_type); to others it is one more unknown token', async () => {
    const token = json(await postForm(test.app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: orders.basic })).access_token as string;
    expectOAuthError(await postForm(test.app, '/revoke', { token }, { authorization: orders.basic }), 400, 'unsupported_token_type');
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token }, { authorization: billing.basic }));
    expectRevocationAnswer(await postForm(test.app, '/revoke', { token }));
  });

  it('refuses a missing token, a bad client and a repeated parameter, in the OAuth error format', async () => {
    expectOAuthError(await revokeJson({}), 400, 'invalid_request');
    expectOAuthError(await postForm(test.app, '/revoke', { token_type_hint: 'access_token' }), 400, 'invalid_request');
    expectOAuthError(await postForm(test.app, '/revoke', 'token=a&token=b'), 400, 'invalid_request');
    expectOAuthError(await test.app.inject({ method: 'POST', url: '/revoke', payload: { token: 42 } }), 400, 'invalid_request');
    expectOAuthError(await postForm(test.app, '/revoke', { token: 'x', client_id: 'nobody' }), 401, 'invalid_client');
    expectOAuthError(await postForm(test.app, '/revoke', { token: 'x' }, { authorization: 'Basic Og==' }), 401, 'invalid_client');
    expectOAuthError(await postForm(test.app, '/revoke', { token: 'x', client_secret: orders.secret, client_id: 'orders-api' }), 401, 'invalid_client', [orders.secret]);
    // Bodies the JSON parser refuses: OAuth's invalid_request, never a 500.
    for (const payload of ['{bad', '', Buffer.from([0x7b, 0xff, 0x7d]), '{"token":"x","__proto__":{"a":1}}', '{"token":"x","constructor":{"prototype":1}}']) {
      expectOAuthError(await test.app.inject({ method: 'POST', url: '/revoke', headers: { 'content-type': 'application/json' }, payload }), 400, 'invalid_request');
    }
    // Unknown parameters are ignored (RFC 6749 section 3.2), whatever their names.
    const user = await signedInUser(test.app, 'odd-names@example.com');
    expectRevocationAnswer(await postForm(test.app, '/revoke', `hasOwnProperty=a&toString=b&valueOf=c&token=${user.refreshToken}`));
    expect(await revocationOf(sid(user.token))).toBe('token_revocation');
  });
});
