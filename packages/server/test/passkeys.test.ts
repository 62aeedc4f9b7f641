/**
 * Passkeys (WebAuthn). Over HTTP with a software authenticator (test/soft-authenticator.ts), so each
 * bad input is one change to a correctly signed response; then end to end in Debian's Chromium with
 * its virtual authenticator (CDP WebAuthn domain) from the test page Gatehouse serves. Both dialects.
 * The browser suite is skipped only when /usr/bin/chromium is missing outside CI; under CI=true it fails.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { decodeJwt } from 'jose';
import { chromium, type Browser, type CDPSession, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CHALLENGE_TTL_SECONDS, PASSKEY_LOGIN_MAX_ATTEMPTS } from '../src/passkeys/passkeys.ts';
import { createTestDatabase, enableTotp, expectErrorEnvelope, json, markEmailVerified, totpAt, openTestApp, signedInUser, signedInVerifiedUser, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { FLAGS, SoftAuthenticator } from './soft-authenticator.ts';

const MAX_PASSKEYS = 20; // Written out, as below: a raised cap there must fail here.
const ORIGIN = 'https://login.example.test';
const RP_ID = 'login.example.test';
const ENV = { WEBAUTHN_RP_ID: RP_ID, WEBAUTHN_ORIGINS: `${ORIGIN},https://other.example.test`, PUBLIC_URL: ORIGIN };
// Written out, not imported from the module: a weakened policy there must fail here.
const EXPECTED_DEMO_CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function registrationOptions(test: TestApp, token: string) {
  const response = await test.app.inject({ method: 'POST', url: '/me/passkeys/register/options', headers: bearer(token) });
  expect(response.statusCode, response.body).toBe(200);
  return json(response).data;
}

async function registerWith(test: TestApp, token: string, authenticator: SoftAuthenticator, name?: string) {
  const options = await registrationOptions(test, token);
  const response = await test.app.inject({
    method: 'POST',
    url: '/me/passkeys/register/verify',
    headers: bearer(token),
    payload: { response: authenticator.register(options), ...(name ? { name } : {}) },
  });
  expect(response.statusCode, response.body).toBe(201);
  return json(response).data;
}

async function loginOptions(test: TestApp) {
  const response = await test.app.inject({ method: 'POST', url: '/login/passkey/options' });
  expect(response.statusCode, response.body).toBe(200);
  return json(response).data as { challenge_id: string; options: { challenge: string; allowCredentials?: unknown[]; userVerification?: string } };
}

function verifyLogin(test: TestApp, payload: unknown) {
  return test.app.inject({ method: 'POST', url: '/login/passkey/verify', payload: payload as Record<string, unknown> });
}

async function auditActions(test: TestApp, action: string) {
  await test.deps.audit.flush();
  return test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', action).execute();
}

describe.each(testDialects())('passkeys over HTTP [%s]', (dialect) => {
  let test: TestApp;
  let authenticator: SoftAuthenticator;
  beforeEach(async () => {
    test = await startTestApp(dialect, ENV);
    authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
  });
  afterEach(async () => {
    await test.close();
  });

  it('registers a discoverable passkey, lists it, signs in with it (no email), and the token carries amr', async () => {
    const user = await signedInVerifiedUser(test, 'pk@example.com');
    const options = await registrationOptions(test, user.token);
    expect(options.rp).toEqual({ id: RP_ID, name: expect.any(String) });
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required' });
    expect(options.user.name).toBe('pk@example.com');
    // The user handle is opaque: not the user id.
    expect(Buffer.from(options.user.id, 'base64url').length).toBe(32);
    const verify = await test.app.inject({
      method: 'POST',
      url: '/me/passkeys/register/verify',
      headers: bearer(user.token),
      payload: { response: authenticator.register(options), name: 'Laptop <b>' },
    });
    expect(verify.statusCode, verify.body).toBe(201);
    expect(json(verify).data).toMatchObject({ name: 'Laptop <b>', transports: ['internal'], last_used_at: null });

    // A second registration excludes the first credential, and keeps the same user handle.
    const again = await registrationOptions(test, user.token);
    expect(again.excludeCredentials.map((c: { id: string }) => c.id)).toEqual([authenticator.credentials[0]!.id.toString('base64url')]);
    expect(again.user.id).toBe(options.user.id);

    const list = await test.app.inject({ method: 'GET', url: '/me/passkeys', headers: bearer(user.token) });
    expect(json(list).data.map((p: { name: string }) => p.name)).toEqual(['Laptop <b>']);

    const start = await loginOptions(test);
    expect(start.options.allowCredentials ?? []).toEqual([]);
    expect(start.options.userVerification).toBe('required');
    const login = await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) });
    expect(login.statusCode, login.body).toBe(201);
    const body = json(login);
    expect(body.data).toEqual({ id: user.id, email: 'pk@example.com', name: 'Test User' });
    expect(decodeJwt(body.token).amr).toEqual(['hwk', 'user', 'mfa']);
    const me = await test.app.inject({ method: 'GET', url: '/me', headers: bearer(body.token) });
    expect(me.statusCode).toBe(200);
    // Refresh keeps the passkey's amr.
    const refreshed = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: body.refresh_token } });
    expect(decodeJwt(json(refreshed).token).amr).toEqual(['hwk', 'user', 'mfa']);

    const stored = await test.deps.db.selectFrom('passkeys').selectAll().executeTakeFirstOrThrow();
    expect(Number(stored.counter)).toBe(1);
    expect(Number(stored.last_used_at)).toBe(test.clock.nowSeconds());
    const logins = await auditActions(test, 'user.login');
    expect(logins.some((row) => JSON.parse(String(row.details)).method === 'passkey')).toBe(true);
    expect((await auditActions(test, 'user.passkey_register')).length).toBe(1);
  });

  it('spends a sign-in challenge once: a replayed response, or a reused challenge_id, is refused', async () => {
    const user = await signedInVerifiedUser(test, 'once@example.com');
    await registerWith(test, user.token, authenticator);
    const start = await loginOptions(test);
    const assertion = authenticator.assert(start.options);
    expect((await verifyLogin(test, { challenge_id: start.challenge_id, response: assertion })).statusCode).toBe(201);
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: assertion }), 403, 'verification failed - passkey not accepted');
    // A fresh assertion for the spent challenge: still refused.
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) }), 403);
    expect((await auditActions(test, 'user.passkey_login_failed')).map((row) => row.reason)).toEqual(['challenge_invalid', 'challenge_invalid']);
  });

  it('refuses an expired challenge (5 minutes), and an altered one burns it', async () => {
    const user = await signedInVerifiedUser(test, 'expired@example.com');
    await registerWith(test, user.token, authenticator);
    const start = await loginOptions(test);
    test.clock.advanceSeconds(CHALLENGE_TTL_SECONDS);
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) }), 403);

    // One second short of expiry still works.
    const fresh = await loginOptions(test);
    test.clock.advanceSeconds(CHALLENGE_TTL_SECONDS - 1);
    expect((await verifyLogin(test, { challenge_id: fresh.challenge_id, response: authenticator.assert(fresh.options) })).statusCode).toBe(201);

    // An altered signature: refused, and the challenge is gone even for the genuine response after it.
    const third = await loginOptions(test);
    const genuine = authenticator.assert(third.options);
    const signature = Buffer.from(genuine.response.signature, 'base64url');
    signature[signature.length - 1] = signature[signature.length - 1]! ^ 1;
    const altered = { ...genuine, response: { ...genuine.response, signature: signature.toString('base64url') } };
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: third.challenge_id, response: altered }), 403);
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: third.challenge_id, response: genuine }), 403);
  });

  it('refuses altered responses: authenticator data, client data for another challenge, wrong origin, wrong RP, no user verification', async () => {
    const user = await signedInVerifiedUser(test, 'altered@example.com');
    await registerWith(test, user.token, authenticator);
    const cases: Array<[string, (options: { challenge: string }) => unknown]> = [
      ['authenticator data', (options) => {
        const genuine = authenticator.assert(options);
        const data = Buffer.from(genuine.response.authenticatorData, 'base64url');
        data[33] = (data[33]! + 7) & 0xff; // the counter, after signing
        return { ...genuine, response: { ...genuine.response, authenticatorData: data.toString('base64url') } };
      }],
      ['another challenge', () => authenticator.assert({ challenge: Buffer.alloc(32, 7).toString('base64url') })],
      ['wrong origin', (options) => authenticator.assert(options, { origin: 'https://evil.example.test' })],
      ['no user verification', (options) => authenticator.assert(options, { flags: FLAGS.UP })],
      ['another user handle', (options) => authenticator.assert(options, { userHandle: Buffer.alloc(32, 1).toString('base64url') })],
      ['no user handle', (options) => {
        // A discoverable sign-in must name its account (WebAuthn §7.2): a response without the handle is refused.
        const genuine = authenticator.assert(options);
        const { userHandle: _dropped, ...response } = genuine.response;
        return { ...genuine, response };
      }],
    ];
    for (const [label, make] of cases) {
      const start = await loginOptions(test);
      const answer = await verifyLogin(test, { challenge_id: start.challenge_id, response: make(start.options) });
      expectErrorEnvelope(answer, 403, 'verification failed - passkey not accepted');
      expect(answer.statusCode, label).toBe(403);
    }
    // The second listed origin is accepted (WEBAUTHN_ORIGINS is a list).
    const start = await loginOptions(test);
    expect((await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options, { origin: 'https://other.example.test' }) })).statusCode).toBe(201);
    // A registration from the wrong origin, or for another RP id, is refused and stores nothing.
    for (const overrides of [{ origin: 'https://evil.example.test' }, { rpId: 'evil.example.test' }]) {
      const options = await registrationOptions(test, user.token);
      const made = authenticator.create(options, overrides);
      expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(user.token), payload: { response: made.response } }), 403);
    }
    expect((await test.deps.db.selectFrom('passkeys').selectAll().execute()).length).toBe(1);
  });

  it('refuses a counter that does not move forward (a cloned authenticator), and accepts authenticators without one', async () => {
    const user = await signedInVerifiedUser(test, 'counter@example.com');
    await registerWith(test, user.token, authenticator);
    const first = await loginOptions(test);
    expect((await verifyLogin(test, { challenge_id: first.challenge_id, response: authenticator.assert(first.options, { counter: 5 }) })).statusCode).toBe(201);
    for (const counter of [5, 4]) {
      const start = await loginOptions(test);
      expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options, { counter }) }), 403);
    }
    const stored = await test.deps.db.selectFrom('passkeys').select('counter').executeTakeFirstOrThrow();
    expect(Number(stored.counter)).toBe(5);
    expect((await auditActions(test, 'user.passkey_login_failed')).map((row) => row.reason)).toEqual(['counter_replay', 'counter_replay']);

    const noCounter = new SoftAuthenticator(ORIGIN, RP_ID, 0);
    const other = await signedInVerifiedUser(test, 'nocounter@example.com');
    await registerWith(test, other.token, noCounter);
    for (let i = 0; i < 2; i += 1) {
      const start = await loginOptions(test);
      expect((await verifyLogin(test, { challenge_id: start.challenge_id, response: noCounter.assert(start.options) })).statusCode).toBe(201);
    }
  });

  it("deletes only the user's own passkeys: another user's id answers 404 and deletes nothing; a deleted passkey cannot sign in", async () => {
    const alice = await signedInVerifiedUser(test, 'alice@example.com');
    const bob = await signedInVerifiedUser(test, 'bob@example.com');
    const alicePasskey = await registerWith(test, alice.token, authenticator, 'Alice key');
    const bobKeys = new SoftAuthenticator(ORIGIN, RP_ID);
    await registerWith(test, bob.token, bobKeys, 'Bob key');

    const stolen = await test.app.inject({ method: 'DELETE', url: `/me/passkeys/${alicePasskey.id}`, headers: bearer(bob.token) });
    expectErrorEnvelope(stolen, 404, 'passkey not found');
    expectErrorEnvelope(await test.app.inject({ method: 'DELETE', url: '/me/passkeys/999999', headers: bearer(bob.token) }), 404, 'passkey not found');
    expectErrorEnvelope(await test.app.inject({ method: 'DELETE', url: '/me/passkeys/abc', headers: bearer(bob.token) }), 400);
    expectErrorEnvelope(await test.app.inject({ method: 'DELETE', url: `/me/passkeys/${alicePasskey.id}` }), 401);
    const aliceList = await test.app.inject({ method: 'GET', url: '/me/passkeys', headers: bearer(alice.token) });
    expect(json(aliceList).data.map((p: { id: number }) => p.id)).toEqual([alicePasskey.id]);
    // Bob's list never shows Alice's.
    expect(json(await test.app.inject({ method: 'GET', url: '/me/passkeys', headers: bearer(bob.token) })).data.map((p: { name: string }) => p.name)).toEqual(['Bob key']);

    const deleted = await test.app.inject({ method: 'DELETE', url: `/me/passkeys/${alicePasskey.id}`, headers: bearer(alice.token) });
    expect(deleted.statusCode, deleted.body).toBe(200);
    const start = await loginOptions(test);
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) }), 403);
    expect((await auditActions(test, 'user.passkey_delete')).length).toBe(1);
  });

  it('refuses a registration response for another user, a reused registration challenge, and malformed bodies with 400 envelopes', async () => {
    const alice = await signedInVerifiedUser(test, 'ra@example.com');
    const bob = await signedInVerifiedUser(test, 'rb@example.com');
    const options = await registrationOptions(test, alice.token);
    const response = authenticator.register(options);
    // Bob cannot finish Alice's ceremony: the challenge is bound to her.
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(bob.token), payload: { response } }), 403);
    expect((await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(alice.token), payload: { response } })).statusCode).toBe(201);
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(alice.token), payload: { response } }), 403);
    // An expired registration challenge.
    const late = await registrationOptions(test, alice.token);
    test.clock.advanceSeconds(CHALLENGE_TTL_SECONDS);
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(alice.token), payload: { response: authenticator.create(late).response } }), 403);

    const bad: unknown[] = [
      {},
      { response: { ...response, id: 'not base64url!' } },
      { response: { ...response, type: 'password' } },
      { response: { ...response, response: { ...response.response, clientDataJSON: 'x'.repeat(5000) } } },
      { response: { ...response, response: { ...response.response, clientDataJSON: '' } } },
      { response, name: 'a\u0000b' },
      { response, extra: 1 },
    ];
    for (const payload of bad) {
      expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(alice.token), payload: payload as Record<string, unknown> }), 400);
    }
    // Not base64url JSON inside: a 403, not a 500.
    const garbage = { ...response, response: { ...response.response, clientDataJSON: 'AAAA', attestationObject: 'AAAA' } };
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(alice.token), payload: { response: garbage } }), 403);
    const start = await loginOptions(test);
    for (const payload of [{ challenge_id: start.challenge_id }, { challenge_id: '../x', response: authenticator.assert(start.options) }, { challenge_id: start.challenge_id, response: authenticator.assert(start.options), client_id: 'nope' }]) {
      expectErrorEnvelope(await verifyLogin(test, payload), 400);
    }
    const junk = authenticator.assert(start.options);
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: { ...junk, response: { ...junk.response, authenticatorData: 'AA', signature: 'AA' } } }), 403);
    expect((await test.deps.db.selectFrom('passkeys').selectAll().execute()).length).toBe(1);
  });

  it(`keeps at most ${MAX_PASSKEYS} passkeys per account, even with several registrations open at once`, async () => {
    const user = await signedInVerifiedUser(test, 'many@example.com');
    for (let n = 1; n < MAX_PASSKEYS; n += 1) await registerWith(test, user.token, authenticator);
    // Two challenges handed out at 19: only one of them may add the 20th.
    const [first, second] = [await registrationOptions(test, user.token), await registrationOptions(test, user.token)];
    const verify = (options: unknown) =>
      test.app.inject({ method: 'POST', url: '/me/passkeys/register/verify', headers: bearer(user.token), payload: { response: authenticator.register(options as never) } });
    expect((await verify(first)).statusCode).toBe(201);
    expectErrorEnvelope(await verify(second), 400, `invalid request - at most ${MAX_PASSKEYS} passkeys per account - delete one first`);
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/me/passkeys/register/options', headers: bearer(user.token) }), 400);
    expect(await test.deps.db.selectFrom('passkeys').select('id').where('user_id', '=', user.id).execute()).toHaveLength(MAX_PASSKEYS);
  });

  it('refuses disabled accounts and (REQUIRE_EMAIL_VERIFICATION) unverified ones after the passkey verified', async () => {
    const user = await signedInVerifiedUser(test, 'gone@example.com');
    await registerWith(test, user.token, authenticator);
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    const start = await loginOptions(test);
    expectErrorEnvelope(await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) }), 403, 'verification failed - passkey not accepted');
    // Unverified again (an admin's correction, or an account from before factors needed a proved address).
    await test.deps.db.updateTable('users').set({ disabled_at: null, email_verified_at: null }).where('id', '=', user.id).execute();

    const strict = await openTestApp(test.database, { ...ENV, REQUIRE_EMAIL_VERIFICATION: 'true' }, test.clock);
    try {
      const options = await strict.app.inject({ method: 'POST', url: '/login/passkey/options' });
      const { challenge_id, options: request } = json(options).data;
      const refused = await strict.app.inject({ method: 'POST', url: '/login/passkey/verify', payload: { challenge_id, response: authenticator.assert(request) } });
      expectErrorEnvelope(refused, 403, 'verification failed - email address not verified');
      await strict.deps.db.updateTable('users').set({ email_verified_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
      const again = json(await strict.app.inject({ method: 'POST', url: '/login/passkey/options' })).data;
      const accepted = await strict.app.inject({ method: 'POST', url: '/login/passkey/verify', payload: { challenge_id: again.challenge_id, response: authenticator.assert(again.options) } });
      expect(accepted.statusCode, accepted.body).toBe(201);
      expect(decodeJwt(json(accepted).token).email_verified).toBe(true);
    } finally {
      await strict.close();
    }
  });

  it(`limits passkey sign-in attempts per client address (${PASSKEY_LOGIN_MAX_ATTEMPTS} in 5 minutes), counted before the check`, async () => {
    const user = await signedInVerifiedUser(test, 'flood@example.com');
    await registerWith(test, user.token, authenticator);
    for (let i = 0; i < PASSKEY_LOGIN_MAX_ATTEMPTS; i += 1) {
      expectErrorEnvelope(await verifyLogin(test, { challenge_id: 'AAAAAAAAAAAAAAAAAAAAAA', response: authenticator.assert({ challenge: 'AAAA' }) }), 403);
    }
    const start = await loginOptions(test);
    const limited = await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) });
    expectErrorEnvelope(limited, 429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    test.clock.advanceSeconds(300);
    const later = await loginOptions(test);
    expect((await verifyLogin(test, { challenge_id: later.challenge_id, response: authenticator.assert(later.options) })).statusCode).toBe(201);
  });

  it('times a passkey sign-in over HTTP (options + verify, median of 25) and a registration', async () => {
    const user = await signedInVerifiedUser(test, 'timed@example.com');
    const registerStarted = performance.now();
    await registerWith(test, user.token, authenticator);
    const registerMs = performance.now() - registerStarted;
    const timings: number[] = [];
    for (let run = 0; run < 25; run += 1) {
      const started = performance.now();
      const start = await loginOptions(test);
      const answer = await verifyLogin(test, { challenge_id: start.challenge_id, response: authenticator.assert(start.options) });
      timings.push(performance.now() - started);
      expect(answer.statusCode).toBe(201);
    }
    timings.sort((a, b) => a - b);
    console.log(`[passkeys ${dialect} http] register ${registerMs.toFixed(1)} ms; sign-in median of 25: ${timings[12]!.toFixed(1)} ms (p90 ${timings[22]!.toFixed(1)})`);
    // Every challenge was spent: nothing left behind.
    expect(await test.deps.db.selectFrom('webauthn_challenges').selectAll().where('purpose', '=', 'authenticate').execute()).toEqual([]);
  });

  it('serves the test page and its bundled script with a strict CSP and no inline script', async () => {
    const page = await test.app.inject({ method: 'GET', url: '/passkeys/demo' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe(EXPECTED_DEMO_CSP);
    expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page.body).not.toMatch(/\son[a-z]+=|<style|\bstyle=/i);
    const script = await test.app.inject({ method: 'GET', url: '/passkeys/demo/demo.js' });
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.headers['content-security-policy']).toBe(EXPECTED_DEMO_CSP);
    expect(script.body).toContain('navigator.credentials');
    // Production serves no demo.
    const production = await openTestApp(test.database, { ...ENV, NODE_ENV: 'production', SMTP_URL: 'smtp://127.0.0.1:1' }, test.clock);
    try {
      expect((await production.app.inject({ method: 'GET', url: '/passkeys/demo' })).statusCode).toBe(404);
    } finally {
      await production.close();
    }
  });
});

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const runsInBrowser = existsSync(CHROMIUM) || process.env.CI === 'true';
/** Sign-ins timed per dialect; the median is printed (README "Passkeys" quotes it). */
const TIMED_RUNS = 7;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe.skipIf(!runsInBrowser)('[browser] passkeys in Chromium with its virtual authenticator', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  describe.each(testDialects())('[%s]', (dialect) => {
    let test: TestApp;
    let origin: string;
    let page: Page;
    let cdp: CDPSession;
    let authenticatorId: string;
    const violations: string[] = [];

    beforeEach(async () => {
      // WebAuthn wants a domain for the RP id (not an IP): localhost, a secure context over plain HTTP.
      const port = await freePort();
      origin = `http://localhost:${port}`;
      const database = await createTestDatabase(dialect);
      test = await openTestApp(database, { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: origin, PUBLIC_URL: origin });
      const close = test.close;
      test.close = async () => {
        await close();
        await database.drop();
      };
      await test.app.listen({ host: '127.0.0.1', port });
      const context = await browser.newContext();
      page = await context.newPage();
      page.on('console', (message) => {
        if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
      });
      cdp = await context.newCDPSession(page);
      await cdp.send('WebAuthn.enable', { enableUI: false });
      ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
      }));
    }, 60_000);
    afterEach(async () => {
      await page?.context().close();
      await test?.close();
    });

    async function status(prefix: string): Promise<string> {
      await page.locator('#status').filter({ hasText: new RegExp(`^${prefix}: `) }).waitFor({ timeout: 15_000 });
      return (await page.locator('#status').textContent()) ?? '';
    }
    const output = async () => JSON.parse((await page.locator('#output').textContent()) || 'null');

    it('registers a passkey, lists it, signs in with it without an email (the token works, amr says so), deletes it, and is refused after', async () => {
      await test.app.inject({ method: 'POST', url: '/signup', payload: { name: 'Browser User', email: 'browser@example.com', password: 'correct horse battery staple' } });
      await markEmailVerified(test, 'browser@example.com'); // only a proved address may add a passkey
      const response = await page.goto(`${origin}/passkeys/demo`);
      expect(response?.headers()['content-security-policy']).toBe(EXPECTED_DEMO_CSP);
      await page.getByLabel('Email', { exact: true }).fill('browser@example.com');
      await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      expect(await status('Password sign-in')).toBe('Password sign-in: done');

      await page.getByLabel('Name of the new passkey').fill('Chromium <virtual>');
      const registerStarted = performance.now();
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      expect(await status('Add a passkey')).toBe('Add a passkey: done');
      const registerMs = performance.now() - registerStarted;
      expect((await output()).data.name).toBe('Chromium <virtual>');
      // The name is text, never markup.
      await expect.poll(() => page.locator('#passkey-list li').count()).toBe(1);
      expect(await page.locator('#passkey-list li').first().textContent()).toContain('Chromium <virtual>');
      const credentials = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
      expect(credentials).toHaveLength(1);
      expect(credentials[0]!.isResidentCredential).toBe(true);

      // A new page: no token in memory, no email typed.
      const timings: number[] = [];
      let token = '';
      for (let run = 0; run < TIMED_RUNS; run += 1) {
        await page.goto(`${origin}/passkeys/demo`);
        const started = performance.now();
        await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
        expect(await status('Passkey sign-in')).toBe('Passkey sign-in: done');
        timings.push(performance.now() - started);
        token = (await output()).token;
      }
      const claims = decodeJwt(token);
      expect(claims.email).toBe('browser@example.com');
      expect(claims.amr).toEqual(['hwk', 'user', 'mfa']);
      const me = await test.app.inject({ method: 'GET', url: '/me', headers: bearer(token) });
      expect(me.statusCode).toBe(200);
      expect(json(me).data.email).toBe('browser@example.com');
      const stored = await test.deps.db.selectFrom('passkeys').selectAll().executeTakeFirstOrThrow();
      // Chromium's authenticator counts every assertion; the server kept up.
      expect(Number(stored.counter)).toBeGreaterThanOrEqual(TIMED_RUNS);
      console.log(`[passkeys ${dialect}] register ${registerMs.toFixed(0)} ms; passkey sign-in median of ${TIMED_RUNS}: ${median(timings).toFixed(0)} ms (min ${Math.min(...timings).toFixed(0)}, max ${Math.max(...timings).toFixed(0)})`);

      // Delete it from the page (signed in with the passkey's token), then the authenticator's assertion is refused.
      await page.getByRole('button', { name: 'Refresh the list' }).click();
      expect(await status('List')).toBe('List: done');
      await page.getByRole('button', { name: 'Delete Chromium <virtual>' }).click();
      expect(await status('Delete')).toBe('Delete: done');
      await expect.poll(() => page.locator('#passkey-list li').count()).toBe(0);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      expect(await status('Passkey sign-in')).toBe('Passkey sign-in: failed - verification failed - passkey not accepted');
      expect((await output()).code).toBe(403);
      expect(violations).toEqual([]);
    }, 120_000);

    /** The code an authenticator app shows at the server's (injected) clock, computed by otpauth, not by Gatehouse. */
    const codeAt = (secret: string, stepsFromNow = 0) => totpAt(test, secret, stepsFromNow);

    it('signs in a user with TOTP on: password, then the code (a wrong one refused on the same ticket), then adds a passkey on that sign-in', async () => {
      const email = 'totp-browser@example.com';
      const user = await signedInUser(test.app, email);
      // Each code is accepted once: enableTotp moves to the next 30 s step, whose code the sign-in uses.
      const { secret, recoveryCodes } = await enableTotp(test, { email, token: user.token });
      const tickets = () => test.deps.db.selectFrom('mfa_tickets').selectAll().where('user_id', '=', user.id).execute();

      await page.goto(`${origin}/passkeys/demo`);
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple');
      const codeField = page.getByLabel('Two-factor code, if it is on for this account: from your authenticator app, or a recovery code', { exact: true });
      const signIn = page.getByRole('button', { name: 'Sign in', exact: true });
      // No code typed yet: the page says one is needed (not "token is missing"), and keeps the ticket.
      await signIn.click();
      expect(await status('Password sign-in')).toBe(
        'Password sign-in: two-factor authentication is on - type a code from your authenticator app (or a recovery code), then sign in again',
      );
      expect((await output()).data).toMatchObject({ mfa_required: true, mfa_ticket: expect.any(String) });
      expect(await page.evaluate<string>("document.activeElement ? document.activeElement.id : ''")).toBe('login-code'); // a string: no DOM types here

      // A wrong code (none of the steps the server accepts): a clear failure; the ticket is kept for another try.
      const accepted = new Set([-1, 0, 1].map((step) => codeAt(secret, step)));
      let wrong = codeAt(secret);
      while (accepted.has(wrong)) wrong = String((Number(wrong) + 111_111) % 1_000_000).padStart(6, '0');
      await codeField.fill(wrong);
      await signIn.click();
      expect(await status('Password sign-in')).toBe(
        'Password sign-in: failed - verification failed - incorrect code - type the code your app shows now (or a recovery code), then sign in again',
      );
      expect((await output()).code).toBe(403);

      // The right code finishes the same sign-in: one ticket, two tries (no second password step).
      await codeField.fill(codeAt(secret));
      await signIn.click();
      expect(await status('Password sign-in')).toBe('Password sign-in: done');
      const signedIn = await output();
      expect(decodeJwt(signedIn.token).amr).toEqual(['pwd', 'otp', 'mfa']);
      expect(signedIn.data.email).toBe(email);
      const spent = await tickets();
      expect(spent).toHaveLength(1);
      expect(Number(spent[0]!.attempts)).toBe(2);
      expect(spent[0]!.used_at).not.toBeNull();
      const me = await test.app.inject({ method: 'GET', url: '/me', headers: bearer(signedIn.token) });
      expect(json(me).data.email).toBe(email);

      // With TOTP on, adding a passkey needs a recent sign-in with a second factor: this one is, so no password is asked.
      await page.getByLabel('Name of the new passkey').fill('After TOTP');
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      expect(await status('Add a passkey')).toBe('Add a passkey: done');
      expect((await output()).data.name).toBe('After TOTP');
      await expect.poll(() => page.locator('#passkey-list li').count()).toBe(1);
      expect((await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials).toHaveLength(1);

      // A new page, the code typed with the password: one click (a recovery code works as well).
      await page.goto(`${origin}/passkeys/demo`);
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple');
      await codeField.fill(recoveryCodes[0]!);
      await signIn.click();
      expect(await status('Password sign-in')).toBe('Password sign-in: done');
      expect(decodeJwt((await output()).token).amr).toEqual(['pwd', 'mfa']);
      await expect.poll(() => page.locator('#passkey-list li').count()).toBe(1);
      expect(violations).toEqual([]);
    }, 120_000);
  });
});
