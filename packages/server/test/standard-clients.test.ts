import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from '../../verify/src/index.ts';
import { signedInUser, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { registerConfidentialClient, registerPublicClient, startListeningApp, type RegisteredClient } from './oauth-helpers.ts';

const ORDERS = 'https://orders.example';
// Plain HTTP on loopback: the libraries refuse it unless told, as they should.
const insecure = { [oauth.allowInsecureRequests]: true } as const;

/** Standard libraries, unmodified, against a listening Gatehouse whose JWT_ISSUER is its URL. */
describe.each(testDialects())('standard OAuth and JWT libraries [%s]', (dialect) => {
  let test: TestApp;
  let origin: string;
  let as: oauth.AuthorizationServer;
  let orders: RegisteredClient;
  beforeAll(async () => {
    ({ test, origin } = await startListeningApp(dialect));
    orders = await registerConfidentialClient(test, { id: 'orders-api', audiences: [ORDERS], scopes: ['orders:read', 'orders:write'] });
    await registerPublicClient(test, 'spa', [ORDERS]);
    as = await oauth.processDiscoveryResponse(new URL(origin), await oauth.discoveryRequest(new URL(origin), { algorithm: 'oauth2', ...insecure }));
  });
  afterAll(() => test.close());

  /** What a resource server behind Gatehouse receives. */
  const bearerRequest = (token: string) => new Request(`${origin}/orders`, { headers: { authorization: `Bearer ${token}` } });

  it("oauth4webapi's discovery accepts the metadata, which lists the endpoints that exist", async () => {
    expect(as).toMatchObject({
      issuer: origin,
      jwks_uri: `${origin}/.well-known/jwks.json`,
      token_endpoint: `${origin}/oauth/token`,
      revocation_endpoint: `${origin}/revoke`,
      introspection_endpoint: `${origin}/introspect`,
      grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
      introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
    });
    expect(as).not.toHaveProperty('response_types_supported');
    for (const endpoint of [as.token_endpoint, as.revocation_endpoint, as.introspection_endpoint]) {
      // Each exists: an empty POST is a 4xx of that endpoint, not a 404.
      const response = await fetch(endpoint!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
      expect([400, 401]).toContain(response.status);
    }
  });

  it("a user token verifies with jose's jwtVerify + createRemoteJWKSet and with oauth4webapi's validateJwtAccessToken (RFC 9068)", async () => {
    const user = await signedInUser(test.app, 'standard@example.com');
    const { payload, protectedHeader } = await jwtVerify(user.token, createRemoteJWKSet(new URL(as.jwks_uri!)), {
      issuer: origin,
      audience: 'gatehouse',
      typ: 'at+jwt',
      currentDate: test.clock.now(),
    });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ sub: String(user.id), client_id: 'gatehouse' });

    const claims = await oauth.validateJwtAccessToken(as, bearerRequest(user.token), 'gatehouse', insecure);
    expect(claims).toMatchObject({ iss: origin, aud: 'gatehouse', sub: String(user.id), client_id: 'gatehouse', sid: payload.sid });
    // The RFC 9068 profile checks the audience: a token for Gatehouse is not one for the orders API.
    await expect(oauth.validateJwtAccessToken(as, bearerRequest(user.token), ORDERS, insecure)).rejects.toThrow();
  });

  it("oauth4webapi's password and refresh_token grants work against /oauth/token, and their tokens validate", async () => {
    await signedInUser(test.app, 'grants@example.com');
    const spa: oauth.Client = { client_id: 'spa' };
    const passwordResponse = await oauth.genericTokenEndpointRequest(as, spa, oauth.None(), 'password', { username: 'grants@example.com', password: STRONG_PASSWORD, resource: ORDERS }, insecure);
    const first = await oauth.processGenericTokenEndpointResponse(as, spa, passwordResponse);
    expect(first).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    expect(first.refresh_token).toEqual(expect.any(String));

    const refreshed = await oauth.processRefreshTokenResponse(as, spa, await oauth.refreshTokenGrantRequest(as, spa, oauth.None(), first.refresh_token!, insecure));
    expect(refreshed.refresh_token).not.toBe(first.refresh_token);
    const claims = await oauth.validateJwtAccessToken(as, bearerRequest(refreshed.access_token), ORDERS, insecure);
    expect(claims).toMatchObject({ client_id: 'spa', aud: ORDERS });

    // A spent refresh token is an OAuth error the library reads as such.
    const reuse = oauth.processRefreshTokenResponse(as, spa, await oauth.refreshTokenGrantRequest(as, spa, oauth.None(), 'A'.repeat(43), insecure));
    await expect(reuse).rejects.toMatchObject({ code: oauth.RESPONSE_BODY_ERROR, error: 'invalid_grant', status: 400 });
  });

  it("oauth4webapi's client_credentials grant with client_secret_basic: a client token that validates and introspects", async () => {
    const client: oauth.Client = { client_id: orders.id };
    const response = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(orders.secret), { scope: 'orders:read' }, insecure);
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    expect(result).toMatchObject({ token_type: 'bearer', expires_in: 300, scope: 'orders:read' });
    expect(result.refresh_token).toBeUndefined();

    const claims = await oauth.validateJwtAccessToken(as, bearerRequest(result.access_token), 'gatehouse', insecure);
    expect(claims).toMatchObject({ sub: 'orders-api', client_id: 'orders-api', gty: 'client_credentials', scope: 'orders:read' });
    const { payload } = await jwtVerify(result.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: origin, audience: 'gatehouse', currentDate: test.clock.now() });
    expect(payload.sid).toBeUndefined();

    const introspected = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, oauth.ClientSecretBasic(orders.secret), result.access_token, insecure));
    expect(introspected).toMatchObject({ active: true, client_id: 'orders-api', scope: 'orders:read', token_type: 'Bearer' });

    const wrongSecret = oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic('ghcs_not-the-secret'), {}, insecure).then((answer) =>
      oauth.processClientCredentialsResponse(as, client, answer),
    );
    // A 401 with WWW-Authenticate: the library reports the challenge.
    await expect(wrongSecret).rejects.toMatchObject({ code: oauth.WWW_AUTHENTICATE_CHALLENGE, status: 401 });
  });

  it("oauth4webapi's revocation and introspection requests: revoked tokens introspect inactive", async () => {
    const user = await signedInUser(test.app, 'revoked@example.com');
    const resourceServer: oauth.Client = { client_id: orders.id };
    const introspect = async (token: string) =>
      oauth.processIntrospectionResponse(as, resourceServer, await oauth.introspectionRequest(as, resourceServer, oauth.ClientSecretBasic(orders.secret), token, insecure));
    expect((await introspect(user.token)).active).toBe(true);

    const gatehouse: oauth.Client = { client_id: 'gatehouse' };
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, gatehouse, oauth.None(), user.refreshToken, insecure));
    expect(await introspect(user.token)).toEqual({ active: false });
    const me = await fetch(`${origin}/me`, { headers: { authorization: `Bearer ${user.token}` } });
    expect(me.status).toBe(401);
    expect(((await me.json()) as { message: string }).message).toBe('auth failed - token has been revoked');
  });

  it('@gatehouse/verify tells the tokens of the grants apart: a user token through a client, and a client token', async () => {
    await signedInUser(test.app, 'verified@example.com');
    const verifier = createVerifier({ issuer: origin, audience: [ORDERS, 'gatehouse'], now: () => test.clock.now().getTime() });
    const spa: oauth.Client = { client_id: 'spa' };
    const user = await oauth.processGenericTokenEndpointResponse(
      as,
      spa,
      await oauth.genericTokenEndpointRequest(as, spa, oauth.None(), 'password', { username: 'verified@example.com', password: STRONG_PASSWORD, resource: ORDERS }, insecure),
    );
    expect(await verifier.verify(user.access_token)).toMatchObject({ kind: 'user', clientId: 'spa' });

    const client: oauth.Client = { client_id: orders.id };
    const service = await oauth.processClientCredentialsResponse(as, client, await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(orders.secret), {}, insecure));
    expect(await verifier.verify(service.access_token)).toMatchObject({ kind: 'client', clientId: 'orders-api', scopes: ['orders:read', 'orders:write'] });
  });

  it('the seed routes stay JSON: /login still answers the envelope through a listening server', async () => {
    const response = await fetch(`${origin}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'standard@example.com', password: STRONG_PASSWORD }) });
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({ status: true, message: 'verification success' });
  });
});
