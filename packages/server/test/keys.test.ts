import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createDeps } from '../src/deps.ts';
import { expectErrorEnvelope, json, loginUser, openTestApp, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

const ISSUER = 'http://localhost:2000';
const HS_SECRET = 'an-hs256-secret-of-more-than-32-bytes!';
const ENCRYPTION_SECRET = 'key-encryption-secret-at-least-32-bytes-long';
// Private members of EC and RSA JWKs, none of which may be published.
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

async function withApp(dialect: Parameters<typeof startTestApp>[0], env: Record<string, string>, run: (test: TestApp) => Promise<void>) {
  const test = await startTestApp(dialect, env);
  try {
    await run(test);
  } finally {
    await test.close();
  }
}

async function fetchJwks(test: TestApp) {
  const response = await test.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  expect(response.statusCode).toBe(200);
  return json<{ keys: Array<Record<string, string>> }>(response);
}

describe.each(testDialects())('signing keys [%s]', (dialect) => {
  it.each([
    ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
    ['ES256', { kty: 'EC', crv: 'P-256' }],
    ['RS256', { kty: 'RSA' }],
  ])('JWT_ALG=%s signs tokens that verify against the JWKS', async (alg, keyShape) => {
    await withApp(dialect, { JWT_ALG: alg }, async (test) => {
      const user = await signedInUser(test.app, 'alg@example.com');
      const jwks = await fetchJwks(test);
      expect(jwks.keys).toHaveLength(1);
      const [key] = jwks.keys;
      expect(key).toMatchObject({ ...keyShape, alg, use: 'sig', kid: expect.any(String) });
      for (const member of PRIVATE_JWK_MEMBERS) expect(key).not.toHaveProperty(member);

      const { protectedHeader, payload } = await jwtVerify(user.token, createLocalJWKSet(jwks), {
        issuer: ISSUER,
        audience: 'gatehouse',
        typ: 'at+jwt',
        algorithms: [alg],
        currentDate: test.clock.now(),
      });
      expect(protectedHeader).toMatchObject({ alg, typ: 'at+jwt', kid: key!.kid });
      expect(payload.sub).toBe(String(user.id));
      expect((await test.app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': user.token } })).statusCode).toBe(200);

      const discovery = json(await test.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' }));
      expect(discovery).toMatchObject({ issuer: ISSUER, jwks_uri: `${ISSUER}/.well-known/jwks.json` });
    });
  });

  it('JWT_ALG=RS256 refuses an HS256 token keyed with its public key (algorithm confusion)', async () => {
    await withApp(dialect, { JWT_ALG: 'RS256' }, async (test) => {
      const user = await signedInUser(test.app, 'confused@example.com');
      const [key] = (await fetchJwks(test)).keys;
      const now = test.clock.nowSeconds();
      const forged = await new SignJWT({ sid: 's', jti: 'j' })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: key!.kid })
        .setIssuer(ISSUER)
        .setAudience('gatehouse')
        .setSubject(String(user.id))
        .setIssuedAt(now)
        .setExpirationTime(now + 900)
        .sign(new TextEncoder().encode(JSON.stringify(key)));
      const response = await test.app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': forged } });
      expectErrorEnvelope(response, 401, 'auth failed - token is invalid');
    });
  });

  it('JWT_ALG=HS256 with a 32+ byte secret works and publishes no keys', async () => {
    await withApp(dialect, { JWT_ALG: 'HS256', JWT_SECRET: HS_SECRET }, async (test) => {
      const user = await signedInUser(test.app, 'hs@example.com');
      const jwksResponse = await test.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
      expect(jwksResponse.body).toBe('{"keys":[]}');
      expect(jwksResponse.body).not.toContain(HS_SECRET);
      const { protectedHeader } = await jwtVerify(user.token, new TextEncoder().encode(HS_SECRET), {
        issuer: ISSUER,
        audience: 'gatehouse',
        typ: 'at+jwt',
        algorithms: ['HS256'],
        currentDate: test.clock.now(),
      });
      expect(protectedHeader.alg).toBe('HS256');
      expect(protectedHeader.kid).not.toContain(HS_SECRET.slice(0, 8));
      expect((await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${user.token}` } })).statusCode).toBe(200);
    });
  });

  it('keeps the signing key across a restart, and old tokens stay valid', async () => {
    await withApp(dialect, {}, async (test) => {
      const user = await signedInUser(test.app, 'restart@example.com');
      const before = await fetchJwks(test);
      const kid = decodeProtectedHeader(user.token).kid;
      expect(before.keys.map((key) => key.kid)).toEqual([kid]);

      await test.restart();
      expect(await fetchJwks(test)).toEqual(before);
      expect(test.deps.keys.current().kid).toBe(kid);
      const response = await test.app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': user.token } });
      expect(response.statusCode).toBe(200);
      expect(json(response).users).toEqual([{ id: user.id, email: 'restart@example.com' }]);
      expect(await test.deps.db.selectFrom('signing_keys').select('kid').execute()).toHaveLength(1);
    });
  });

  it('a change of JWT_ALG signs with a new key at once; tokens of the old algorithm keep verifying', async () => {
    await withApp(dialect, {}, async (test) => {
      const before = await signedInUser(test.app, 'switch@example.com');
      const oldKid = decodeProtectedHeader(before.token).kid;
      // The same database restarted with another JWT_ALG (the old instance is left idle).
      const switched = await openTestApp(test.database, { JWT_ALG: 'ES256' }, test.clock);
      try {
        const token = json(await loginUser(switched.app, 'switch@example.com')).token as string;
        expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256' });
        expect(decodeProtectedHeader(token).kid).not.toBe(oldKid);
        for (const candidate of [token, before.token]) {
          expect((await switched.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': candidate } })).statusCode).toBe(200);
        }
        expect((await fetchJwks(switched)).keys.map((key) => key.alg).sort()).toEqual(['ES256', 'EdDSA']);
        // Active from its creation, not after a rotation's delay; the old key retired at that moment.
        const rows = await switched.deps.db.selectFrom('signing_keys').select(['algorithm', 'activates_at', 'retired_at']).execute();
        const now = test.clock.nowSeconds();
        expect(rows.find((row) => row.algorithm === 'ES256')).toMatchObject({ activates_at: now, retired_at: null });
        expect(rows.find((row) => row.algorithm === 'EdDSA')).toMatchObject({ retired_at: now });
      } finally {
        await switched.close();
      }
    });
  });

  it('a key made before activation times (no activates_at, no generation) keeps signing and rotates like any other', async () => {
    await withApp(dialect, {}, async (test) => {
      const [row] = await test.deps.db.selectFrom('signing_keys').select('kid').execute();
      await test.deps.db.updateTable('signing_keys').set({ activates_at: null, generation: null }).execute();
      await test.restart();
      expect(test.deps.keys.current().kid).toBe(row!.kid);
      const timeline = await test.deps.keys.rotate();
      expect(timeline.replaces.map((key) => key.kid)).toEqual([row!.kid]);
      expect(test.deps.keys.current().kid).toBe(row!.kid);
      test.clock.set(new Date(timeline.activatesAt * 1000));
      expect(test.deps.keys.current().kid).toBe(timeline.kid);
    });
  });

  it('stores the private key encrypted under KEY_ENCRYPTION_SECRET and restarts with it', async () => {
    await withApp(dialect, { KEY_ENCRYPTION_SECRET: ENCRYPTION_SECRET }, async (test) => {
      const user = await signedInUser(test.app, 'encrypted@example.com');
      const rows = await test.deps.db.selectFrom('signing_keys').selectAll().execute();
      expect(rows).toHaveLength(1);
      const [row] = rows;
      expect(row!.private_key_encryption).not.toBeNull();
      expect(row!.private_jwk).not.toMatch(/"d"\s*:/);
      expect(row!.public_jwk).not.toMatch(/"d"\s*:/);
      const secrets = await test.deps.db.selectFrom('server_secrets').selectAll().execute();
      for (const secret of secrets) expect(secret.encryption).not.toBeNull();

      await test.restart();
      expect(test.deps.keys.current().kid).toBe(row!.kid);
      expect((await test.app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': user.token } })).statusCode).toBe(200);
      expect((await signedInUser(test.app, 'after-restart@example.com')).token).toBeTruthy();

      // Without the secret the encrypted key cannot be used: start-up fails with a clear reason.
      const withoutSecret = loadConfig({ LOG_LEVEL: 'silent', DATABASE_URL: test.database.url });
      await expect(createDeps(withoutSecret)).rejects.toThrow(/KEY_ENCRYPTION_SECRET/);
    });
  });
});
