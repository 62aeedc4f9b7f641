/**
 * The attack suite, part 1: forged and re-encoded access tokens against the running app.
 * RFC 8725 is the checklist. Every forged token carries the claims of a genuine, currently
 * valid token, so only the attacked property (algorithm, signature, key, header) is wrong:
 * a verifier that skipped that one check would answer 200, and the test would fail.
 */
import { createHmac, createPublicKey, generateKeyPairSync, KeyObject, sign, type JsonWebKey, type webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { EmbeddedJWK, SignJWT, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JwtAlgorithm } from '../src/config.ts';
import { assertNoLeak, expectErrorEnvelope, json, loginUser, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

type Json = Record<string, unknown>;

const b64 = (value: Json | string | Buffer) =>
  (Buffer.isBuffer(value) ? value : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))).toString('base64url');
const decodeSegment = (segment: string): Json => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Json;

/** A compact JWS built by hand, so headers jose would refuse to produce can be sent too. */
function compact(header: Json, payload: Json, signer: (input: Buffer) => Buffer | string = () => ''): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = signer(Buffer.from(input));
  return `${input}.${typeof signature === 'string' ? signature : b64(signature)}`;
}

/** An attacker's own key pair of the same type as the server's. */
function attackerKeys(alg: JwtAlgorithm) {
  const pair =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signer = (input: Buffer) =>
    alg === 'EdDSA'
      ? sign(null, input, pair.privateKey)
      : alg === 'ES256'
        ? sign('sha256', input, { key: pair.privateKey, dsaEncoding: 'ieee-p1363' })
        : sign('sha256', input, pair.privateKey);
  return { publicKey: pair.publicKey, jwk: pair.publicKey.export({ format: 'jwk' }) as JWK, signer };
}

/** A server standing in for an attacker's JWKS/certificate host; it counts every request it gets. */
let bait: Server;
let baitRequests = 0;
let baitUrl = '';
let baitJwks: { keys: JWK[] } = { keys: [] };
beforeAll(async () => {
  bait = createServer((request, response) => {
    baitRequests += 1;
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(baitJwks));
  });
  await new Promise<void>((resolve) => bait.listen(0, '127.0.0.1', resolve));
  baitUrl = `http://127.0.0.1:${(bait.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => bait.close(() => resolve()));
  // Not one outbound request, over the whole file.
  expect(baitRequests).toBe(0);
});

function expectRefused(response: LightMyRequestResponse, message: string | RegExp = 'auth failed - token is invalid') {
  const body = expectErrorEnvelope(response, 401, message);
  expect(body.data).toBeNull();
  expect(response.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
}

function harness(getTest: () => TestApp) {
  /** Every answer, accepted or refused, is checked for leaks. */
  const get = async (url: string, headers: Record<string, string>) => {
    const response = await getTest().app.inject({ method: 'GET', url, headers });
    assertNoLeak(response.body);
    return response;
  };
  return {
    get,
    /** Presents the token on two protected routes, once through each header. */
    async expectTokenRefused(token: string, message?: string | RegExp) {
      expectRefused(await get('/users', { 'x-access-token': token }), message);
      expectRefused(await get('/me', { authorization: `Bearer ${token}` }), message);
    },
  };
}

const ALGORITHMS: JwtAlgorithm[] = ['EdDSA', 'ES256', 'RS256'];
/** Order n of the P-256 group: r = s = n is the other "psychic signature" (CVE-2022-21449). */
const P256_ORDER = Buffer.from('FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551', 'hex');

describe.each(testDialects())('attacks on access tokens [%s]', (dialect) => {
  describe.each(ALGORITHMS)('server signing with %s', (alg) => {
    let test: TestApp;
    let token: string;
    let header: Json;
    let claims: Json;
    let segments: [string, string, string];
    let publicJwk: JWK;
    const { get, expectTokenRefused } = harness(() => test);

    beforeAll(async () => {
      test = await startTestApp(dialect, { JWT_ALG: alg });
      ({ token } = await signedInUser(test.app, `forgery-${alg.toLowerCase()}@example.com`));
      segments = token.split('.') as [string, string, string];
      header = decodeSegment(segments[0]);
      claims = decodeSegment(segments[1]);
      const jwks = json(await get('/.well-known/jwks.json', {}));
      publicJwk = jwks.keys.find((key: JWK) => key.kid === header.kid);
      expect(publicJwk).toBeDefined();
    });
    afterAll(() => test.close());

    it('accepts the genuine token (control: the forgeries below differ from it in one point)', async () => {
      expect(header).toMatchObject({ alg, typ: 'at+jwt' });
      expect((await get('/users', { 'x-access-token': token })).statusCode).toBe(200);
      expect((await get('/me', { authorization: `Bearer ${token}` })).statusCode).toBe(200);
      // The hand-built compact form reproduces the genuine signing input byte for byte.
      expect(compact(header, claims, () => segments[2])).toBe(token);
    });

    it('refuses alg "none" in every spelling, with and without a signature', async () => {
      for (const spelling of ['none', 'None', 'NONE', 'nOnE']) {
        for (const headerVariant of [{ ...header, alg: spelling }, { alg: spelling, typ: 'at+jwt' }, { alg: spelling }]) {
          for (const signature of ['', segments[2], 'AAAA']) {
            await expectTokenRefused(compact(headerVariant, claims, () => signature));
          }
          // Two segments only (the unsecured form with its trailing dot dropped).
          await expectTokenRefused(`${b64(headerVariant)}.${segments[1]}`);
        }
      }
    });

    it('refuses null, truncated, zeroed, flipped and transplanted signatures', async () => {
      const signature = Buffer.from(segments[2], 'base64url');
      const flipped = Buffer.from(signature);
      flipped[flipped.length - 1]! ^= 1;
      const [, , otherSignature] = json(await loginUser(test.app, `forgery-${alg.toLowerCase()}@example.com`)).token.split('.');
      const variants = [
        '',
        segments[2].slice(0, -1),
        segments[2].slice(0, segments[2].length >> 1),
        segments[2].slice(0, 2),
        b64(Buffer.alloc(signature.length)),
        b64(Buffer.alloc(1)),
        b64(flipped),
        b64(Buffer.concat([signature, Buffer.from([0])])),
        otherSignature,
      ];
      for (const variant of variants) await expectTokenRefused(`${segments[0]}.${segments[1]}.${variant}`);
      await expectTokenRefused(`${segments[0]}.${segments[1]}`);
      await expectTokenRefused(`${token}.${segments[2]}`);
      await expectTokenRefused(`${token}..`); // five segments: the JWE shape
    });

    it('refuses HS256/HS384/HS512 tokens keyed with the public key in every encoding (key confusion)', async () => {
      const publicKey: KeyObject = createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const rawParts = alg === 'RS256' ? [publicJwk.n!] : alg === 'ES256' ? [publicJwk.x!, publicJwk.y!] : [publicJwk.x!];
      const rawBytes = Buffer.concat(rawParts.map((part) => Buffer.from(part, 'base64url')));
      const secrets: Array<[string, Buffer]> = [
        ['raw key bytes', rawBytes],
        ['raw first coordinate / modulus', Buffer.from(rawParts[0]!, 'base64url')],
        ['base64url text', Buffer.from(rawParts[0]!)],
        ['JWK JSON as published', Buffer.from(JSON.stringify(publicJwk))],
        ['JWK JSON, bare key', Buffer.from(JSON.stringify(publicKey.export({ format: 'jwk' })))],
        ['PEM SPKI', Buffer.from(pem)],
        ['PEM SPKI, trimmed', Buffer.from(pem.trim())],
        ['DER SPKI', publicKey.export({ type: 'spki', format: 'der' })],
      ];
      if (alg === 'ES256') secrets.push(['uncompressed point', Buffer.concat([Buffer.from([4]), rawBytes])]);
      if (alg === 'RS256') secrets.push(['PEM PKCS#1', Buffer.from(publicKey.export({ type: 'pkcs1', format: 'pem' }) as string)]);

      for (const hmac of ['HS256', 'HS384', 'HS512'] as const) {
        const digest = `sha${hmac.slice(2)}`;
        for (const [name, secret] of secrets) {
          for (const forgedHeader of [{ ...header, alg: hmac }, { alg: hmac, typ: 'at+jwt' }]) {
            const forged = compact(forgedHeader, claims, (input) => createHmac(digest, secret).update(input).digest());
            // A verifier that let the token pick the algorithm would accept this token:
            const naive = await jwtVerify(forged, secret, { currentDate: test.clock.now() });
            expect(naive.payload.sub, name).toBe(claims.sub);
            await expectTokenRefused(forged);
          }
        }
      }
    });

    it('ignores keys carried in the token: inline jwk, jku, x5u, x5c (and fetches nothing)', async () => {
      const attacker = attackerKeys(alg);
      baitJwks = { keys: [{ ...attacker.jwk, kid: 'attacker', alg, use: 'sig' }] };
      const before = baitRequests;
      const junkCert = b64(Buffer.from('30820122300d06092a864886f70d01010105000382010f00', 'hex')).replace(/-/g, '+').replace(/_/g, '/');
      const attackerDer = (attacker.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
      const headers: Json[] = [
        { alg, typ: 'at+jwt', jwk: attacker.jwk },
        { alg, typ: 'at+jwt', kid: 'attacker', jwk: attacker.jwk },
        { alg, typ: 'at+jwt', kid: header.kid, jwk: attacker.jwk },
        { alg, typ: 'at+jwt', kid: 'attacker', jku: `${baitUrl}/jwks.json` },
        { alg, typ: 'at+jwt', kid: header.kid, jku: `${baitUrl}/jwks.json` },
        { alg, typ: 'at+jwt', jku: `${baitUrl}/jwks.json` },
        { alg, typ: 'at+jwt', kid: 'attacker', x5u: `${baitUrl}/cert.pem` },
        { alg, typ: 'at+jwt', kid: header.kid, x5u: `${baitUrl}/cert.pem` },
        { alg, typ: 'at+jwt', x5c: [junkCert] },
        { alg, typ: 'at+jwt', kid: header.kid, x5c: [attackerDer, 'not base64 !!'] },
        { alg, typ: 'at+jwt', x5t: 'AAAA', 'x5t#S256': 'AAAA', x5c: [attackerDer] },
      ];
      for (const forgedHeader of headers) {
        const forged = compact(forgedHeader, claims, attacker.signer);
        // Correctly signed for the attacker's key: a verifier trusting the header would accept it.
        expect((await jwtVerify(forged, attacker.publicKey, { currentDate: test.clock.now() })).payload.sub).toBe(claims.sub);
        if (forgedHeader.jwk) expect((await jwtVerify(forged, EmbeddedJWK, { currentDate: test.clock.now() })).payload.sub).toBe(claims.sub);
        await expectTokenRefused(forged);
      }
      expect(baitRequests - before).toBe(0);
    });
  });

  describe('server signing with ES256: psychic signatures', () => {
    let test: TestApp;
    let segments: [string, string, string];
    const { get, expectTokenRefused } = harness(() => test);
    beforeAll(async () => {
      test = await startTestApp(dialect, { JWT_ALG: 'ES256' });
      segments = (await signedInUser(test.app, 'psychic@example.com')).token.split('.') as [string, string, string];
    });
    afterAll(() => test.close());

    it('refuses ECDSA "psychic signatures" (r = s = 0, r = s = n, CVE-2022-21449)', async () => {
      expect((await get('/me', { 'x-access-token': segments.join('.') })).statusCode).toBe(200);
      const signature = Buffer.from(segments[2], 'base64url');
      expect(signature).toHaveLength(64);
      const [r, s] = [signature.subarray(0, 32), signature.subarray(32)];
      const zero = Buffer.alloc(32);
      const variants = [
        Buffer.concat([zero, zero]),
        Buffer.concat([P256_ORDER, P256_ORDER]),
        Buffer.concat([zero, s]),
        Buffer.concat([r, zero]),
        Buffer.concat([P256_ORDER, s]),
        Buffer.from('3006020100020100', 'hex'), // the same r = s = 0 in DER
      ];
      for (const variant of variants) await expectTokenRefused(`${segments[0]}.${segments[1]}.${b64(variant)}`);
    });
  });

  describe('claims, key ids, token kinds and revocation (EdDSA)', () => {
    let test: TestApp;
    let user: { id: number; token: string; refreshToken: string };
    let claims: Json;
    const { get, expectTokenRefused } = harness(() => test);

    beforeAll(async () => {
      test = await startTestApp(dialect);
      user = await signedInUser(test.app, 'claims@example.com');
      claims = decodeSegment(user.token.split('.')[1]!);
    });
    afterAll(() => test.close());

    /** Signed with the server's real private key, so only the claim or header under test is wrong. */
    async function forge(changes: JWTPayload = {}, headerChanges: Json = {}): Promise<string> {
      const key = test.deps.keys.current();
      const payload: JWTPayload = { ...claims, jti: `forged-${Math.random()}`, iat: test.clock.nowSeconds(), ...changes };
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
      const protectedHeader = { alg: key.algorithm, typ: 'at+jwt', kid: key.kid, ...headerChanges } as Record<string, unknown>;
      for (const [name, value] of Object.entries(protectedHeader)) if (value === undefined) delete protectedHeader[name];
      return new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(key.privateKey);
    }

    it('accepts a token forged with the real key and unchanged claims (control)', async () => {
      expect((await get('/users', { 'x-access-token': await forge() })).statusCode).toBe(200);
      expect((await get('/me', { authorization: `Bearer ${await forge({}, { typ: 'at+jwt' })}` })).statusCode).toBe(200);
      const now = test.clock.nowSeconds();
      expect((await get('/users', { 'x-access-token': await forge({ nbf: now }) })).statusCode).toBe(200);
    });

    it('refuses a wrong or missing iss, aud, exp', async () => {
      const now = test.clock.nowSeconds();
      const cases: JWTPayload[] = [
        { iss: 'https://evil.example' },
        { iss: 'http://localhost:2000/' },
        { iss: '' },
        { iss: undefined },
        { aud: 'another-service' },
        { aud: ['another-service'] },
        { aud: '' },
        { aud: undefined },
        { exp: undefined },
        { exp: 'never' as unknown as number },
      ];
      for (const change of cases) await expectTokenRefused(await forge(change));
      await expectTokenRefused(await forge({ exp: now - 1 }), 'auth failed - token has expired');
      await expectTokenRefused(await forge({ exp: now }), 'auth failed - token has expired');
    });

    it('refuses nbf and iat one second in the future (no leeway)', async () => {
      const now = test.clock.nowSeconds();
      await expectTokenRefused(await forge({ nbf: now + 1 }));
      await expectTokenRefused(await forge({ iat: now + 1 }));
      await expectTokenRefused(await forge({ iat: now + 1, nbf: now + 1 }));
    });

    it('refuses a wrong or missing typ, and unknown crit parameters', async () => {
      for (const typ of ['JWT', 'jwt', 'application/jwt', 'rt+jwt', 'at+jws', 'at+jwt+jwt', 'id_token+jwt', 'JOSE', '', undefined]) {
        await expectTokenRefused(await forge({}, { typ }));
      }
      await expectTokenRefused(await forge({}, { typ: ['at+jwt'] }));
      // jose will not sign an unknown crit parameter, so sign by hand with the real private key.
      const key = test.deps.keys.current();
      const signer = (input: Buffer) => sign(null, input, KeyObject.from(key.privateKey as webcrypto.CryptoKey));
      const base = { alg: key.algorithm, typ: 'at+jwt', kid: key.kid };
      expect((await get('/users', { 'x-access-token': compact(base, { ...claims, jti: 'crit-control' }, signer) })).statusCode).toBe(200);
      await expectTokenRefused(compact({ ...base, crit: ['x-gatehouse-unknown'], 'x-gatehouse-unknown': true }, claims, signer));
      await expectTokenRefused(compact({ ...base, crit: ['b64'], b64: false }, claims, signer));
      await expectTokenRefused(compact({ ...base, crit: [] }, claims, signer));
      // RFC 7515 §4.1.9: typ is a media type, compared case-insensitively with "application/" optional,
      // so these are the same type as at+jwt (RFC 9068 §4 names both spellings) and stay accepted.
      for (const typ of ['AT+JWT', 'At+Jwt', 'application/at+jwt']) {
        expect((await get('/users', { 'x-access-token': await forge({}, { typ }) })).statusCode, typ).toBe(200);
      }
    });

    it('refuses malformed subjects, sessions and token ids', async () => {
      for (const change of [
        { sub: undefined },
        { sub: String(user.id + 1000) },
        { sub: `${user.id} OR 1=1` },
        { sub: `0${user.id}` },
        { sub: user.id as unknown as string },
        { sub: '99999999999999999999' },
        { sid: undefined },
        { sid: '' },
        { jti: undefined },
        { roles: 'admin' as unknown as string[] },
      ] as JWTPayload[]) {
        await expectTokenRefused(await forge(change));
      }
    });

    it('refuses kid injection strings, even on a token the real key signed', async () => {
      const keysBefore = await test.deps.db.selectFrom('signing_keys').select('kid').execute();
      const kids = ['../../etc/passwd', "' OR 1=1 --", "x' UNION SELECT private_jwk FROM signing_keys --", '\u0000', `${test.deps.keys.current().kid}\u0000`, '*', '', 'k'.repeat(10 * 1024)];
      for (const kid of kids) await expectTokenRefused(await forge({}, { kid }));
      for (const kid of [42, null, [test.deps.keys.current().kid], { $ne: '' }]) await expectTokenRefused(await forge({}, { kid }));
      await expectTokenRefused(await forge({}, { kid: undefined }));
      expect(await test.deps.db.selectFrom('signing_keys').select('kid').execute()).toEqual(keysBefore);
    });

    it('refuses a refresh token used as an access token, and an access token used as a refresh token', async () => {
      const fresh = json(await loginUser(test.app, 'claims@example.com'));
      await expectTokenRefused(fresh.refresh_token);
      const asRefresh = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: fresh.token } });
      expect(asRefresh.statusCode, asRefresh.body).toBe(401);
      assertNoLeak(asRefresh.body, [fresh.token]);
      expect(json(asRefresh)).not.toHaveProperty('token');
      // Neither attempt harmed the genuine pair.
      expect((await get('/me', { 'x-access-token': fresh.token })).statusCode).toBe(200);
      const refreshed = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: fresh.refresh_token } });
      expect(refreshed.statusCode).toBe(201);
    });

    it('refuses every re-encoding of a token revoked by logout', async () => {
      const session = json(await loginUser(test.app, 'claims@example.com'));
      const revoked: string = session.token;
      expect((await get('/users', { 'x-access-token': revoked })).statusCode).toBe(200);
      const logout = await test.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${revoked}` } });
      expect(logout.statusCode).toBe(200);

      const [h, p, s] = revoked.split('.') as [string, string, string];
      const headerJson = decodeSegment(h);
      const standardBase64 = (segment: string) => Buffer.from(segment, 'base64url').toString('base64');
      const reEncoded = [
        revoked,
        `${revoked}=`,
        `${revoked}==`,
        `${h}=.${p}.${s}`,
        `${h}.${p}=.${s}`,
        `${standardBase64(h)}.${standardBase64(p)}.${standardBase64(s)}`,
        `${b64(JSON.stringify(headerJson, null, 1))}.${p}.${s}`,
        `${b64(Object.fromEntries(Object.entries(headerJson).reverse()))}.${p}.${s}`,
        `${h}.${b64(JSON.stringify(decodeSegment(p), null, 2))}.${s}`,
      ];
      const revokedOrInvalid = /^auth failed - token (has been revoked|is invalid)$/;
      for (const variant of reEncoded) {
        expectRefused(await get('/users', { 'x-access-token': variant }), revokedOrInvalid);
        expectRefused(await get('/me', { authorization: `Bearer ${variant}` }), revokedOrInvalid);
      }
      // The same token through every way of presenting it.
      const presentations: Array<Record<string, string>> = [
        { 'x-access-token': ` ${revoked} ` },
        { 'x-access-token': `\t${revoked}` },
        { authorization: `Bearer ${revoked}` },
        { authorization: `bearer ${revoked}` },
        { authorization: `BEARER ${revoked}` },
        { authorization: `Bearer   ${revoked} ` },
        { authorization: `Bearer ${revoked}`, 'x-access-token': revoked },
        { 'x-access-token': `Bearer ${revoked}` },
      ];
      for (const headers of presentations) {
        expectRefused(await get('/users', headers), revokedOrInvalid);
        expectRefused(await test.app.inject({ method: 'POST', url: '/logout', headers }), revokedOrInvalid);
      }
      expectRefused(await get('/me', { 'x-access-token': revoked }), 'auth failed - token has been revoked');
      // The user's other session is untouched.
      expect((await get('/me', { 'x-access-token': user.token })).statusCode).toBe(200);
    });

    // Last: rotation changes the current key for the tests of this block.
    it('refuses a token signed by one real key under the kid of another', async () => {
      const oldKey = test.deps.keys.current();
      const newKid = (await test.deps.keys.rotate({ immediately: true })).kid;
      const newKey = test.deps.keys.current();
      expect(newKey.kid).toBe(newKid);
      expect(newKid).not.toBe(oldKey.kid);
      const sign = (key: typeof oldKey, kid: string) =>
        new SignJWT({ ...claims, jti: `rotated-${kid}-${key.kid}` }).setProtectedHeader({ alg: key.algorithm, typ: 'at+jwt', kid }).sign(key.privateKey);
      // Control: each key still verifies its own tokens (the old one is retired, not yet expired).
      expect((await get('/users', { 'x-access-token': await sign(oldKey, oldKey.kid) })).statusCode).toBe(200);
      expect((await get('/users', { 'x-access-token': await sign(newKey, newKid) })).statusCode).toBe(200);
      await expectTokenRefused(await sign(oldKey, newKid));
      await expectTokenRefused(await sign(newKey, oldKey.kid));
    });
  });
});
