import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { decodeProtectedHeader } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isVerifyError, type Claims, type VerifyErrorCode } from '../../verify/src/index.ts';
import { json, loginUser, signedInAdmin, signedInUser, signupUser, testDialects } from './helpers.ts';
import { clientToken, grantedClientToken, signWithGatehouseKey, startLiveGatehouse, type LiveGatehouse } from './verify-helpers.ts';

const JWKS_PATH = '/.well-known/jwks.json';
const ACCESS_TOKEN_TTL = 900;

async function refusal(promise: Promise<Claims>): Promise<VerifyErrorCode> {
  try {
    await promise;
  } catch (error) {
    if (isVerifyError(error)) return error.code;
    throw error;
  }
  throw new Error('the token was accepted');
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe.each(testDialects())('@gatehouse/verify against a live Gatehouse [%s]', (dialect) => {
  let gatehouse: LiveGatehouse;
  beforeEach(async () => {
    gatehouse = await startLiveGatehouse(dialect, { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL) });
  });
  afterEach(async () => {
    await gatehouse.close();
  });

  it('verifies a real token: discovery, JWKS once, typed user claims, then the cache', async () => {
    const { test } = gatehouse;
    const user = await signedInAdmin(test, 'ada@example.com');
    const verifier = gatehouse.verifier();
    const claims = await verifier.verify(user.token);
    expect(claims).toMatchObject({
      kind: 'user',
      issuer: gatehouse.issuer,
      audience: gatehouse.audience,
      subject: String(user.id),
      userId: String(user.id),
      clientId: 'gatehouse',
      email: 'ada@example.com',
      roles: ['user', 'admin'],
      scopes: [],
      expiresAt: test.clock.nowSeconds() + ACCESS_TOKEN_TTL,
    });
    if (claims.kind !== 'user') throw new Error('not a user token');
    expect(claims.sessionId).toMatch(/./);
    expect(gatehouse.requests).toEqual(['/.well-known/oauth-authorization-server', JWKS_PATH]);
    // The same token again is answered from the cache: no request, the same object.
    expect(await verifier.verify(user.token)).toBe(claims);
    const other = await signedInUser(test.app, 'grace@example.com');
    expect((await verifier.verify(other.token)).kind).toBe('user');
    expect(gatehouse.requests.filter((path) => path === JWKS_PATH)).toHaveLength(1);
    expect(verifier.status()).toEqual({ revocations: { state: 'off' }, cachedTokens: 2 });
  });

  it('refuses tampered, expired, future, foreign-audience and foreign-issuer tokens', async () => {
    const { test } = gatehouse;
    const user = await signedInUser(test.app, 'mallory@example.com');
    const verifier = gatehouse.verifier();
    const [header, payload, signature] = user.token.split('.') as [string, string, string];

    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    expect(await refusal(verifier.verify(`${header}.${payload}.${flipped}`))).toBe('token_invalid');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    expect(await refusal(verifier.verify(`${header}.${b64({ ...claims, roles: ['admin'] })}.${signature}`))).toBe('token_invalid');
    expect(await refusal(verifier.verify('not a token'))).toBe('token_invalid');
    expect(await refusal(verifier.verify(''))).toBe('token_invalid');

    // Wrong audience (a token for another API) and wrong issuer, both signed with Gatehouse's real key.
    expect(await refusal(gatehouse.verifier({ audience: 'billing-api' }).verify(user.token))).toBe('token_invalid');
    expect(await refusal(verifier.verify(await signWithGatehouseKey(test, { sub: String(user.id), sid: 's1', iss: 'http://evil.example' })))).toBe('token_invalid');
    expect(await refusal(verifier.verify(await signWithGatehouseKey(test, { sub: String(user.id), sid: 's1', aud: 'billing-api' })))).toBe('token_invalid');
    // typ must be at+jwt (RFC 9068): an ID token or a plain JWT of the same key is not an access token.
    expect(await refusal(verifier.verify(await signWithGatehouseKey(test, { sub: String(user.id), sid: 's1' }, { typ: 'JWT' })))).toBe('token_invalid');
    // Required claims: no jti, no iat, no exp.
    for (const missing of ['jti', 'iat', 'exp']) {
      expect(await refusal(verifier.verify(await signWithGatehouseKey(test, { sub: String(user.id), sid: 's1', [missing]: undefined })))).toBe('token_invalid');
    }
    // Issued in the future beyond the tolerance (5 s by default).
    expect(await refusal(verifier.verify(await signWithGatehouseKey(test, { sub: String(user.id), sid: 's1', iat: test.clock.nowSeconds() + 60 })))).toBe('token_invalid');

    // Expired: by the verifier's clock, also for a token it has cached.
    expect((await verifier.verify(user.token)).kind).toBe('user');
    test.clock.advanceSeconds(ACCESS_TOKEN_TTL + 4);
    expect((await verifier.verify(user.token)).kind).toBe('user'); // within the 5 s tolerance
    test.clock.advanceSeconds(2);
    expect(await refusal(verifier.verify(user.token))).toBe('token_expired');
    expect(await refusal(gatehouse.verifier().verify(user.token))).toBe('token_expired');
  });

  it("refuses alg none and HS256 signed with the public key, without fetching Gatehouse's keys for them", async () => {
    const { test } = gatehouse;
    const user = await signedInUser(test.app, 'eve@example.com');
    const verifier = gatehouse.verifier();
    await verifier.ready();
    const requestsBefore = gatehouse.requests.length;
    const [, payload] = user.token.split('.') as [string, string];
    const { kid } = decodeProtectedHeader(user.token);

    for (const alg of ['none', 'None', 'NONE']) {
      expect(await refusal(verifier.verify(`${b64({ alg, typ: 'at+jwt', kid })}.${payload}.`))).toBe('token_invalid');
    }
    // Key confusion: the published public key used as an HMAC secret, in every form an attacker might try.
    const jwks = (await (await fetch(`${gatehouse.issuer}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string; x: string }> };
    const published = jwks.keys.find((key) => key.kid === kid)!;
    for (const secret of [Buffer.from(published.x, 'base64url'), Buffer.from(published.x), Buffer.from(JSON.stringify(published))]) {
      const signingInput = `${b64({ alg: 'HS256', typ: 'at+jwt', kid })}.${payload}`;
      const forged = `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
      expect(await refusal(verifier.verify(forged))).toBe('token_invalid');
    }
    // An algorithm outside the pinned list is refused even with a valid signature.
    expect(await refusal(gatehouse.verifier({ algorithms: ['ES256'] }).verify(user.token))).toBe('token_invalid');
    // The algorithm is checked before any key is looked up: none of these cost Gatehouse a request.
    expect(gatehouse.requests.slice(requestsBefore).filter((path) => path === JWKS_PATH)).toEqual([]);
    expect(() => gatehouse.verifier({ algorithms: ['HS256' as never] })).toThrow(TypeError);
  });

  it('after a key rotation, an unknown kid triggers one refetch per cooldown; a flood of made-up kids does not flood the JWKS', async () => {
    const { test } = gatehouse;
    await signupUser(test.app, { email: 'rotor@example.com' });
    const before = json(await loginUser(test.app, 'rotor@example.com')).token as string;
    const verifier = gatehouse.verifier({ jwksCooldownSeconds: 30 });
    expect((await verifier.verify(before)).kind).toBe('user');
    const jwksFetches = () => gatehouse.requests.filter((path) => path === JWKS_PATH).length;
    expect(jwksFetches()).toBe(1);

    // `gatehouse keys rotate --now`: the new key signs at once.
    const { kid: newKid } = await test.deps.keys.rotate({ immediately: true });
    const after = json(await loginUser(test.app, 'rotor@example.com')).token as string;
    expect(decodeProtectedHeader(after).kid).toBe(newKid);

    // Within the cooldown of the first fetch, the unknown kid is refused without a request.
    expect(await refusal(verifier.verify(after))).toBe('token_invalid');
    expect(jwksFetches()).toBe(1);
    test.clock.advanceSeconds(30);
    // Past it: one refetch, and the new key verifies; concurrent requests for it share that refetch.
    const verified = await Promise.all([verifier.verify(after), verifier.verify(after), verifier.verify(after)]);
    expect(verified.every((claims) => claims.kind === 'user')).toBe(true);
    expect(jwksFetches()).toBe(2);

    // A flood of tokens with kids nobody published: at most one fetch per cooldown.
    test.clock.advanceSeconds(30);
    const forged = await Promise.all(Array.from({ length: 200 }, (_, index) => signWithGatehouseKey(test, { sub: '1', sid: 's' }, { kid: `made-up-${index}` })));
    const codes = await Promise.all(forged.map((token) => refusal(verifier.verify(token))));
    expect(new Set(codes)).toEqual(new Set(['token_invalid']));
    expect(jwksFetches()).toBe(3);
    test.clock.advanceSeconds(10);
    await Promise.all(forged.slice(0, 50).map((token) => refusal(verifier.verify(token))));
    expect(jwksFetches()).toBe(3);
    // Tokens of the old key, still published, keep verifying.
    expect((await verifier.verify(before)).kind).toBe('user');
  });

  it('tells client tokens from user tokens, and refuses tokens that mix the two', async () => {
    const { test } = gatehouse;
    const verifier = gatehouse.verifier();
    const service = await verifier.verify(await grantedClientToken(test, 'billing-service', ['orders:read', 'orders:stats']));
    expect(service).toMatchObject({ kind: 'client', subject: 'billing-service', clientId: 'billing-service', scopes: ['orders:read', 'orders:stats'] });
    expect(service).not.toHaveProperty('roles');
    expect((await verifier.verify(await grantedClientToken(test, 'bare-service'))).scopes).toEqual([]);

    const mixed = [
      clientToken(test, 'billing-service', undefined, { sid: 'a-session' }), // a client token has no session
      clientToken(test, 'billing-service', undefined, { sub: 'someone-else' }), // sub must be the client
      clientToken(test, 'billing-service', undefined, { client_id: undefined }),
      signWithGatehouseKey(test, { sub: '42', sid: 'a-session', gty: 'password' }), // unknown grant type
      signWithGatehouseKey(test, { sub: 'billing-service', sid: 'a-session' }), // a user token has a numeric sub
      signWithGatehouseKey(test, { sub: '42' }), // a user token has a session
      signWithGatehouseKey(test, { sub: '42', sid: 'a-session', roles: 'admin' }), // roles is a list
      clientToken(test, 'billing-service', undefined, { scope: ['a'] }), // scope is a string
    ];
    for (const token of await Promise.all(mixed)) expect(await refusal(verifier.verify(token))).toBe('token_invalid');
  });

  it('refuses a logged-out session within a second through the revocation feed, and survives a feed that refuses it', async () => {
    const { test } = gatehouse;
    const verifier = gatehouse.verifier({ revocations: { ...(await gatehouse.feedClient()), waitSeconds: 20 } });
    const delays: number[] = [];
    for (let trial = 0; trial < 3; trial += 1) {
      const user = await signedInUser(test.app, `leaver${trial}@example.com`);
      expect((await verifier.verify(user.token)).kind).toBe('user');
      const loggedOutAt = performance.now();
      const logout = await fetch(`${gatehouse.issuer}/logout`, { method: 'POST', headers: { authorization: `Bearer ${user.token}` } });
      expect(logout.status).toBe(200);
      for (;;) {
        const code = await refusal(verifier.verify(user.token)).catch(() => undefined);
        if (code === 'token_revoked') break;
        if (performance.now() - loggedOutAt > 2000) throw new Error('the verifier still accepts the token 2 s after the logout');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      delays.push(performance.now() - loggedOutAt);
    }
    console.log(`@gatehouse/verify refuses a logged-out token after ${delays.map((ms) => ms.toFixed(0)).join(', ')} ms (${dialect})`);
    expect(Math.max(...delays)).toBeLessThan(1000);
    expect(verifier.status().revocations).toMatchObject({ state: 'live', revokedSessions: 3, consecutiveFailures: 0 });

    // A verifier started after the logouts learns them from the first answer (a snapshot) before it admits anyone.
    const revoked = await signedInUser(test.app, 'early-leaver@example.com');
    await fetch(`${gatehouse.issuer}/logout`, { method: 'POST', headers: { authorization: `Bearer ${revoked.token}` } });
    const late = gatehouse.verifier({ revocations: await gatehouse.feedClient('late-service') });
    expect(await refusal(late.verify(revoked.token))).toBe('token_revoked');

    // Wrong credentials: the feed fails and retries, told through onError without the secret; tokens still verify.
    const errors: Error[] = [];
    const refused = gatehouse.verifier({ revocations: { clientId: 'orders-service', clientSecret: 'ghcs_not-the-secret' }, onError: (error) => errors.push(error) });
    const user = await signedInUser(test.app, 'still-in@example.com');
    expect((await refused.verify(user.token)).kind).toBe('user');
    expect(refused.status().revocations).toMatchObject({ state: 'retrying' });
    expect(errors[0]?.message).toMatch(/HTTP 401/);
    expect(errors.map((error) => error.message).join(' ')).not.toContain('ghcs_');
  });

  it('keeps verifying with the last good keys while Gatehouse is down past the max age, refetching once per cooldown in the background', async () => {
    const { test } = gatehouse;
    let down = false;
    let jwksAttempts = 0;
    const verifier = gatehouse.verifier({
      jwksMaxAgeSeconds: 60,
      jwksCooldownSeconds: 30,
      fetch: (input, init) => {
        if (new URL(input).pathname === JWKS_PATH) jwksAttempts += 1;
        return down ? Promise.reject(new TypeError('fetch failed')) : gatehouse.fetch(input, init);
      },
    });
    expect((await verifier.verify((await signedInUser(test.app, 'early@example.com')).token)).kind).toBe('user');
    expect(jwksAttempts).toBe(1);

    down = true;
    test.clock.advanceSeconds(120); // past the max age, Gatehouse unreachable
    for (let index = 0; index < 20; index += 1) {
      const fresh = await signWithGatehouseKey(test, { sub: '7', sid: `session-${index}`, client_id: 'gatehouse', roles: [] });
      expect((await verifier.verify(fresh)).kind).toBe('user');
    }
    expect(jwksAttempts).toBe(2); // one background attempt, not one per request
    test.clock.advanceSeconds(31);
    await verifier.verify(await signWithGatehouseKey(test, { sub: '7', sid: 'after-cooldown', client_id: 'gatehouse', roles: [] }));
    expect(jwksAttempts).toBe(3);

    down = false; // back: the next background refetch succeeds, and the set is fresh again for a max age
    test.clock.advanceSeconds(31);
    await verifier.verify(await signWithGatehouseKey(test, { sub: '7', sid: 'recovered', client_id: 'gatehouse', roles: [] }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(jwksAttempts).toBe(4);
    test.clock.advanceSeconds(31);
    await verifier.verify(await signWithGatehouseKey(test, { sub: '7', sid: 'fresh-again', client_id: 'gatehouse', roles: [] }));
    expect(jwksAttempts).toBe(4);
  });

  it('answers keys_unavailable while Gatehouse cannot be reached, and verifier_closed after close()', async () => {
    const { test } = gatehouse;
    const user = await signedInUser(test.app, 'offline@example.com');
    const unreachable = gatehouse.verifier({ issuer: 'http://127.0.0.1:1' });
    expect(await refusal(unreachable.verify(user.token))).toBe('keys_unavailable');
    await expect(unreachable.ready()).rejects.toMatchObject({ code: 'keys_unavailable' });
    // An issuer whose discovery document names another issuer is not trusted (RFC 8414 section 3.3).
    const mismatched = gatehouse.verifier({ issuer: `${gatehouse.issuer}/` });
    expect(await refusal(mismatched.verify(user.token))).toBe('keys_unavailable');

    const verifier = gatehouse.verifier();
    expect((await verifier.verify(user.token)).kind).toBe('user');
    verifier.close();
    expect(await refusal(verifier.verify(user.token))).toBe('verifier_closed');
  });
});
