/**
 * Property-based fuzzing of every route with fast-check. The properties:
 *   - never a 5xx;
 *   - never a leak marker in a body (stack frame, SQL text, hash prefix, key material);
 *   - every JSON answer but the named exceptions (GET /, docs, OpenAPI, well-known, the /users list)
 *     is the seed's envelope with code equal to the HTTP status, and every error is one;
 *   - a forged token is always a 401 on a protected route;
 *   - /healthz still answers 200 after each case.
 * FUZZ_SEED=<n> replays a run (fast-check prints the seed and the shrunk case on failure);
 * FUZZ_RUNS=<n> changes the number of cases per property.
 */
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoLeak, loginUser, signupUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';

const settings = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns: process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : numRuns,
  ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}),
});

const GET_ROUTES = ['/', '/healthz', '/readyz', '/users', '/me', '/.well-known/jwks.json', '/.well-known/openid-configuration', '/openapi.json'];
const POST_ROUTES = ['/signup', '/login', '/token/refresh', '/logout', '/me/password'];
const PROTECTED = [
  ['GET', '/users'],
  ['GET', '/me'],
  ['POST', '/logout'],
  ['POST', '/me/password'],
] as const;
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'] as const;
const FIELDS = ['name', 'email', 'password', 'refresh_token', 'all', 'current_password', 'new_password'];

// ---- arbitraries ------------------------------------------------------------------------------

const nastyChar = fc.constantFrom('\u0000', '\u0001', '\u001f', '\u007f', '\u202e', '\ufeff', '\ud800', '\udfff', '\uffff', "'", '"', '\\', '%', '$', '\n', '\u00e9', '\u{1f600}');
const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: nastyChar }),
  fc.constantFrom('', ' ', '__proto__', 'constructor', 'prototype', 'null', 'admin', STRONG_PASSWORD, 'fuzz@example.com', "' OR 1=1 --"),
  fc.integer({ min: 100, max: 5000 }).map((length) => 'x'.repeat(length)),
);
const hugeNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(1e308, -1e308, 2 ** 53 + 2, 2 ** 64, -0, 5e-324, Number.MAX_SAFE_INTEGER, 0),
);
const { value: anyValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    weirdString,
    hugeNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(weirdString, tie('value'), { maxKeys: 4 }),
  ),
}));
const emailish = fc.oneof(fc.emailAddress(), fc.emailAddress().map((email) => email.toUpperCase()), weirdString, fc.constant('fuzz@example.com'));
/** Objects shaped like the real bodies, with any value in any field, fields optional. */
const shapedBody = fc.oneof(
  fc.record({ name: fc.oneof(weirdString, anyValue), email: fc.oneof(emailish, anyValue), password: fc.oneof(weirdString, anyValue) }, { requiredKeys: [] }),
  fc.record({ email: emailish, password: weirdString }),
  fc.record({ refresh_token: fc.oneof(weirdString, fc.base64String(), anyValue) }, { requiredKeys: [] }),
  fc.record({ current_password: fc.oneof(fc.constant(STRONG_PASSWORD), weirdString), new_password: fc.oneof(weirdString, anyValue) }, { requiredKeys: [] }),
  fc.record({ all: anyValue }, { requiredKeys: [] }),
  fc.record({ email: emailish, password: weirdString, extra: anyValue }),
);
/** Bodies each route accepts in shape, so cases get past validation into the domain code. */
const longPassword = fc.oneof(
  fc.string({ unit: 'binary', minLength: 15, maxLength: 80 }),
  fc.string({ unit: 'grapheme', minLength: 15, maxLength: 60 }),
  fc.tuple(weirdString, fc.string({ minLength: 15, maxLength: 40 })).map(([head, tail]) => head + tail),
);
const base64url43 = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 43, maxLength: 43 });
const ROUTE_BODIES: Record<string, fc.Arbitrary<unknown>> = {
  '/signup': fc.record({ name: weirdString, email: fc.oneof({ arbitrary: fc.emailAddress(), weight: 3 }, emailish), password: fc.oneof({ arbitrary: longPassword, weight: 3 }, weirdString) }),
  '/login': fc.record({ email: fc.oneof(fc.constantFrom('fuzz@example.com', ' FUZZ@Example.com '), emailish), password: fc.oneof(fc.constant(STRONG_PASSWORD), longPassword, weirdString) }),
  '/token/refresh': fc.record({ refresh_token: fc.oneof(fc.constant('<refresh>'), base64url43, weirdString) }),
  '/logout': fc.oneof(fc.constant({}), fc.record({ all: fc.oneof(fc.boolean(), anyValue) })),
  '/me/password': fc.record({ current_password: fc.oneof(fc.constant(STRONG_PASSWORD), weirdString), new_password: fc.oneof(longPassword, weirdString) }),
};
const rawNumber = fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '1e-400', '-0', '1E+2', '0.1e999999999');
const deep = fc.integer({ min: 1, max: 20_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth));
const bodyText = fc.oneof(
  { arbitrary: shapedBody.map((body) => JSON.stringify(body)), weight: 4 },
  { arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)), weight: 2 },
  { arbitrary: fc.object().map((value) => JSON.stringify(value)), weight: 1 },
  { arbitrary: anyValue.map((value) => JSON.stringify(value)), weight: 2 },
  fc.tuple(fc.constantFrom(...FIELDS), rawNumber).map(([field, number]) => `{"${field}":${number}}`),
  fc.tuple(fc.constantFrom(...FIELDS), deep).map(([field, nested]) => `{"${field}":${nested}}`),
  deep,
  anyValue.map((value) => `{"__proto__":${JSON.stringify(value)}}`),
  anyValue.map((value) => `{"email":"a@example.com","password":"x","constructor":{"prototype":${JSON.stringify(value)}}}`),
  fc.tuple(deep, fc.boolean()).map(([nested, proto]) => `{"a":${nested.slice(0, nested.length / 2)}{"${proto ? '__proto__' : 'constructor'}":{"prototype":1}}${nested.slice(nested.length / 2)}}`),
  shapedBody.chain((body) => {
    const text = JSON.stringify(body);
    return fc.nat(text.length).map((cut) => text.slice(0, cut));
  }),
  fc.string(),
  fc.constant(''),
  fc.integer({ min: 60_000, max: 70_000 }).map((length) => JSON.stringify({ email: 'a@example.com', password: 'p'.repeat(length) })),
);
/** What a header value can carry on the wire: tab, visible ASCII, space, obs-text. */
const headerValue = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09)).map((code) => String.fromCharCode(code)),
  maxLength: 300,
});
const contentType = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 6 },
  fc.constantFrom(
    'application/json; charset=utf-8',
    'APPLICATION/JSON',
    'application/json; charset=utf-16',
    'application/json;;',
    'application/jsonx',
    'application/merge-patch+json',
    'text/plain',
    'text/html',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=----fuzz',
    '*/*',
  ),
  headerValue,
);
const b64 = (text: string) => Buffer.from(text).toString('base64url');

// ---- checks -----------------------------------------------------------------------------------

/** Routes whose successful answers are not the envelope, by contract. */
function isEnvelopeExempt(method: string, path: string, status: number): boolean {
  if (status >= 400) return false;
  if (path === '/' || path === '/openapi.json' || path.startsWith('/docs') || path.startsWith('/.well-known/')) return true;
  return method === 'GET' && path === '/users';
}

/** The path the app is handed: light-my-request resolves the URL (dot segments too) like a WHATWG URL. */
function servedPaths(url: string): string[] {
  const pathname = new URL(url.startsWith('//') ? `http://localhost${url}` : url, 'http://localhost').pathname;
  const paths = [pathname, url.split('?')[0] || '/'];
  for (const path of [...paths]) {
    try {
      paths.push(decodeURIComponent(path));
    } catch {
      // not decodable: the router sees it raw
    }
  }
  return paths;
}

function checkAnswer(response: LightMyRequestResponse, method: string, url: string): void {
  const context = `${method} ${url} → ${response.statusCode} ${response.body.slice(0, 300)}`;
  expect(response.statusCode, context).toBeLessThan(500);
  assertNoLeak(response.body);
  if (method === 'HEAD') return;
  if (servedPaths(url).some((path) => isEnvelopeExempt(method, path, response.statusCode))) return;
  expect(response.headers['content-type'], context).toMatch(/^application\/json/);
  const body = JSON.parse(response.body);
  expect(Object.keys(body).filter((key) => ['status', 'code', 'message', 'data'].includes(key)).sort(), context).toEqual(['code', 'data', 'message', 'status']);
  expect(body.code, context).toBe(response.statusCode);
  expect(body.status, context).toBe(response.statusCode < 400);
  expect(typeof body.message, context).toBe('string');
  expect(body.data === null || (typeof body.data === 'object' && !Array.isArray(body.data)), context).toBe(true);
  if (response.statusCode >= 400) expect(Object.keys(body).sort(), context).toEqual(['code', 'data', 'message', 'status']);
}

describe.each(testDialects())('fuzzing [%s]', (dialect) => {
  let test: TestApp;
  let userId: number;
  let realKid: string;
  let sessionCounter = 0;

  beforeAll(async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '1000000' });
    const signup = await signupUser(test.app, { email: 'fuzz@example.com' });
    expect(signup.statusCode).toBe(201);
    userId = JSON.parse(signup.body).data.id;
    realKid = test.deps.keys.current().kid;
    expect((await signupUser(test.app, { email: 'fuzz-refresh@example.com' })).statusCode).toBe(201);
  });
  afterAll(() => test.close());

  /** A valid token of a fresh session per case, so a fuzzed /logout cannot starve the next case. */
  async function freshToken(): Promise<string> {
    sessionCounter += 1;
    const issued = await test.deps.accessTokens.issueUserToken({ userId, email: 'fuzz@example.com', roles: ['user'], sessionId: `fuzz-session-${sessionCounter}` });
    return issued.token;
  }

  /** A live refresh token of a user whose password the fuzzing never changes. */
  async function freshRefreshToken(): Promise<string> {
    const login = await loginUser(test.app, 'fuzz-refresh@example.com');
    expect(login.statusCode).toBe(201);
    return JSON.parse(login.body).refresh_token;
  }

  async function expectHealthy(): Promise<void> {
    const health = await test.app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
  }

  it('arbitrary bodies and content types on every POST route', async () => {
    const routeAndBody = fc
      .constantFrom(...POST_ROUTES)
      .chain((route) => fc.tuple(fc.constant(route), fc.oneof({ arbitrary: ROUTE_BODIES[route]!.map((body) => JSON.stringify(body)), weight: 3 }, { arbitrary: bodyText, weight: 2 })));
    await fc.assert(
      fc.asyncProperty(routeAndBody, contentType, fc.nat(9), async ([url, text], type, dice) => {
        const headers: Record<string, string> = { 'content-type': type };
        if (dice < 8) headers['x-access-token'] = await freshToken();
        const payload = text.includes('"<refresh>"') ? text.replace('"<refresh>"', JSON.stringify(await freshRefreshToken())) : text;
        checkAnswer(await test.app.inject({ method: 'POST', url, headers, payload }), 'POST', url);
        await expectHealthy();
      }),
      settings(300),
    );
  });

  it('arbitrary x-access-token, authorization and content-type headers on every route', async () => {
    const tokenish = fc.oneof(
      headerValue,
      headerValue.map((value) => `Bearer ${value}`),
      fc.constantFrom('Bearer', 'Bearer ', 'Basic YTpi', 'Bearer a b', 'bearer\t', 'Bearer ..', 'Bearer a.b.c', 'Token x', 'Bearer \u00ff'),
      fc.constant('<real>'),
    );
    const headerSet = fc.record(
      { 'x-access-token': tokenish, authorization: tokenish, 'content-type': contentType, accept: headerValue, 'x-forwarded-for': headerValue },
      { requiredKeys: [] },
    );
    const route = fc.oneof(
      fc.constantFrom(...GET_ROUTES).map((url) => ['GET', url] as const),
      fc.constantFrom(...POST_ROUTES).map((url) => ['POST', url] as const),
    );
    await fc.assert(
      fc.asyncProperty(route, headerSet, shapedBody, async ([method, url], generated, body) => {
        const real = await freshToken();
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(generated)) headers[name] = value.replace('<real>', real);
        const response = await test.app.inject({ method, url, headers, ...(method === 'POST' ? { payload: JSON.stringify(body) } : {}) });
        checkAnswer(response, method, url);
        await expectHealthy();
      }),
      settings(300),
    );
  });

  it('forged token-shaped strings are a 401 on every protected route', async () => {
    const header = fc.record(
      {
        alg: fc.oneof(fc.constantFrom('none', 'None', 'HS256', 'HS512', 'EdDSA', 'ES256', 'RS256', 'PS256', ''), anyValue),
        typ: fc.oneof(fc.constantFrom('at+jwt', 'JWT'), anyValue),
        kid: fc.oneof(fc.constant('<kid>'), weirdString, anyValue),
        jku: fc.constantFrom('http://127.0.0.1:1/jwks.json', 'file:///etc/passwd'),
        jwk: fc.oneof(fc.constant({ kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }), anyValue),
        crit: fc.oneof(fc.constant(['b64']), anyValue),
        b64: fc.boolean(),
      },
      { requiredKeys: [] },
    );
    const claims = fc.record(
      {
        sub: fc.oneof(fc.constant('<sub>'), weirdString, hugeNumber),
        iss: fc.oneof(fc.constant('http://localhost:2000'), anyValue),
        aud: fc.oneof(fc.constant('gatehouse'), anyValue),
        exp: fc.oneof(fc.constant('<later>'), hugeNumber, anyValue),
        iat: fc.oneof(fc.constant('<now>'), hugeNumber, anyValue),
        nbf: fc.oneof(hugeNumber, anyValue),
        sid: weirdString,
        jti: weirdString,
        roles: anyValue,
      },
      { requiredKeys: [] },
    );
    const segment = (json: fc.Arbitrary<unknown>) =>
      fc.oneof(
        { arbitrary: json.map((value) => b64(JSON.stringify(value))), weight: 4 },
        fc.jsonValue().map((value) => b64(JSON.stringify(value))),
        fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
        fc.string().map(b64),
        fc.constantFrom('', '=', 'AA==', '!!!', 'e30'),
      );
    const token = fc.oneof(
      { arbitrary: fc.tuple(segment(header), segment(claims), segment(fc.constant(''))).map((parts) => parts.join('.')), weight: 6 },
      fc.array(segment(anyValue), { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.')),
    );
    const presented = fc.constantFrom('x-access-token', 'authorization');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PROTECTED), token, presented, async ([method, url], raw, via) => {
        const now = test.clock.nowSeconds();
        const forged = raw
          .split('.')
          .map((part) => {
            const text = Buffer.from(part, 'base64url').toString('utf8');
            const filled = text
              .replaceAll('"<kid>"', JSON.stringify(realKid))
              .replaceAll('"<sub>"', JSON.stringify(String(userId)))
              .replaceAll('"<later>"', String(now + 600))
              .replaceAll('"<now>"', String(now));
            return filled === text ? part : b64(filled);
          })
          .join('.');
        const headers = via === 'authorization' ? { authorization: `Bearer ${forged}` } : { 'x-access-token': forged };
        const response = await test.app.inject({ method, url, headers, ...(method === 'POST' ? { payload: {} } : {}) });
        checkAnswer(response, method, url);
        expect(response.statusCode, `${forged} → ${response.body}`).toBe(401);
        await expectHealthy();
      }),
      settings(300),
    );
  });

  it('random methods, paths and query strings', async () => {
    const segmentText = fc.oneof(
      fc.constantFrom('users', 'me', 'healthz', '.well-known', 'jwks.json', 'docs', 'static', 'json', '..', '.', '', '%', '%zz', '%00', '%2e%2e', '%2F', ';', 'login', 'signup', 'token', 'refresh', 'password', '1', '-1', '99999999999999999999'),
      fc.string().map((text) => encodeURIComponent(text)),
      fc.string({ unit: 'binary' }).map((text) => encodeURIComponent(text)),
    );
    const path = fc.oneof(
      fc.constantFrom(...GET_ROUTES, ...POST_ROUTES, '/docs', '/docs/', '/docs/json', '/docs/static/index.html', '/docs/static/../../package.json'),
      fc.array(segmentText, { minLength: 1, maxLength: 5 }).map((parts) => `/${parts.join('/')}`),
      fc.tuple(fc.constantFrom(...GET_ROUTES, ...POST_ROUTES), segmentText).map(([route, suffix]) => `${route}/${suffix}`),
      fc.webPath(),
    );
    const query = fc.oneof(
      fc.constant(''),
      fc
        .array(
          fc.tuple(
            fc.oneof({ arbitrary: fc.constantFrom('limit', 'cursor'), weight: 4 }, fc.constantFrom('__proto__', 'limit[]', 'constructor'), fc.string()),
            fc.oneof(
              fc.integer({ min: -5, max: 120 }).map(String),
              fc.string(),
              fc.string({ unit: 'binary' }),
              hugeNumber.map(String),
              fc.string().map((text) => Buffer.from(`u:${text}`).toString('base64url')),
              fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((id) => Buffer.from(`u:${id}`).toString('base64url')),
            ),
          ),
          { maxLength: 3 },
        )
        .map((pairs) => `?${pairs.map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`).join('&')}`),
      fc.constantFrom('?', '?&&', '?limit', '?limit=', '?limit=1&limit=2', '?cursor=%zz', '?limit=%00'),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), path, query, fc.option(bodyText), fc.boolean(), async (method, route, search, payload, withToken) => {
        const url = `${route.startsWith('/') ? route : `/${route}`}${search}`;
        const headers: Record<string, string> = {};
        if (withToken) headers.authorization = `Bearer ${await freshToken()}`;
        if (payload !== null && method !== 'GET' && method !== 'HEAD') headers['content-type'] = 'application/json';
        const response = await test.app.inject({ method, url, headers, ...(payload !== null && method !== 'GET' && method !== 'HEAD' ? { payload } : {}) });
        checkAnswer(response, method, url);
        await expectHealthy();
      }),
      settings(300),
    );
  });

  it('still answers /healthz, /readyz, /.well-known/jwks.json and logs in afterwards', async () => {
    await freshRefreshToken();
    await expectHealthy();
    expect((await test.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const jwks = await test.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(jwks.statusCode).toBe(200);
    assertNoLeak(jwks.body);
  });
});
