import { performance } from 'node:perf_hooks';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startBackgroundTasks, type BackgroundTasks } from '../src/background/tasks.ts';
import { setClientDisabled } from '../src/clients/clients.ts';
import { REVOCATION_MARGIN_SECONDS } from '../src/tokens/denylist.ts';
import { createRevocationFeed, REVOCATION_FEED_LOG_LIMIT, REVOCATION_FEED_MAX_WAITERS } from '../src/tokens/revocation-feed.ts';
import { basicAuthorization, confidentialClient, sessionIdOf } from './client-helpers.ts';
import { createTestDatabase, expectErrorEnvelope, json, openTestApp, signedInUser, startTestApp, testDialects, testRedis, type TestApp, type TestDatabase } from './helpers.ts';

const ACCESS_TOKEN_TTL = 900;

function feed(app: FastifyInstance, authorization: string | undefined, query: Record<string, string | number> = {}): Promise<LightMyRequestResponse> {
  const search = new URLSearchParams(Object.entries(query).map(([name, value]): [string, string] => [name, String(value)]));
  return app.inject({ method: 'GET', url: `/revocations${search.size ? `?${search}` : ''}`, headers: authorization ? { authorization } : {} });
}

function feedData(response: LightMyRequestResponse): { cursor: string; reset: boolean; revoked: Array<{ sid: string; exp: number }> } {
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['cache-control']).toBe('no-store');
  const body = json(response);
  expect(body).toMatchObject({ status: true, code: 200 });
  return body.data;
}

const logout = (app: FastifyInstance, token: string) => app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${token}` } });

describe.each(testDialects())('GET /revocations [%s]', (dialect) => {
  let test: TestApp;
  let client: string;
  beforeEach(async () => {
    test = await startTestApp(dialect, { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL), REVOCATION_FEED_RATE_LIMIT: '1500' });
    client = await confidentialClient(test);
  });
  afterEach(async () => {
    await test.close();
  });

  it('answers a snapshot of every session still refused, then what is new since a cursor', async () => {
    const first = feedData(await feed(test.app, client));
    expect(first).toMatchObject({ reset: true, revoked: [] });
    expect(first.cursor).toMatch(/^[A-Za-z0-9_-]+\.\d+$/);

    const user = await signedInUser(test.app, 'leaver@example.com');
    const revokedAt = test.clock.nowSeconds();
    expect((await logout(test.app, user.token)).statusCode).toBe(200);
    const refusedUntil = revokedAt + ACCESS_TOKEN_TTL + REVOCATION_MARGIN_SECONDS;

    const delta = feedData(await feed(test.app, client, { since: first.cursor }));
    expect(delta).toEqual({ cursor: expect.any(String), reset: false, revoked: [{ sid: sessionIdOf(user.token), exp: refusedUntil }] });
    expect(delta.cursor).not.toBe(first.cursor);
    // Nothing new since the new cursor; the snapshot still has the session.
    expect(feedData(await feed(test.app, client, { since: delta.cursor }))).toEqual({ cursor: delta.cursor, reset: false, revoked: [] });
    expect(feedData(await feed(test.app, client)).revoked).toEqual([{ sid: sessionIdOf(user.token), exp: refusedUntil }]);

    // Once every token of the session has expired, nobody needs to hear of it.
    test.clock.advanceSeconds(ACCESS_TOKEN_TTL + REVOCATION_MARGIN_SECONDS);
    expect(feedData(await feed(test.app, client)).revoked).toEqual([]);
    expect(feedData(await feed(test.app, client, { since: first.cursor })).revoked).toEqual([]);
  });

  it('a long poll answers as soon as a session is revoked, and after its wait when nothing is', async () => {
    const { cursor } = feedData(await feed(test.app, client));
    const user = await signedInUser(test.app, 'waiter@example.com');
    const startedAt = performance.now();
    const waiting = feed(test.app, client, { since: cursor, wait: 20 });
    setTimeout(() => void logout(test.app, user.token), 100);
    const answer = feedData(await waiting);
    const tookMs = performance.now() - startedAt;
    expect(answer.revoked.map((entry) => entry.sid)).toEqual([sessionIdOf(user.token)]);
    expect(tookMs).toBeLessThan(1000);

    const quietStart = performance.now();
    expect(feedData(await feed(test.app, client, { since: answer.cursor, wait: 1 }))).toEqual({ cursor: answer.cursor, reset: false, revoked: [] });
    expect(performance.now() - quietStart).toBeGreaterThanOrEqual(900);
  });

  it('a cursor of another process or from before a restart gets a snapshot; garbage or a future cursor gets 400', async () => {
    const user = await signedInUser(test.app, 'restart@example.com');
    const { cursor } = feedData(await feed(test.app, client));
    expect((await logout(test.app, user.token)).statusCode).toBe(200);
    const [epoch, sequence] = cursor.split('.') as [string, string];

    for (const since of ['garbage', `${epoch}.${Number(sequence) + 2}`, `${epoch}.-1`, `${epoch}.01`, `${epoch}.1.2`, `.${sequence}`, 'a'.repeat(65), `${epoch}.99999999999999999`]) {
      const refused = expectErrorEnvelope(await feed(test.app, client, { since }), 400, /^invalid request - since/);
      expect(refused.data.errors[0].field).toBe('since');
    }
    expectErrorEnvelope(await feed(test.app, client, { since: '' }), 400);
    expectErrorEnvelope(await feed(test.app, client, { wait: 31 }), 400);
    expectErrorEnvelope(await feed(test.app, client, { wait: 'soon' }), 400);
    expectErrorEnvelope(await feed(test.app, client, { cursor }), 400);

    // Another instance's cursor (another epoch): the whole state, flagged as a reset.
    const other = feedData(await feed(test.app, client, { since: `someoneelse.${sequence}` }));
    expect(other).toMatchObject({ reset: true, revoked: [{ sid: sessionIdOf(user.token) }] });

    await test.restart();
    const afterRestart = feedData(await feed(test.app, client, { since: cursor }));
    expect(afterRestart.reset).toBe(true);
    expect(afterRestart.revoked.map((entry) => entry.sid)).toEqual([sessionIdOf(user.token)]);
    expect(afterRestart.cursor.split('.')[0]).not.toBe(epoch);
  });

  it(`keeps ${REVOCATION_FEED_LOG_LIMIT} revocations for deltas: a cursor the log has passed gets a snapshot`, async () => {
    const { cursor: before } = feedData(await feed(test.app, client));
    // A burst bigger than the log (as a mass logout would make), told to the denylist the way other processes' news is.
    const burst = Array.from({ length: REVOCATION_FEED_LOG_LIMIT + 1 }, (_, index) => `burst-${index}`);
    test.deps.denylist.addSessions(burst, test.clock.nowSeconds());
    const behind = feedData(await feed(test.app, client, { since: before }));
    expect(behind.reset).toBe(true);
    expect(behind.revoked).toHaveLength(burst.length);
    // A cursor still inside the log gets only what is new.
    test.deps.denylist.addSessions(['after-the-burst'], test.clock.nowSeconds());
    expect(feedData(await feed(test.app, client, { since: behind.cursor })).revoked.map((entry) => entry.sid)).toEqual(['after-the-burst']);
  });

  it('refuses everyone but an enabled confidential client with its secret, with one answer', async () => {
    const refusals = [
      undefined,
      'Bearer something',
      'Basic !!!',
      basicAuthorization('orders-service', 'ghcs_wrongwrongwrongwrongwrongwrongwrongwrongwro'),
      basicAuthorization('nobody-here', 'ghcs_wrongwrongwrongwrongwrongwrongwrongwrongwro'),
      // The default public client has no secret: whatever it sends is refused.
      basicAuthorization('gatehouse', 'ghcs_wrongwrongwrongwrongwrongwrongwrongwrongwro'),
      basicAuthorization('gatehouse', ''),
    ];
    for (const authorization of refusals) {
      const refused = await feed(test.app, authorization);
      expectErrorEnvelope(refused, 401, 'client authentication failed');
      expect(refused.headers['www-authenticate']).toMatch(/^Basic realm="gatehouse"/);
    }
    expect(feedData(await feed(test.app, client)).reset).toBe(true);
    await setClientDisabled(test.deps, 'orders-service', true);
    expectErrorEnvelope(await feed(test.app, client), 401, 'client authentication failed');
  });

  it('is documented: client authentication, the query, and every status it answers', async () => {
    const document = json(await test.app.inject({ method: 'GET', url: '/openapi.json' }));
    const operation = document.paths['/revocations'].get;
    expect(operation).toMatchObject({ operationId: 'listRevocations', security: [{ clientBasic: [] }] });
    expect(document.components.securitySchemes.clientBasic).toMatchObject({ type: 'http', scheme: 'basic' });
    expect(Object.keys(operation.responses).sort()).toEqual(['200', '400', '401', '429', '503']);
    expect(operation.parameters.map((parameter: { name: string; required?: boolean }) => [parameter.name, parameter.required ?? false])).toEqual([
      ['since', false],
      ['wait', false],
    ]);
  });

  it('throttles each client at REVOCATION_FEED_RATE_LIMIT requests a minute, apart from the others', async () => {
    const other = await confidentialClient(test, 'billing-service');
    for (let index = 0; index < test.deps.config.limits.revocationFeedPerMinute; index += 1) {
      const answer = await feed(test.app, client);
      if (answer.statusCode !== 200) throw new Error(`request ${index} answered ${answer.statusCode}`);
    }
    const throttled = expectErrorEnvelope(await feed(test.app, client), 429);
    expect(throttled.message).toMatch(/too many requests/);
    expect(Number((await feed(test.app, client)).headers['retry-after'])).toBeGreaterThan(0);
    expect((await feed(test.app, other)).statusCode).toBe(200);
    test.clock.advanceSeconds(60);
    expect((await feed(test.app, client)).statusCode).toBe(200);
  }, 60_000);

  it('lets 100 requests of one client wait; past that its polls are answered at once while other clients still wait; a client that leaves frees its slot; closing answers them all', async () => {
    const other = await confidentialClient(test, 'billing-service');
    const { cursor } = feedData(await feed(test.app, client));
    // app.inject's signal closes the response as a socket that went away would (reply.raw 'close' before the answer).
    const waitWithSignal = (authorization: string, waitSeconds: number) => {
      const leave = new AbortController();
      const answer = test.app.inject({ method: 'GET', url: `/revocations?since=${cursor}&wait=${waitSeconds}`, headers: { authorization }, signal: leave.signal });
      return { leave, answer };
    };
    const perClient = REVOCATION_FEED_MAX_WAITERS / 10;
    const requests = Array.from({ length: perClient + 1 }, () => waitWithSignal(client, 30));
    // One request more than this client's share: exactly one is answered at once (nothing new, 200), the others wait.
    const first = await Promise.race(requests.map(({ answer }, index) => answer.then((response) => ({ response, index }))));
    expect(first.response.statusCode, first.response.body).toBe(200);
    expect(feedData(first.response)).toMatchObject({ reset: false, revoked: [], cursor });
    const waiting = requests.filter((_request, index) => index !== first.index);

    // Another client still waits its full second: one client cannot take every slot.
    const otherStartedAt = performance.now();
    expect((await waitWithSignal(other, 1).answer).statusCode).toBe(200);
    expect(performance.now() - otherStartedAt).toBeGreaterThanOrEqual(900);

    // A client that leaves frees its slot: a new request of the same client waits its second again.
    const [leaver, ...staying] = waiting as [(typeof waiting)[0], ...typeof waiting];
    leaver.leave.abort();
    await expect(leaver.answer).rejects.toThrow();
    const probeStartedAt = performance.now();
    const probe = await waitWithSignal(client, 1).answer;
    expect(probe.statusCode, probe.body).toBe(200);
    expect(performance.now() - probeStartedAt).toBeGreaterThanOrEqual(900);

    // Every waiting request is answered (nothing new) as the app closes, not at the end of its 30 s.
    const closingAt = performance.now();
    await test.app.close();
    const answers = await Promise.all(staying.map(({ answer }) => answer));
    expect(performance.now() - closingAt).toBeLessThan(2000);
    expect(answers.every((answer) => answer.statusCode === 200 && json(answer).data.revoked.length === 0)).toBe(true);
  }, 60_000);

  it('bounds waiting requests in all and per client, answering at once past either bound, and wakes waiters on a revocation', async () => {
    const bounded = createRevocationFeed({ denylist: test.deps.denylist, clock: test.clock }, { maxWaiters: 3, maxWaitersPerClient: 2 });
    try {
      const { cursor } = await bounded.read(undefined);
      const started = performance.now();
      const a1 = bounded.read(cursor, { waitMs: 30_000, waiter: 'a' });
      const a2 = bounded.read(cursor, { waitMs: 30_000, waiter: 'a' });
      expect(await bounded.read(cursor, { waitMs: 30_000, waiter: 'a' })).toMatchObject({ reset: false, revoked: [] }); // a's share is spent
      const b1 = bounded.read(cursor, { waitMs: 30_000, waiter: 'b' });
      expect(await bounded.read(cursor, { waitMs: 30_000, waiter: 'c' })).toMatchObject({ reset: false, revoked: [] }); // every slot is taken
      expect(bounded.waiting).toBe(3);
      expect(bounded.waitingOf('a')).toBe(2);
      expect(performance.now() - started).toBeLessThan(1000);
      test.deps.denylist.addSessions(['woken-session'], test.clock.nowSeconds());
      for (const answer of await Promise.all([a1, a2, b1])) expect(answer.revoked.map((entry) => entry.sid)).toEqual(['woken-session']);
      expect(bounded.waiting).toBe(0);
      expect(bounded.waitingOf('a')).toBe(0);
    } finally {
      bounded.close();
    }
  });
});

const redisUnderTest = testRedis();

describe.each(testDialects())('GET /revocations across two instances on one database [%s]', (dialect) => {
  twoInstanceSuite(dialect, undefined);
});

describe.skipIf(!redisUnderTest).each(testDialects())('GET /revocations across two instances on one database and Redis [redis] [%s]', (dialect) => {
  twoInstanceSuite(dialect, redisUnderTest);
});

/** A long poll on B wakes within a second of a logout on A, through the database sync alone, or through Redis. */
function twoInstanceSuite(dialect: 'sqlite' | 'postgres', redis: { url: string; keyPrefix: string } | undefined) {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let tasks: BackgroundTasks | undefined;
  beforeEach(async () => {
    database = await createTestDatabase(dialect);
    // With Redis the database sync is as slow as allowed and never started: only pub/sub can be in time.
    const env: Record<string, string> = redis ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.keyPrefix, REVOCATION_SYNC_INTERVAL: '60s' } : {};
    a = await openTestApp(database, env);
    b = await openTestApp(database, env, a.clock);
    if (!redis) {
      // main.ts starts these timers; a quarter-second sync stands in for REVOCATION_SYNC_INTERVAL.
      tasks = startBackgroundTasks(
        { ...b.deps, accessTokenTtlSeconds: b.deps.config.jwt.accessTokenTtlSeconds },
        { syncIntervalMs: 250, keyReloadIntervalMs: 3_600_000, purgeIntervalMs: 3_600_000, onError: (error) => console.error(error) },
      );
    }
  });
  afterEach(async () => {
    tasks?.stop();
    await b.close();
    await a.close();
    await database.drop();
  });
  afterAll(async () => {
    if (!redis) return;
    const raw = new Redis(redis.url);
    raw.on('error', () => {});
    for await (const keys of raw.scanStream({ match: `${redis.keyPrefix}*`, count: 500 })) if ((keys as string[]).length > 0) await raw.del(...(keys as string[]));
    await raw.quit();
  });

  it('a long poll on B wakes within a second of a logout on A', async () => {
    const client = await confidentialClient(a);
    const delays: number[] = [];
    for (let trial = 0; trial < 3; trial += 1) {
      const user = await signedInUser(a.app, `roamer${trial}@example.com`);
      const { cursor } = feedData(await feed(b.app, client));
      const waiting = feed(b.app, client, { since: cursor, wait: 10 });
      const loggedOutAt = performance.now();
      expect((await logout(a.app, user.token)).statusCode).toBe(200);
      const answer = feedData(await waiting);
      delays.push(performance.now() - loggedOutAt);
      expect(answer.reset).toBe(false);
      expect(answer.revoked.map((entry) => entry.sid)).toEqual([sessionIdOf(user.token)]);
    }
    console.log(`revocation feed on B after a logout on A (${redis ? 'Redis' : 'database sync every 250 ms'}, ${dialect}): ${delays.map((ms) => ms.toFixed(0)).join(', ')} ms`);
    expect(Math.max(...delays)).toBeLessThan(1000);
  });
}
