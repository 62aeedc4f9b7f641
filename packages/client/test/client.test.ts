/**
 * @gatehouse/client against a live Gatehouse over real HTTP (a listening test app), on both
 * dialects. The server counts the requests it receives, so "one refresh" is the server's word; its
 * clock and the client's are injected, so expiry needs no waiting. Every exchange is also held to
 * the server's OpenAPI document (the test app's check).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from '../../server/src/clients/clients.ts';
import { startListeningTestApp, STRONG_PASSWORD, testDialects, type TestApp } from '../../server/test/helpers.ts';
import {
  createGatehouseClient,
  GatehouseError,
  isGatehouseError,
  localStorageTokenStorage,
  memoryStorage,
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
    const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { client_id: string; aud: string };
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

  it('says network_error when nothing answers', async () => {
    const closed = await startListeningTestApp(dialect);
    const deadOrigin = closed.origin;
    await closed.test.close();
    const gatehouse = createGatehouseClient({ baseUrl: deadOrigin });
    expect(await failure(gatehouse.login({ email: 'a@example.com', password: STRONG_PASSWORD }))).toMatchObject({ code: 'network_error', status: undefined });
  });
});
