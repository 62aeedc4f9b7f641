import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setClientDisabled } from '../src/clients/clients.ts';
import { expectErrorEnvelope, json, loginUser, signedInUser, signupUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { basicAuthorization, expectOAuthError, expectTokenAnswer, postForm, registerConfidentialClient, registerPublicClient, type RegisteredClient } from './oauth-helpers.ts';

const ORDERS = 'https://orders.example';

describe.each(testDialects())('POST /oauth/token [%s]', (dialect) => {
  let test: TestApp;
  let orders: RegisteredClient;
  let billing: RegisteredClient;
  beforeAll(async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3' });
    orders = await registerConfidentialClient(test, { id: 'orders-api', audiences: [ORDERS], scopes: ['orders:read', 'orders:write'] });
    billing = await registerConfidentialClient(test, { id: 'billing-api' });
    await registerPublicClient(test, 'spa', [ORDERS]);
    await signupUser(test.app, { email: 'alice@example.com' });
  });
  afterAll(() => test.close());

  const token = (params: Record<string, string | string[]> | string, headers: Record<string, string> = {}) => postForm(test.app, '/oauth/token', params, headers);
  const me = (accessToken: string) => test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${accessToken}` } });
  const password = (extra: Record<string, string> = {}, headers: Record<string, string> = {}) =>
    token({ grant_type: 'password', username: 'alice@example.com', password: STRONG_PASSWORD, ...extra }, headers);
  const sessionOf = (sid: unknown) => test.deps.db.selectFrom('sessions').selectAll().where('id', '=', sid as string).executeTakeFirstOrThrow();

  describe('grant_type=password', () => {
    it('signs a user in through the default client: a user token for JWT_AUDIENCE and a refresh token', async () => {
      const { body, claims } = expectTokenAnswer(await password());
      expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'refresh_token', 'token_type']);
      expect(body.expires_in).toBe(900);
      expect(claims).toMatchObject({ client_id: 'gatehouse', aud: 'gatehouse', email: 'alice@example.com' });
      expect((await me(body.access_token)).statusCode).toBe(200);
      expect(await sessionOf(claims.sid)).toMatchObject({ client_id: 'gatehouse', audience: null });
    });

    it('through a public client by client_id, for an audience it may ask for: the token opens that API, not Gatehouse', async () => {
      const { body, claims } = expectTokenAnswer(await password({ client_id: 'spa', resource: ORDERS }));
      expect(claims).toMatchObject({ client_id: 'spa', aud: ORDERS });
      expect((await me(body.access_token)).statusCode).toBe(401);
      expect(await sessionOf(claims.sid)).toMatchObject({ client_id: 'spa', audience: ORDERS });
    });

    it('through a confidential client authenticated with Basic', async () => {
      const { claims } = expectTokenAnswer(await password({}, { authorization: orders.basic }));
      expect(claims).toMatchObject({ client_id: 'orders-api', aud: 'gatehouse' });
    });

    it('refuses a wrong password and an unknown user alike (invalid_grant), shares the lockout with /login, and answers 429 then', async () => {
      await signupUser(test.app, { email: 'locked@example.com' });
      const wrong = await token({ grant_type: 'password', username: 'locked@example.com', password: 'not the password at all' });
      const unknown = await token({ grant_type: 'password', username: 'nobody@example.com', password: 'not the password at all' });
      expect(expectOAuthError(wrong, 400, 'invalid_grant')).toEqual(json(unknown));
      await loginUser(test.app, 'locked@example.com', 'still not the password');
      await token({ grant_type: 'password', username: 'locked@example.com', password: 'nor this one either' });
      // Three failures, counted across both routes: the right password is refused on both.
      const locked = await token({ grant_type: 'password', username: 'locked@example.com', password: STRONG_PASSWORD });
      expectOAuthError(locked, 429, 'temporarily_unavailable');
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
      expect((await loginUser(test.app, 'locked@example.com')).statusCode).toBe(429);
    });

    it('refuses a scope (user tokens carry roles), a missing username or password, and an audience the client may not ask for', async () => {
      expectOAuthError(await password({ scope: 'orders:read' }), 400, 'invalid_scope');
      expectOAuthError(await token({ grant_type: 'password', password: STRONG_PASSWORD }), 400, 'invalid_request');
      expectOAuthError(await token({ grant_type: 'password', username: 'alice@example.com' }), 400, 'invalid_request');
      expectOAuthError(await password({ audience: ORDERS }), 400, 'invalid_target'); // the default client has no extra audiences
      expectOAuthError(await password({ client_id: 'spa', audience: 'https://billing.example' }), 400, 'invalid_target');
      expectOAuthError(await password({ client_id: 'spa', resource: [ORDERS, 'gatehouse'] } as never), 400, 'invalid_target');
      expectOAuthError(await password({ client_id: 'spa', resource: ORDERS, audience: 'gatehouse' }), 400, 'invalid_target');
    });
  });

  describe('grant_type=refresh_token', () => {
    it('rotates a /login session: a new refresh token, and reuse of the spent one ends the session', async () => {
      const user = await signedInUser(test.app, 'rotate@example.com');
      const { body, claims } = expectTokenAnswer(await token({ grant_type: 'refresh_token', refresh_token: user.refreshToken }));
      expect(body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(body.refresh_token).not.toBe(user.refreshToken);
      expect(claims).toMatchObject({ client_id: 'gatehouse', aud: 'gatehouse', sub: String(user.id) });

      test.clock.advanceSeconds(60); // past the retry grace: the spent token is reuse now
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: user.refreshToken }), 400, 'invalid_grant');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: body.refresh_token! }), 400, 'invalid_grant');
      expect((await sessionOf(claims.sid)).revoked_reason).toBe('refresh_token_reuse');
    });

    it("is bound to the session's client: another client is refused and the token stays unspent", async () => {
      const user = await signedInUser(test.app, 'bound@example.com');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: 'spa' }), 400, 'invalid_grant');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: user.refreshToken }, { authorization: orders.basic }), 400, 'invalid_grant');
      expectTokenAnswer(await token({ grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: 'gatehouse' }));
    });

    it("a confidential client's session refreshes only with its secret", async () => {
      const { body } = expectTokenAnswer(await password({}, { authorization: orders.basic }));
      const refreshToken = body.refresh_token!;
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'orders-api' }), 401, 'invalid_client');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: refreshToken }), 400, 'invalid_grant');
      expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } }), 401);
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: refreshToken }, { authorization: billing.basic }), 400, 'invalid_grant');
      const { claims } = expectTokenAnswer(await token({ grant_type: 'refresh_token', refresh_token: refreshToken }, { authorization: orders.basic }));
      expect(claims.client_id).toBe('orders-api');
    });

    it("keeps the session's audience; another allowed one is for that token only; one not allowed is refused before spending", async () => {
      const { body, claims } = expectTokenAnswer(await password({ client_id: 'spa', audience: ORDERS }));
      const first = expectTokenAnswer(await token({ grant_type: 'refresh_token', refresh_token: body.refresh_token!, client_id: 'spa' }));
      expect(first.claims).toMatchObject({ aud: ORDERS, sid: claims.sid });

      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token!, client_id: 'spa', resource: 'https://billing.example' }), 400, 'invalid_target');
      const narrowed = expectTokenAnswer(await token({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token!, client_id: 'spa', audience: 'gatehouse' }));
      expect(narrowed.claims.aud).toBe('gatehouse');
      expect((await me(narrowed.body.access_token)).statusCode).toBe(200);

      const again = expectTokenAnswer(await token({ grant_type: 'refresh_token', refresh_token: narrowed.body.refresh_token!, client_id: 'spa' }));
      expect(again.claims.aud).toBe(ORDERS);
    });

    it('refuses a missing, malformed or unknown refresh token, and a scope', async () => {
      expectOAuthError(await token({ grant_type: 'refresh_token' }), 400, 'invalid_request');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: 'short' }), 400, 'invalid_grant');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: 'A'.repeat(43) }), 400, 'invalid_grant');
      const user = await signedInUser(test.app, 'scoped@example.com');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: user.refreshToken, scope: 'admin' }), 400, 'invalid_scope');
    });
  });

  describe('grant_type=client_credentials', () => {
    it("issues a client token: sub and client_id are the client, its scopes, no user claims, CLIENT_TOKEN_TTL, no refresh token", async () => {
      const { body, claims } = expectTokenAnswer(await token({ grant_type: 'client_credentials' }, { authorization: orders.basic }));
      expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
      expect(body).toMatchObject({ expires_in: 300, scope: 'orders:read orders:write' });
      expect(Object.keys(claims).sort()).toEqual(['aud', 'client_id', 'exp', 'gty', 'iat', 'iss', 'jti', 'scope', 'sub']);
      expect(claims).toMatchObject({ sub: 'orders-api', client_id: 'orders-api', gty: 'client_credentials', scope: 'orders:read orders:write', aud: 'gatehouse' });
      expect(claims.exp! - claims.iat!).toBe(300);
      // Never a user: Gatehouse's own routes refuse it.
      expectErrorEnvelope(await me(body.access_token), 401, 'auth failed - token is invalid');
    });

    it('narrows to the scopes asked for, refuses more, and leaves scope out for a client without any', async () => {
      const narrowed = expectTokenAnswer(await token({ grant_type: 'client_credentials', scope: 'orders:read' }, { authorization: orders.basic }));
      expect(narrowed.body.scope).toBe('orders:read');
      expect(narrowed.claims.scope).toBe('orders:read');
      expectOAuthError(await token({ grant_type: 'client_credentials', scope: 'orders:read admin' }, { authorization: orders.basic }), 400, 'invalid_scope');
      const bare = expectTokenAnswer(await token({ grant_type: 'client_credentials' }, { authorization: billing.basic }));
      expect(bare.body).not.toHaveProperty('scope');
      expect(bare.claims).not.toHaveProperty('scope');
    });

    it('carries an audience the client may ask for, and refuses others', async () => {
      const { claims } = expectTokenAnswer(await token({ grant_type: 'client_credentials', resource: ORDERS }, { authorization: orders.basic }));
      expect(claims.aud).toBe(ORDERS);
      expectOAuthError(await token({ grant_type: 'client_credentials', resource: ORDERS }, { authorization: billing.basic }), 400, 'invalid_target');
    });

    it('is refused to public clients, the default one included (unauthorized_client)', async () => {
      expectOAuthError(await token({ grant_type: 'client_credentials', client_id: 'spa' }), 400, 'unauthorized_client');
      expectOAuthError(await token({ grant_type: 'client_credentials' }), 400, 'unauthorized_client');
    });
  });

  describe('client authentication and bad input', () => {
    const encoded = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;

    it('answers one invalid_client (401, WWW-Authenticate: Basic) for every bad Basic header, wrong secret, unknown, public or disabled client', async () => {
      await registerConfidentialClient(test, { id: 'doomed-api' }).then(async (doomed) => {
        await setClientDisabled(test.deps, 'doomed-api', true);
        const wrongSecret = `${orders.secret.slice(0, -1)}${orders.secret.endsWith('A') ? 'B' : 'A'}`;
        const headers = [
          'Basic',
          'Basic !!!!',
          'Basic a b',
          encoded('no-colon'),
          encoded(':secret'),
          encoded('orders-api:'),
          encoded('orders-api:%E0%A4%A'),
          `Basic ${'A'.repeat(5000)}`,
          'Bearer abc',
          basicAuthorization('orders-api', wrongSecret),
          basicAuthorization('nobody-api', orders.secret),
          basicAuthorization('spa', orders.secret),
          doomed.basic,
        ];
        const bodies = new Set<string>();
        for (const authorization of headers) {
          const response = await token({ grant_type: 'client_credentials' }, { authorization });
          expectOAuthError(response, 401, 'invalid_client', [orders.secret, wrongSecret]);
          bodies.add(response.body);
        }
        expect(bodies.size).toBe(1);
      });
    });

    it('refuses an unknown or disabled public client_id, a client_id that differs from Basic, and client_secret in the body', async () => {
      await registerPublicClient(test, 'old-spa');
      await setClientDisabled(test.deps, 'old-spa', true);
      for (const clientId of ['nobody', 'old-spa', 'orders-api', 'UPPER', '12345']) {
        expectOAuthError(await password({ client_id: clientId }), 401, 'invalid_client');
      }
      expectOAuthError(await token({ grant_type: 'client_credentials', client_id: 'billing-api' }, { authorization: orders.basic }), 401, 'invalid_client');
      const posted = await token({ grant_type: 'client_credentials', client_id: 'orders-api', client_secret: orders.secret });
      expectOAuthError(posted, 401, 'invalid_client', [orders.secret]);
    });

    it('answers invalid_request for a missing grant_type, a repeated parameter, bad UTF-8, a prototype key or an empty body; unsupported_grant_type for others', async () => {
      expectOAuthError(await token({}), 400, 'invalid_request');
      expectOAuthError(await token(''), 400, 'invalid_request');
      expectOAuthError(await token('grant_type=password&grant_type=client_credentials'), 400, 'invalid_request');
      expectOAuthError(await token('grant_type=password&username=%FF%FE'), 400, 'invalid_request');
      expectOAuthError(await token('grant_type=password&__proto__=x'), 400, 'invalid_request');
      expectOAuthError(await token(`grant_type=password&password=${'x'.repeat(5000)}`), 400, 'invalid_request');
      expectOAuthError(await token({ grant_type: 'authorization_code', code: 'x' }), 400, 'unsupported_grant_type');
      expectOAuthError(await token({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange' }), 400, 'unsupported_grant_type');
    });

    it('ignores unknown parameters and empty values (RFC 6749 sections 3.1 and 3.2), and takes a charset parameter', async () => {
      expectTokenAnswer(await token('grant_type=password&username=alice%40example.com&password=correct+horse+battery+staple&nonce=1&scope=&client_id='));
      const withCharset = await token(
        { grant_type: 'password', username: 'alice@example.com', password: STRONG_PASSWORD },
        { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
      );
      expectTokenAnswer(withCharset);
    });

    it('takes form bodies only (415 envelope for JSON), while the JSON routes still refuse form bodies', async () => {
      const asJson = await test.app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'alice@example.com', password: STRONG_PASSWORD } });
      expectErrorEnvelope(asJson, 415, 'unsupported media type - send application/x-www-form-urlencoded');
      expectErrorEnvelope(await postForm(test.app, '/login', { email: 'alice@example.com', password: STRONG_PASSWORD }), 415);
    });

    it('never answers 500 for random bodies and headers', async () => {
      const bodies = ['%', '%%%', 'grant_type', '=', '&&&', 'grant_type=%00', 'a=1&a=2', `grant_type=password&resource=${'r&resource='.repeat(20)}`, '\u0000'];
      for (const body of bodies) {
        const response = await token(body, { authorization: 'Basic Og==' });
        expect(response.statusCode, body).toBeGreaterThanOrEqual(400);
        expect(response.statusCode, body).toBeLessThan(500);
      }
    });
  });
});

describe.each(testDialects())('POST /oauth/token budgets [%s]', (dialect) => {
  it('shares the per-address budget of /login and /token/refresh, as /revoke does', async () => {
    const test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '2' });
    try {
      expect((await loginUser(test.app, 'nobody@example.com')).statusCode).toBe(403);
      expectOAuthError(await postForm(test.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'A'.repeat(43) }), 400, 'invalid_grant');
      const limited = await postForm(test.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'A'.repeat(43) });
      expectOAuthError(limited, 429, 'temporarily_unavailable');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expectErrorEnvelope(await loginUser(test.app, 'nobody@example.com'), 429);
      // Revocation costs a lookup per token: it draws on the same budget.
      expectOAuthError(await postForm(test.app, '/revoke', { token: 'A'.repeat(43) }), 429, 'temporarily_unavailable');
    } finally {
      await test.close();
    }
  });
});
