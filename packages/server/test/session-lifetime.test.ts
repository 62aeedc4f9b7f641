import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { purgeExpired } from '../src/background/tasks.ts';
import { fixedClock } from '../src/clock.ts';
import { expectErrorEnvelope, json, openTestApp, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

const DAY = 86400;
const ACCESS_TTL = 900;
const MARGIN = 60;

function refresh(app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } });
}

function getMe(app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
}

async function expectRefreshRefused(app: FastifyInstance, refreshToken: string) {
  expectErrorEnvelope(await refresh(app, refreshToken), 401, 'refresh failed - token is invalid');
}

function sessionIdOf(accessToken: string): string {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).sid;
}

function purge(test: TestApp) {
  return purgeExpired({ db: test.deps.db, clock: test.clock, denylist: test.deps.denylist, accessTokenTtlSeconds: ACCESS_TTL });
}

describe.each(testDialects())('session lifetime [%s]', (dialect) => {
  const opened: TestApp[] = [];
  afterEach(async () => {
    // Instances on a shared database close first; the owner (first) drops the database last.
    for (const test of opened.reverse()) await test.close();
    opened.length = 0;
  });
  async function start(env: Record<string, string> = {}) {
    const test = await startTestApp(dialect, env);
    opened.push(test);
    return test;
  }

  it('slides by REFRESH_TOKEN_TTL but ends SESSION_MAX_AGE (90 days) after login, however often it is refreshed', async () => {
    const test = await start();
    const user = await signedInUser(test.app, 'every-29-days@example.com');
    let refreshToken = user.refreshToken;
    for (const days of [29, 29, 29]) {
      test.clock.advanceSeconds(days * DAY);
      const response = await refresh(test.app, refreshToken);
      expect(response.statusCode, response.body).toBe(201);
      refreshToken = json(response).refresh_token;
    }
    // Day 87 + 3 days - 1 s: still inside the absolute limit.
    test.clock.advanceSeconds(3 * DAY - 1);
    const last = await refresh(test.app, refreshToken);
    expect(last.statusCode, last.body).toBe(201);
    expect((await getMe(test.app, json(last).token)).statusCode).toBe(200);
    // Day 90: over, although the last refresh was a second ago.
    test.clock.advanceSeconds(1);
    await expectRefreshRefused(test.app, json(last).refresh_token);
    const [session] = await test.deps.db.selectFrom('sessions').select(['created_at', 'expires_at']).execute();
    expect(Number(session!.expires_at) - Number(session!.created_at)).toBe(90 * DAY);
  });

  it('a session idle for longer than REFRESH_TOKEN_TTL (31 days) is over', async () => {
    const test = await start();
    const user = await signedInUser(test.app, 'idle@example.com');
    test.clock.advanceSeconds(10 * DAY);
    const renewed = json(await refresh(test.app, user.refreshToken));
    test.clock.advanceSeconds(31 * DAY);
    await expectRefreshRefused(test.app, renewed.refresh_token);
  });

  it('a SESSION_MAX_AGE shorter than the refresh lifetime caps the first refresh token too', async () => {
    const test = await start({ SESSION_MAX_AGE: '1h' });
    const user = await signedInUser(test.app, 'short@example.com');
    test.clock.advanceSeconds(3599);
    const renewed = await refresh(test.app, user.refreshToken);
    expect(renewed.statusCode).toBe(201);
    test.clock.advanceSeconds(1);
    await expectRefreshRefused(test.app, json(renewed).refresh_token);
    const tokens = await test.deps.db.selectFrom('refresh_tokens').select('expires_at').execute();
    for (const token of tokens) expect(Number(token.expires_at)).toBe(test.clock.nowSeconds());
  });

  it('a lowered SESSION_MAX_AGE applies to sessions started before the change', async () => {
    const first = await start({ SESSION_MAX_AGE: '7d' });
    const user = await signedInUser(first.app, 'lowered@example.com');
    await first.app.close();
    await first.deps.close();
    opened.pop();
    const second = await openTestApp(first.database, { SESSION_MAX_AGE: '1d' }, first.clock);
    try {
      first.clock.advanceSeconds(DAY);
      await expectRefreshRefused(second.app, user.refreshToken);
    } finally {
      await second.close();
      await first.database.drop();
    }
  });

  it('keeps a revoked session (and its denylist entry, across a restart) until its last access token expired, then purges it', async () => {
    const test = await start();
    const user = await signedInUser(test.app, 'purge-revoked@example.com');
    const sessionId = sessionIdOf(user.token);
    await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': user.token } });

    // Revoked at T; a token issued just after it lives until T + ACCESS_TOKEN_TTL + the margin.
    test.clock.advanceSeconds(ACCESS_TTL + MARGIN);
    expect((await purge(test)).sessionsDeleted).toBe(0);
    await test.restart();
    expect(test.deps.denylist.isRevoked(sessionId)).toBe(true);

    test.clock.advanceSeconds(1);
    expect((await purge(test)).sessionsDeleted).toBe(1);
    expect(test.deps.denylist.isRevoked(sessionId)).toBe(false);
    expect(await test.deps.db.selectFrom('sessions').select('id').execute()).toEqual([]);
    expect(await test.deps.db.selectFrom('refresh_tokens').select('token_hash').execute()).toEqual([]);
  });

  it('keeps an expired session until a token issued at its last moment has expired, then purges it', async () => {
    const test = await start();
    await signedInUser(test.app, 'purge-expired@example.com');
    const live = await signedInUser(test.app, 'purge-live@example.com');
    test.clock.advanceSeconds(29 * DAY);
    const renewed = json(await refresh(test.app, live.refreshToken));
    // The idle session expired at T + 30 days; a token refreshed at that moment lives ACCESS_TOKEN_TTL more.
    test.clock.advanceSeconds(DAY + ACCESS_TTL + MARGIN);
    expect((await purge(test)).sessionsDeleted).toBe(0);
    test.clock.advanceSeconds(1);
    expect((await purge(test)).sessionsDeleted).toBe(1);
    expect((await refresh(test.app, renewed.refresh_token)).statusCode).toBe(201);
  });

  it('refuses an access token issued after the revocation by an instance whose clock runs 30 s ahead, until it expires', async () => {
    const a = await start();
    const b = await openTestApp(a.database, {}, fixedClock(new Date(a.clock.now().getTime() + 30_000)));
    opened.push(b);
    const user = await signedInUser(a.app, 'skewed@example.com');
    // Instance B refreshes (its clock says T + 30 s); instance A then revokes the session at T.
    const fromB = json(await refresh(b.app, user.refreshToken));
    expect((await a.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': user.token } })).statusCode).toBe(200);

    // T + 905 s on A: B's token (exp T + 930) is not expired yet and must still be refused,
    a.clock.advanceSeconds(ACCESS_TTL + 5);
    b.clock.advanceSeconds(ACCESS_TTL - 30); // T + 900 s on B (its token is still alive there)
    expectErrorEnvelope(await getMe(a.app, fromB.token), 401, 'auth failed - token has been revoked');
    // after the purge pruned the denylist,
    await purge(a);
    expectErrorEnvelope(await getMe(a.app, fromB.token), 401, 'auth failed - token has been revoked');
    // and by a freshly started instance that rebuilt its denylist from the database.
    await a.restart();
    expectErrorEnvelope(await getMe(a.app, fromB.token), 401, 'auth failed - token has been revoked');
    await b.deps.denylist.sync();
    expectErrorEnvelope(await getMe(b.app, fromB.token), 401, 'auth failed - token has been revoked');

    a.clock.advanceSeconds(25);
    expectErrorEnvelope(await getMe(a.app, fromB.token), 401, 'auth failed - token has expired');
  });
});
