import { createLocalJWKSet, createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { startListeningApp } from './oauth-helpers.ts';

const ISSUER = 'http://localhost:2000';
const HS_SECRET = 'an-hs256-secret-of-more-than-32-bytes!';
const DISCOVERY_PATHS = ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration'];
const OAUTH_METADATA = {
  issuer: ISSUER,
  token_endpoint: `${ISSUER}/oauth/token`,
  grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
  token_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
  revocation_endpoint: `${ISSUER}/revoke`,
  revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
  introspection_endpoint: `${ISSUER}/introspect`,
  introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
  service_documentation: `${ISSUER}/docs`,
};



describe.each(testDialects())('discovery metadata [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(() => test.close());

  it.each(DISCOVERY_PATHS)('GET %s publishes only what is true: issuer, keys, the OAuth endpoints and what they take, documentation', async (path) => {
    const response = await test.app.inject({ method: 'GET', url: path });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const metadata = json(response);
    expect(metadata).toStrictEqual({ ...OAUTH_METADATA, jwks_uri: `${ISSUER}/.well-known/jwks.json` });
    // No ID tokens, and no authorization endpoint, so no response types (RFC 8414 section 3.2: omitted, not empty).
    expect(metadata).not.toHaveProperty('id_token_signing_alg_values_supported');
    expect(metadata).not.toHaveProperty('response_types_supported');
  });

  it('lists only endpoints that answer, with the grants and client authentications they take', async () => {
    const metadata = json(await test.app.inject({ method: 'GET', url: DISCOVERY_PATHS[0]! }));
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    for (const grant of metadata.grant_types_supported) {
      const response = await test.app.inject({ method: 'POST', url: new URL(metadata.token_endpoint).pathname, headers: form, payload: `grant_type=${grant}` });
      expect(JSON.parse(response.body).error, grant).not.toBe('unsupported_grant_type');
    }
    for (const endpoint of [metadata.revocation_endpoint, metadata.introspection_endpoint]) {
      const response = await test.app.inject({ method: 'POST', url: new URL(endpoint).pathname, headers: form, payload: '' });
      expect([400, 401]).toContain(response.statusCode);
    }
  });

  it('serves the same document at both paths', async () => {
    const [oauth, openid] = await Promise.all(DISCOVERY_PATHS.map((url) => test.app.inject({ method: 'GET', url })));
    expect(openid!.body).toBe(oauth!.body);
  });

  it('jwks_uri and service_documentation resolve: the JWKS verifies a Gatehouse token, /docs is served', async () => {
    const metadata = json(await test.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' }));
    const jwksResponse = await test.app.inject({ method: 'GET', url: new URL(metadata.jwks_uri).pathname });
    expect(jwksResponse.statusCode).toBe(200);
    const jwks = json(jwksResponse);
    expect(jwks.keys).toHaveLength(1);

    const user = await signedInUser(test.app, 'discovered@example.com');
    const { payload } = await jwtVerify(user.token, createLocalJWKSet(jwks), {
      issuer: metadata.issuer,
      audience: 'gatehouse',
      currentDate: test.clock.now(),
    });
    expect(payload.sub).toBe(String(user.id));

    const docs = await test.app.inject({ method: 'GET', url: new URL(metadata.service_documentation).pathname });
    expect(docs.statusCode).toBeLessThan(400);
  });

  it('lists both documents in the OpenAPI document', async () => {
    const document = json(await test.app.inject({ method: 'GET', url: '/openapi.json' }));
    for (const path of DISCOVERY_PATHS) expect(Object.keys(document.paths)).toContain(path);
  });
});

describe.each(testDialects())('discovery metadata with HS256 [%s]', (dialect) => {
  it('leaves jwks_uri out: nothing published there could verify a token', async () => {
    const test = await startTestApp(dialect, { JWT_ALG: 'HS256', JWT_SECRET: HS_SECRET });
    try {
      for (const url of DISCOVERY_PATHS) {
        const response = await test.app.inject({ method: 'GET', url });
        expect(response.statusCode).toBe(200);
        expect(json(response)).toStrictEqual(OAUTH_METADATA);
        expect(response.body).not.toContain(HS_SECRET);
      }
    } finally {
      await test.close();
    }
  });
});

describe.each(testDialects())('discovery over HTTP with jose [%s]', (dialect) => {
  let test: TestApp;
  let origin: string;
  beforeAll(async () => {
    ({ test, origin } = await startListeningApp(dialect));
  });
  afterAll(() => test.close());

  it("createRemoteJWKSet on the metadata's jwks_uri verifies a Gatehouse token, as a resource server would", async () => {
    const user = await signedInUser(test.app, 'remote@example.com');

    const response = await fetch(`${origin}/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    const metadata = (await response.json()) as { issuer: string; jwks_uri: string };
    expect(metadata.issuer).toBe(origin);
    expect(metadata.jwks_uri).toBe(`${origin}/.well-known/jwks.json`);

    const { payload, protectedHeader } = await jwtVerify(user.token, createRemoteJWKSet(new URL(metadata.jwks_uri)), {
      issuer: metadata.issuer,
      audience: 'gatehouse',
      typ: 'at+jwt',
      currentDate: test.clock.now(),
    });
    expect(payload.sub).toBe(String(user.id));
    expect(payload.iss).toBe(origin);
    expect(protectedHeader.kid).toBe(test.deps.keys.current().kid);
  });
});
