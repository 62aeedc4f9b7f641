/**
 * @gatehouse/client against a live Gatehouse over real HTTP (a listening test app), on both
 * dialects. The server counts the requests it receives, so "one refresh" is the server's word; its
 * clock and the client's are injected, so expiry needs no waiting. Every exchange is also held to
 * the server's OpenAPI document (the test app's check).
 */
import { Secret, TOTP } from 'otpauth';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from '../../server/src/clients/clients.ts';
import { markEmailVerified, startListeningTestApp, STRONG_PASSWORD, testDialects, type TestApp } from '../../server/test/helpers.ts';
import {
  createGatehouseClient,
  GatehouseError,
  isGatehouseError,
  localStorageTokenStorage,
  memoryStorage,
  MfaRequiredError,
  type GatehouseClient,
  type GatehouseClientOptions,
  type StorageLike,
  type UserPage,
} from '../src/index.ts';

const TTL = 900;
const REFRESH = 'POST /token/refresh';

/** What a rejected promise was rejected with, for toMatchObject. */
async function failure(promise: Promise<unknown>): Promise<GatehouseError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(GatehouseError);
    return error as GatehouseError;
  }
  throw new Error('expected a GatehouseError, but the call succeeded');
}

/** The MfaRequiredError login() threw. */
async function mfaRequired(promise: Promise<unknown>): Promise<MfaRequiredError> {
  const error = await failure(promise);
  expect(error).toBeInstanceOf(MfaRequiredError);
  return error as MfaRequiredError;
}

/** The code an authenticator app shows at the server's clock (computed by otpauth, not by Gatehouse). */
function codeAt(test: TestApp, secret: string, stepsFromNow = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: test.clock.now().getTime() + stepsFromNow * 30_000 });
}

/** Six digits that no step the server accepts now (one either side) would show. */
function wrongCodeAt(test: TestApp, secret: string): string {
  const near = [-1, 0, 1].map((steps) => codeAt(test, secret, steps));
  return ['000000', '111111', '222222', '333333'].find((code) => !near.includes(code))!;
}

/**
 * Turns TOTP on for the signed-in user of this client over the HTTP API (enrol, then confirm with a
 * code), then moves the server's clock to the next 30 s step: each code is accepted once.
 */
async function enableTotp(test: TestApp, gatehouse: GatehouseClient): Promise<{ secret: string; recoveryCodes: string[] }> {
  const enrolment = await gatehouse.request<{ data: { secret: string } }>('/me/mfa/totp', { method: 'POST' });
  const secret = enrolment.data.secret;
  const confirmed = await gatehouse.request<{ message: string; data: { recovery_codes: string[] } }>('/me/mfa/totp/confirm', {
    method: 'POST',
    body: { code: codeAt(test, secret) },
  });
  expect(confirmed.message).toBe('two-factor authentication enabled');
  test.clock.advanceSeconds(30);
  return { secret, recoveryCodes: confirmed.data.recovery_codes };
}

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string; client_id: string; aud: string; amr: string[] };

/** A Web Storage stand-in for Node 20, which has no localStorage. */
function webStorage(): StorageLike & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return { items, getItem: (key) => items.get(key) ?? null, setItem: (key, value) => void items.set(key, value), removeItem: (key) => void items.delete(key) };
}

describe.each(testDialects())('@gatehouse/client against a live Gatehouse [%s]', (dialect) => {
  let test: TestApp;
  let origin: string;
  let hits = new Map<string, number>();
  let serial = 0;

  beforeAll(async () => {
    ({ test, origin } = await startListeningTestApp(dialect));
    // The server's own count of what it was sent, path without the query.
    test.app.server.on('request', (request: { method?: string; url?: string }) => {
      const key = `${request.method} ${request.url?.split('?')[0]}`;
      hits.set(key, (hits.get(key) ?? 0) + 1);
    });
  });
  beforeEach(() => {
    hits = new Map();
  });
  afterEach(() => {
    expect(test.openapi.takeProblems()).toEqual([]);
  });
  afterAll(() => test.close());

  const count = (key: string) => hits.get(key) ?? 0;
  const total = () => [...hits.values()].reduce((sum, n) => sum + n, 0);
  const serverNow = () => test.clock.now().getTime();
  const client = (options: Partial<GatehouseClientOptions> = {}) => createGatehouseClient({ baseUrl: origin, now: serverNow, ...options });

  /** A new account, signed in on a new client. */
  async function signedIn(options: Partial<GatehouseClientOptions> = {}) {
    const email = `client-${++serial}@example.com`;
    const gatehouse = client(options);
    await gatehouse.signup({ name: 'Client User', email, password: STRONG_PASSWORD });
    await gatehouse.login({ email, password: STRONG_PASSWORD });
    hits = new Map();
    return { gatehouse, email };
  }

  it('signs in through its own client for another API when given clientId and audience, and refreshes keep both', async () => {
    const id = `spa-${dialect}-${++serial}`;
    await createClient(test.deps, { id, name: 'Web app', type: 'public', audiences: ['https://orders.example'] });
    const { gatehouse } = await signedIn({ clientId: id, audience: 'https://orders.example' });
    expect(claimsOf(await gatehouse.accessToken())).toMatchObject({ client_id: id, aud: 'https://orders.example' });
    await gatehouse.refresh();
    expect(count(REFRESH)).toBe(1);
    expect(claimsOf(await gatehouse.accessToken())).toMatchObject({ client_id: id, aud: 'https://orders.example' });
    // An audience the client was not registered for is refused at login.
    const refused = await failure(client({ clientId: id, audience: 'https://billing.example' }).login({ email: 'nobody@example.com', password: STRONG_PASSWORD }));
    expect(refused.status).toBe(400);
  });

  it('sends the access token only to Gatehouse: request() refuses a path that would leave baseUrl', async () => {
    const { gatehouse } = await signedIn();
    for (const path of ['.evil.example/steal', '//evil.example/steal', 'me', '@evil.example/']) {
      expect((await failure(gatehouse.request(path))).code).toBe('invalid_request');
    }
    expect(total()).toBe(0);
    expect(await gatehouse.request('/me')).toMatchObject({ status: true });
  });

  it('signs up, logs in, reads /me, changes the password, refreshes and logs out', async () => {
    const gatehouse = client();
    const email = `client-flow-${++serial}@example.com`;
    const created = await gatehouse.signup({ name: 'Flow User', email, password: STRONG_PASSWORD });
    expect(created).toMatchObject({ name: 'Flow User', email, roles: ['user'] });
    expect(await gatehouse.isSignedIn()).toBe(false);

    const user = await gatehouse.login({ email, password: STRONG_PASSWORD });
    expect(user).toEqual({ id: created.id, email, name: 'Flow User' });
    expect(await gatehouse.me()).toEqual(created);

    const newPassword = 'velvet harbor comet quince 7';
    await gatehouse.changePassword({ current_password: STRONG_PASSWORD, new_password: newPassword });
    expect((await gatehouse.me()).id).toBe(created.id);

    const before = await gatehouse.accessToken();
    await gatehouse.refresh();
    expect(await gatehouse.accessToken()).not.toBe(before);
    expect(count(REFRESH)).toBe(1);

    await gatehouse.logout();
    expect(await gatehouse.isSignedIn()).toBe(false);
    await gatehouse.login({ email, password: newPassword });
    expect((await gatehouse.me()).email).toBe(email);
  });

  it('ten concurrent calls with a token the server finds expired send exactly one refresh, and the session lives on', async () => {
    // The client's clock stays put, so it learns of the expiry from the 401s only.
    const loginTime = serverNow();
    const { gatehouse } = await signedIn({ now: () => loginTime });
    test.clock.advanceSeconds(TTL + 1);

    const users = await Promise.all(Array.from({ length: 10 }, () => gatehouse.me()));
    expect(new Set(users.map((user) => user.id)).size).toBe(1);
    expect(count(REFRESH)).toBe(1);
    expect(count('GET /me')).toBe(20); // ten refused, ten retried with the new token

    // No reuse detection fired: the session still refreshes and serves.
    await gatehouse.refresh();
    await gatehouse.me();
    expect(count(REFRESH)).toBe(2);
  });

  it('refreshes shortly before expiry, once for ten concurrent calls, before sending any of them', async () => {
    const { gatehouse } = await signedIn();
    test.clock.advanceSeconds(TTL - 50); // inside the 60 s margin; the server still accepts the token
    await Promise.all(Array.from({ length: 10 }, () => gatehouse.me()));
    expect(count(REFRESH)).toBe(1);
    expect(count('GET /me')).toBe(10);
  });

  it('leaves a token far from expiry alone, and refreshes one expired on both clocks before sending it', async () => {
    const { gatehouse } = await signedIn();
    test.clock.advanceSeconds(TTL - 100);
    await gatehouse.me();
    expect(count(REFRESH)).toBe(0);
    test.clock.advanceSeconds(101);
    await gatehouse.me();
    expect(count(REFRESH)).toBe(1);
    expect(count('GET /me')).toBe(2);
  });

  it('logs out: the session is revoked on the server and the tokens are forgotten', async () => {
    const storage = memoryStorage();
    const { gatehouse } = await signedIn({ storage });
    const tokens = (await storage.get())!;
    await gatehouse.logout();
    expect(count('POST /logout')).toBe(1);
    expect(await storage.get()).toBeNull();

    const before = total();
    expect(await failure(gatehouse.me())).toMatchObject({ code: 'not_signed_in', status: undefined });
    expect(total()).toBe(before); // nothing was sent

    const me = await fetch(`${origin}/me`, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
    expect(me.status).toBe(401);
    const refresh = await fetch(`${origin}/token/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: tokens.refreshToken }),
    });
    expect(refresh.status).toBe(401);
  });

  it('logs out with an expired access token by refreshing it first', async () => {
    const { gatehouse } = await signedIn();
    test.clock.advanceSeconds(TTL + 1);
    await gatehouse.logout();
    expect(count(REFRESH)).toBe(1);
    expect(count('POST /logout')).toBe(1);
    expect(await gatehouse.isSignedIn()).toBe(false);
  });

  it('logout({ all: true }) ends every session; another client learns at its next call that its session ended', async () => {
    const ended: GatehouseError[] = [];
    const { gatehouse: first, email } = await signedIn();
    const second = client({ onSessionEnd: (error) => ended.push(error) });
    await second.login({ email, password: STRONG_PASSWORD });

    await first.logout({ all: true });
    const error = await failure(second.me());
    expect(error).toMatchObject({ code: 'session_ended', status: 401 });
    expect(error.envelope?.message).toBe('refresh failed - token is invalid');
    expect(ended).toEqual([error]);
    expect(await second.isSignedIn()).toBe(false);
  });

  it('two clients sharing one storage (two tabs) refresh concurrently without a reuse lockout', async () => {
    const storage = memoryStorage();
    const { gatehouse: first } = await signedIn({ storage });
    const second = client({ storage });
    test.clock.advanceSeconds(TTL + 1);

    await Promise.all([...Array.from({ length: 5 }, () => first.me()), ...Array.from({ length: 5 }, () => second.me())]);
    expect(count(REFRESH)).toBeGreaterThanOrEqual(1);
    expect(count(REFRESH)).toBeLessThanOrEqual(2);
    // Beyond the server's retry grace, the session still refreshes: no reuse was detected.
    test.clock.advanceSeconds(60);
    await first.refresh();
    await second.me();
  });

  it('types errors: invalid request with field errors, conflict, forbidden, the envelope and Retry-After-less codes', async () => {
    const gatehouse = client();
    const email = `client-errors-${++serial}@example.com`;
    const weak = await failure(gatehouse.signup({ name: 'Weak', email, password: 'password' }));
    expect(weak).toMatchObject({ code: 'invalid_request', status: 400, retryAfterSeconds: undefined });
    expect(weak.fieldErrors.map((problem) => problem.field)).toContain('password');
    expect(weak.envelope).toMatchObject({ status: false, code: 400 });
    expect(isGatehouseError(weak, 'invalid_request')).toBe(true);

    await gatehouse.signup({ name: 'Taken', email, password: STRONG_PASSWORD });
    expect(await failure(gatehouse.signup({ name: 'Taken', email, password: STRONG_PASSWORD }))).toMatchObject({ code: 'conflict', status: 409 });

    const wrong = await failure(gatehouse.login({ email, password: 'not the password at all' }));
    expect(wrong).toMatchObject({ code: 'forbidden', status: 403, message: 'verification failed - incorrect user email or password' });
    expect(wrong.envelope?.data).toEqual({ email });
    expect(await gatehouse.isSignedIn()).toBe(false);
  });

  it('request() calls other protected routes with the same refresh rules', async () => {
    const { gatehouse } = await signedIn();
    test.clock.advanceSeconds(TTL + 1);
    const page = await gatehouse.request<UserPage>('/users?limit=1');
    expect(page.users).toHaveLength(1);
    expect(count(REFRESH)).toBe(1);
    expect(await failure(gatehouse.request('/users?limit=0'))).toMatchObject({ code: 'invalid_request', status: 400 });
  });

  /** A new account with TOTP on (enabled through a client of its own, then logged out). */
  async function withTotp(options: Partial<GatehouseClientOptions> = {}) {
    const { gatehouse, email } = await signedIn(options);
    await markEmailVerified(test, email); // only a proved address may add a sign-in factor
    const factor = await enableTotp(test, gatehouse);
    await gatehouse.logout();
    hits = new Map();
    return { email, ...factor };
  }

  it('two-factor login: login() throws an MfaRequiredError and stores nothing; a wrong code is forbidden; the right one stores the tokens like login()', async () => {
    const { email, secret } = await withTotp();
    const storage = memoryStorage();
    const gatehouse = client({ storage });

    const sentAt = serverNow();
    const required = await mfaRequired(gatehouse.login({ email, password: STRONG_PASSWORD }));
    expect(required).toBeInstanceOf(GatehouseError);
    expect(required).toMatchObject({ name: 'MfaRequiredError', code: 'mfa_required', status: 200, expiresIn: 300, expiresAt: sentAt + 300_000 });
    expect(required.message).toMatch(/two-factor authentication required.*completeMfaLogin/);
    expect(required.message).not.toContain(required.ticket);
    expect(required.ticket).toMatch(/^[\w-]{40,}$/);
    expect(isGatehouseError(required, 'mfa_required')).toBe(true);
    expect(await storage.get()).toBeNull();
    expect(await gatehouse.isSignedIn()).toBe(false);
    expect(count('POST /login')).toBe(1);

    // A wrong code: the server's 403, mapped as every 403 is; still nothing stored.
    const wrong = await failure(gatehouse.completeMfaLogin(required.ticket, wrongCodeAt(test, secret)));
    expect(wrong).toMatchObject({ code: 'forbidden', status: 403, message: 'verification failed - incorrect code', envelope: { status: false, code: 403 } });
    expect(wrong).not.toBeInstanceOf(MfaRequiredError);
    expect(await storage.get()).toBeNull();
    // A code of the wrong shape: 400, not counted.
    expect(await failure(gatehouse.completeMfaLogin(required.ticket, 'abc'))).toMatchObject({ code: 'invalid_request', status: 400 });

    // The right code (on the same ticket: it allows a few tries): the tokens are kept as login() keeps them.
    const user = await gatehouse.completeMfaLogin(required.ticket, codeAt(test, secret));
    expect(user).toMatchObject({ email, name: 'Client User' });
    expect(count('POST /login/mfa')).toBe(3);
    const tokens = (await storage.get())!;
    expect(tokens).toMatchObject({ expiresIn: TTL, expiresAt: serverNow() + TTL * 1000 });
    expect(claimsOf(tokens.accessToken)).toMatchObject({ sub: String(user.id), amr: ['pwd', 'otp', 'mfa'] });
    expect(await gatehouse.me()).toMatchObject({ id: user.id, email });

    // Refresh works with the stored refresh token, and keeps the second factor in the token.
    await gatehouse.refresh();
    expect(count(REFRESH)).toBe(1);
    expect(claimsOf(await gatehouse.accessToken()).amr).toEqual(['pwd', 'otp', 'mfa']);
    test.clock.advanceSeconds(TTL + 1);
    expect((await gatehouse.me()).id).toBe(user.id);
    expect(count(REFRESH)).toBe(2);
  });

  it('two-factor login: a spent ticket is refused as unauthorized, and the session already stored stays', async () => {
    const { email, secret } = await withTotp();
    const storage = memoryStorage();
    const gatehouse = client({ storage });
    const { ticket } = await mfaRequired(gatehouse.login({ email, password: STRONG_PASSWORD }));
    await gatehouse.completeMfaLogin(ticket, codeAt(test, secret));
    const kept = await storage.get();
    test.clock.advanceSeconds(30);

    const reused = await failure(gatehouse.completeMfaLogin(ticket, codeAt(test, secret)));
    expect(reused).toMatchObject({ code: 'unauthorized', status: 401, message: 'auth failed - the MFA ticket is invalid or expired' });
    expect(await storage.get()).toBe(kept);
    expect((await gatehouse.me()).email).toBe(email);
    // No refresh was tried on that 401: completeMfaLogin is not an authenticated call.
    expect(count(REFRESH)).toBe(0);

    // An unknown ticket too; a ticket past its five minutes as well.
    expect(await failure(client().completeMfaLogin('not-a-ticket-at-all', codeAt(test, secret)))).toMatchObject({ code: 'unauthorized', status: 401 });
    const late = await mfaRequired(client().login({ email, password: STRONG_PASSWORD }));
    test.clock.advanceSeconds(late.expiresIn + 1);
    expect(await failure(client().completeMfaLogin(late.ticket, codeAt(test, secret)))).toMatchObject({ code: 'unauthorized', status: 401 });
  });

  it('two-factor login: a recovery code completes it once (amr without otp)', async () => {
    const { email, recoveryCodes } = await withTotp();
    const gatehouse = client();
    const first = await mfaRequired(gatehouse.login({ email, password: STRONG_PASSWORD }));
    const user = await gatehouse.completeMfaLogin(first.ticket, recoveryCodes[0]!);
    expect(user.email).toBe(email);
    expect(claimsOf(await gatehouse.accessToken()).amr).toEqual(['pwd', 'mfa']);
    expect((await gatehouse.me()).id).toBe(user.id);

    // Spent: a new ticket with the same recovery code is refused; another recovery code works.
    const other = client();
    const second = await mfaRequired(other.login({ email, password: STRONG_PASSWORD }));
    expect(await failure(other.completeMfaLogin(second.ticket, recoveryCodes[0]!))).toMatchObject({ code: 'forbidden', status: 403 });
    expect(await other.isSignedIn()).toBe(false);
    await other.completeMfaLogin(second.ticket, recoveryCodes[1]!.toUpperCase());
    expect((await other.me()).id).toBe(user.id);
  });

  it('two-factor login through its own client: completeMfaLogin() sends the clientId the login sent, the session opens for it', async () => {
    const id = `spa-mfa-${dialect}-${++serial}`;
    await createClient(test.deps, { id, name: 'Web app', type: 'public', audiences: ['https://orders.example'] });
    const { email, secret } = await withTotp();
    const gatehouse = client({ clientId: id, audience: 'https://orders.example' });
    const { ticket } = await mfaRequired(gatehouse.login({ email, password: STRONG_PASSWORD }));
    await gatehouse.completeMfaLogin(ticket, codeAt(test, secret));
    expect(claimsOf(await gatehouse.accessToken())).toMatchObject({ client_id: id, aud: 'https://orders.example', amr: ['pwd', 'otp', 'mfa'] });
    await gatehouse.refresh();
    expect(claimsOf(await gatehouse.accessToken())).toMatchObject({ client_id: id, aud: 'https://orders.example' });

    // A ticket won through the default client is refused to this client: its clientId was sent.
    test.clock.advanceSeconds(30);
    const other = await mfaRequired(client().login({ email, password: STRONG_PASSWORD }));
    expect(await failure(client({ clientId: id }).completeMfaLogin(other.ticket, codeAt(test, secret)))).toMatchObject({ code: 'unauthorized', status: 401 });
    await client().completeMfaLogin(other.ticket, codeAt(test, secret));
  });

  it('keeps tokens in localStorage across client instances; damaged storage reads as signed out', async () => {
    const storage = webStorage();
    const { gatehouse, email } = await signedIn({ storage: localStorageTokenStorage({ storage }) });
    expect([...storage.items.keys()]).toEqual(['gatehouse.tokens']);
    const reloaded = client({ storage: localStorageTokenStorage({ storage }) });
    expect((await reloaded.me()).email).toBe(email);

    storage.setItem('gatehouse.tokens', '{"accessToken": 1');
    expect(await reloaded.isSignedIn()).toBe(false);
    await gatehouse.login({ email, password: STRONG_PASSWORD });
    await gatehouse.logout();
    expect(storage.items.size).toBe(0);
  });
});

describe.each(testDialects())('@gatehouse/client when Gatehouse refuses or is away [%s]', (dialect) => {
  let test: TestApp;
  let origin: string;
  beforeAll(async () => {
    ({ test, origin } = await startListeningTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '2' }));
  });
  afterAll(() => test.close());

  it('says rate_limited with the Retry-After the server sent', async () => {
    const gatehouse = createGatehouseClient({ baseUrl: origin });
    const attempts = Array.from({ length: 3 }, () => gatehouse.login({ email: 'nobody@example.com', password: 'whatever it is' }).catch((error: unknown) => error));
    const errors = (await Promise.all(attempts)) as GatehouseError[];
    const limited = errors.find((error) => error.code === 'rate_limited');
    expect(limited).toMatchObject({ status: 429, envelope: { code: 429 } });
    expect(limited!.retryAfterSeconds).toBeGreaterThan(0);
    expect(test.openapi.takeProblems()).toEqual([]);
  });

  it('says rate_limited with Retry-After when wrong second-step codes lock the account', async () => {
    const locking = await startListeningTestApp(dialect, { LOGIN_MAX_FAILURES: '2' });
    try {
      const gatehouse = createGatehouseClient({ baseUrl: locking.origin, now: () => locking.test.clock.now().getTime() });
      const email = 'locked-mfa@example.com';
      await gatehouse.signup({ name: 'Locked', email, password: STRONG_PASSWORD });
      await gatehouse.login({ email, password: STRONG_PASSWORD });
      await markEmailVerified(locking.test, email);
      const { secret } = await enableTotp(locking.test, gatehouse);
      await gatehouse.logout();

      const { ticket } = await mfaRequired(gatehouse.login({ email, password: STRONG_PASSWORD }));
      for (let i = 0; i < 2; i += 1) expect(await failure(gatehouse.completeMfaLogin(ticket, wrongCodeAt(locking.test, secret)))).toMatchObject({ code: 'forbidden' });
      const limited = await failure(gatehouse.completeMfaLogin(ticket, codeAt(locking.test, secret)));
      expect(limited).toMatchObject({ code: 'rate_limited', status: 429, envelope: { code: 429 } });
      expect(limited.retryAfterSeconds).toBeGreaterThan(0);
      expect(await gatehouse.isSignedIn()).toBe(false);
      expect(locking.test.openapi.takeProblems()).toEqual([]);
    } finally {
      await locking.test.close();
    }
  });

  it('says network_error when nothing answers', async () => {
    const closed = await startListeningTestApp(dialect);
    const deadOrigin = closed.origin;
    await closed.test.close();
    const gatehouse = createGatehouseClient({ baseUrl: deadOrigin });
    expect(await failure(gatehouse.login({ email: 'a@example.com', password: STRONG_PASSWORD }))).toMatchObject({ code: 'network_error', status: undefined });
  });
});
