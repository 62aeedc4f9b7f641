import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

const ISSUER = 'http://localhost:2000';
const AUDIENCE = 'gatehouse';
const INVALID = 'auth failed - token is invalid';

describe.each(testDialects())('access tokens [%s]', (dialect) => {
  let test: TestApp;
  let start: Date;
  let user: { id: number; token: string; refreshToken: string };
  beforeAll(async () => {
    test = await startTestApp(dialect);
    start = test.clock.now();
    user = await signedInUser(test.app, 'tokens@example.com');
  });
  beforeEach(() => test.clock.set(start));
  afterAll(() => test.close());

  const get = (url: string, headers: Record<string, string>) => test.app.inject({ method: 'GET', url, headers });
  const users = (token: string) => get('/users', { 'x-access-token': token });

  function expectInvalid(response: LightMyRequestResponse, message = INVALID) {
    const body = expectErrorEnvelope(response, 401, message);
    expect(body.data).toBeNull();
    expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
  }

  /** Signs a token with Gatehouse's own current key, so only the claims decide. */
  async function forge(claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
    const key = test.deps.keys.current();
    const now = test.clock.nowSeconds();
    const payload: JWTPayload = { iss: ISSUER, aud: AUDIENCE, sub: String(user.id), client_id: 'gatehouse', email: 'tokens@example.com', roles: ['user'], sid: 'forged-session', jti: 'forged-jti', iat: now, exp: now + 900, ...claims };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return new SignJWT(payload).setProtectedHeader({ alg: key.algorithm, typ: 'at+jwt', kid: key.kid, ...header }).sign(key.privateKey);
  }

  it('verifies against the published JWKS with the contract header and claims', async () => {
    const jwks = json(await get('/.well-known/jwks.json', {}));
    const { payload, protectedHeader } = await jwtVerify(user.token, createLocalJWKSet(jwks), {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['EdDSA'],
      currentDate: test.clock.now(),
    });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(jwks.keys.map((key: { kid: string }) => key.kid)).toContain(protectedHeader.kid);
    expect(Object.keys(payload).sort()).toEqual(['amr', 'aud', 'client_id', 'email', 'email_verified', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub']);
    // amr (RFC 8176): a password login; email_verified (OIDC): nobody has confirmed the address yet.
    expect(payload).toMatchObject({ iss: ISSUER, aud: AUDIENCE, sub: String(user.id), client_id: 'gatehouse', email: 'tokens@example.com', email_verified: false, amr: ['pwd'], roles: ['user'] });
    expect(typeof payload.sub).toBe('string');
    expect(payload.sid).toEqual(expect.any(String));
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.iat).toBe(test.clock.nowSeconds());
    expect(payload.exp).toBe(payload.iat! + 900);
    expect(JSON.stringify(payload)).not.toMatch(/password|argon2|horse/i);
    const session = await test.deps.db.selectFrom('sessions').select('user_id').where('id', '=', payload.sid as string).executeTakeFirst();
    expect(Number(session?.user_id)).toBe(user.id);
  });

  it('publishes public key parts only', async () => {
    const jwks = json(await get('/.well-known/jwks.json', {}));
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) {
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(key).not.toHaveProperty('d');
    }
  });

  it('expires exactly at exp, with no leeway', async () => {
    test.clock.advanceSeconds(899);
    expect((await users(user.token)).statusCode).toBe(200);
    test.clock.advanceSeconds(1);
    expectInvalid(await users(user.token), 'auth failed - token has expired');
    expectInvalid(await get('/me', { authorization: `Bearer ${user.token}` }), 'auth failed - token has expired');
  });

  it('accepts a well-formed token signed with its own key (control for the refusals below)', async () => {
    expect((await users(await forge({}))).statusCode).toBe(200);
  });

  it('refuses a token whose iat or nbf lies in the future', async () => {
    const now = test.clock.nowSeconds();
    expectInvalid(await users(await forge({ iat: now + 5 })));
    expectInvalid(await users(await forge({ nbf: now + 1 })));
    expect((await users(await forge({ nbf: now }))).statusCode).toBe(200);
  });

  it.each(['jti', 'sid', 'sub', 'iat', 'exp', 'iss', 'aud'])('refuses a token without %s', async (claim) => {
    expectInvalid(await users(await forge({ [claim]: undefined })));
  });

  it('refuses a wrong issuer, audience, typ, or a non-numeric sub', async () => {
    expectInvalid(await users(await forge({ iss: 'https://evil.example' })));
    expectInvalid(await users(await forge({ aud: 'another-service' })));
    expectInvalid(await users(await forge({}, { typ: 'JWT' })));
    expectInvalid(await users(await forge({ sub: 'tokens@example.com' })));
  });

  it('accepts a user token from before clients existed (no client_id) as the default client', async () => {
    expect((await users(await forge({ client_id: undefined }))).statusCode).toBe(200);
  });

  it('opens its own routes only to user tokens for JWT_AUDIENCE: not to client tokens, nor to a token of either kind mixed up', async () => {
    // A service's token (client_credentials) has no user behind it.
    const clientToken = { sub: 'orders-api', client_id: 'orders-api', gty: 'client_credentials', sid: undefined, email: undefined, roles: undefined };
    expectInvalid(await users(await forge(clientToken)));
    expectInvalid(await users(await forge({ ...clientToken, aud: AUDIENCE, scope: 'users:read' })));
    // Neither kind: a user token with gty, a client token with a sid or a sub other than its client_id.
    expectInvalid(await users(await forge({ gty: 'client_credentials' })));
    expectInvalid(await users(await forge({ ...clientToken, sid: 'forged-session' })));
    expectInvalid(await users(await forge({ ...clientToken, sub: 'billing-api' })));
    expectInvalid(await users(await forge({ client_id: 42 })));
    // A user's token asked for another API (RFC 8707) is for that API only.
    expectInvalid(await users(await forge({ aud: 'https://orders.example' })));
  });

  it('refuses a key supplied in the token header', async () => {
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = await exportJWK(attacker.publicKey);
    const now = test.clock.nowSeconds();
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: String(user.id), sid: 's', jti: 'j', iat: now, exp: now + 900 };
    const kid = decodeProtectedHeader(user.token).kid!;
    for (const header of [{ kid, jwk }, { jwk }, { kid: 'attacker', jwk }, { kid, jku: 'https://evil.example/jwks.json' }]) {
      const token = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', ...header }).sign(attacker.privateKey);
      expectInvalid(await users(token));
    }
  });

  it('refuses alg none and a tampered payload', async () => {
    const [header, payload, signature] = user.token.split('.') as [string, string, string];
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
    expectInvalid(await users(`${none}.${payload}.`));
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const tampered = Buffer.from(JSON.stringify({ ...claims, roles: ['admin'] })).toString('base64url');
    expectInvalid(await users(`${header}.${tampered}.${signature}`));
  });

  it('reads the token from x-access-token or Authorization: Bearer, which must agree', async () => {
    expect((await get('/users', { authorization: `Bearer ${user.token}` })).statusCode).toBe(200);
    expect((await get('/me', { authorization: `bearer ${user.token}` })).statusCode).toBe(200);
    expect((await get('/users', { 'x-access-token': user.token, authorization: `Bearer ${user.token}` })).statusCode).toBe(200);

    const other = await signedInUser(test.app, 'other-token@example.com');
    expectInvalid(await get('/users', { 'x-access-token': user.token, authorization: `Bearer ${other.token}` }));
    expectInvalid(await get('/me', { 'x-access-token': other.token, authorization: `Bearer ${user.token}` }));
    expectInvalid(await get('/users', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }));
  });

  it('answers a request without a token with token is missing', async () => {
    for (const url of ['/users', '/me']) {
      const response = await get(url, {});
      expect(expectErrorEnvelope(response, 401, 'auth failed - token is missing').data).toBeNull();
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    expectErrorEnvelope(await get('/users', { 'x-access-token': '' }), 401, 'auth failed - token is missing');
  });

  it('refuses the tokens of a user that no longer exists, also on /me', async () => {
    const doomed = await signedInUser(test.app, 'doomed@example.com');
    expect((await get('/me', { 'x-access-token': doomed.token })).statusCode).toBe(200);
    await test.deps.db.deleteFrom('users').where('id', '=', doomed.id).execute();
    // /me reads the user row itself: refused at once.
    expectInvalid(await get('/me', { 'x-access-token': doomed.token }));
    // Other routes trust a user's status for at most a second (users/status-cache.ts).
    test.clock.advanceSeconds(1);
    expectInvalid(await users(doomed.token));
    expectInvalid(await get('/me', { 'x-access-token': doomed.token }));
  });

  it('serves /me for the token subject', async () => {
    const response = await get('/me', { authorization: `Bearer ${user.token}` });
    expect(response.statusCode).toBe(200);
    expect(json(response)).toEqual({
      status: true,
      code: 200,
      message: 'success',
      data: { id: user.id, name: 'Test User', email: 'tokens@example.com', roles: ['user'], created_at: start.toISOString() },
    });
  });
});
