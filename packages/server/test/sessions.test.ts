import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { purgeExpired } from '../src/background/tasks.ts';
import { json, loginUser, signedInUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';

function refresh(app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } });
}

function getUsers(app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/users', headers: { authorization: `Bearer ${token}` } });
}

function expectRefreshRefused(response: Awaited<ReturnType<typeof refresh>>) {
  expect(response.statusCode).toBe(401);
  expect(json(response)).toEqual({ status: false, code: 401, message: 'refresh failed - token is invalid', data: null });
  expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
}

function expectRevoked(response: Awaited<ReturnType<typeof getUsers>>) {
  expect(response.statusCode).toBe(401);
  expect(json(response).message).toBe('auth failed - token has been revoked');
  expect(response.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
}

describe.each(testDialects())('sessions [%s]', (dialect) => {
  let test: TestApp;
  beforeEach(async () => {
    test = await startTestApp(dialect);
  });
  afterEach(() => test.close());

  it('rotates through a chain of refreshes, each token single-use, the session kept', async () => {
    const first = await signedInUser(test.app, 'chain@example.com');
    let current = first.refreshToken;
    const seen = new Set([current]);
    let sessionId: string | undefined;
    for (let step = 0; step < 5; step += 1) {
      test.clock.advanceSeconds(60);
      const response = await refresh(test.app, current);
      expect(response.statusCode).toBe(201);
      expect(response.headers['cache-control']).toBe('no-store');
      const body = json(response);
      expect(body).toMatchObject({ status: true, code: 201, token_type: 'Bearer', data: { email: 'chain@example.com' } });
      expect(seen.has(body.refresh_token)).toBe(false);
      seen.add(body.refresh_token);
      const claims = JSON.parse(Buffer.from(body.token.split('.')[1], 'base64url').toString());
      sessionId ??= claims.sid;
      expect(claims.sid).toBe(sessionId);
      expect((await getUsers(test.app, body.token)).statusCode).toBe(200);
      current = body.refresh_token;
    }
  });

  it('reuse of a token two rotations old revokes the whole session', async () => {
    const user = await signedInUser(test.app, 'reuse@example.com');
    const second = json(await refresh(test.app, user.refreshToken));
    test.clock.advanceSeconds(1);
    const third = json(await refresh(test.app, second.refresh_token));
    test.clock.advanceSeconds(1);

    expectRefreshRefused(await refresh(test.app, user.refreshToken));
    // The family is dead: the newest refresh token and the session's access tokens too.
    expectRefreshRefused(await refresh(test.app, third.refresh_token));
    expectRevoked(await getUsers(test.app, third.token));
    expectRevoked(await getUsers(test.app, user.token));
  });

  it('a retry within the grace window returns the same child; after the window it is reuse', async () => {
    const user = await signedInUser(test.app, 'grace@example.com');
    const first = json(await refresh(test.app, user.refreshToken));
    test.clock.advanceSeconds(9);
    const retry = await refresh(test.app, user.refreshToken);
    expect(retry.statusCode).toBe(201);
    expect(json(retry).refresh_token).toBe(first.refresh_token);

    test.clock.advanceSeconds(2); // 11 s after the spend: past REFRESH_REUSE_GRACE=10
    expectRefreshRefused(await refresh(test.app, user.refreshToken));
    expectRefreshRefused(await refresh(test.app, first.refresh_token));
  });

  it('the grace ends once the child has been used', async () => {
    const user = await signedInUser(test.app, 'grace-used@example.com');
    const child = json(await refresh(test.app, user.refreshToken));
    const grandchild = await refresh(test.app, child.refresh_token);
    expect(grandchild.statusCode).toBe(201);
    // Still within 10 s of the first spend, but its child is spent: plain reuse.
    expectRefreshRefused(await refresh(test.app, user.refreshToken));
    expectRefreshRefused(await refresh(test.app, json(grandchild).refresh_token));
  });

  it('10 parallel refreshes of one token yield one child and no error', async () => {
    const user = await signedInUser(test.app, 'parallel@example.com');
    const responses = await Promise.all(Array.from({ length: 10 }, () => refresh(test.app, user.refreshToken)));
    expect(responses.map((response) => response.statusCode)).toEqual(Array(10).fill(201));
    const children = new Set(responses.map((response) => json(response).refresh_token));
    expect(children.size).toBe(1);
    const [child] = [...children];
    const next = await refresh(test.app, child!);
    expect(next.statusCode).toBe(201);
    const live = await test.deps.db.selectFrom('refresh_tokens').select('token_hash').where('used_at', 'is', null).execute();
    expect(live).toHaveLength(1);
  });

  it('logout revokes this session only; the other sessions keep working', async () => {
    const first = await signedInUser(test.app, 'two-devices@example.com');
    const secondLogin = json(await loginUser(test.app, 'two-devices@example.com'));
    const logout = await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': first.token } });
    expect(logout.statusCode).toBe(200);
    expect(json(logout)).toEqual({ status: true, code: 200, message: 'logged out', data: null });

    expectRevoked(await getUsers(test.app, first.token));
    expectRefreshRefused(await refresh(test.app, first.refreshToken));
    expect((await getUsers(test.app, secondLogin.token)).statusCode).toBe(200);
    expect((await refresh(test.app, secondLogin.refresh_token)).statusCode).toBe(201);
  });

  it('logout with {"all": true} revokes every session of the user, not other users', async () => {
    const first = await signedInUser(test.app, 'everywhere@example.com');
    const second = json(await loginUser(test.app, 'everywhere@example.com'));
    const other = await signedInUser(test.app, 'bystander@example.com');
    const logout = await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': first.token }, payload: { all: true } });
    expect(logout.statusCode).toBe(200);
    expectRevoked(await getUsers(test.app, second.token));
    expectRefreshRefused(await refresh(test.app, second.refresh_token));
    expect((await getUsers(test.app, other.token)).statusCode).toBe(200);
  });

  it('logout needs a valid token and a well-formed body', async () => {
    const missing = await test.app.inject({ method: 'POST', url: '/logout' });
    expect(missing.statusCode).toBe(401);
    expect(json(missing).message).toBe('auth failed - token is missing');
    const user = await signedInUser(test.app, 'bad-logout@example.com');
    const bad = await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': user.token }, payload: { all: 'yes' } });
    expect(bad.statusCode).toBe(400);
  });

  it('a password change keeps this session, revokes the others, and the new password works', async () => {
    const current = await signedInUser(test.app, 'changer@example.com');
    const other = json(await loginUser(test.app, 'changer@example.com'));
    const change = (body: object) =>
      test.app.inject({ method: 'POST', url: '/me/password', headers: { 'x-access-token': current.token }, payload: body });

    const wrong = await change({ current_password: 'not my password at all', new_password: 'a brand new long passphrase' });
    expect(wrong.statusCode).toBe(403);
    const weak = await change({ current_password: STRONG_PASSWORD, new_password: 'short' });
    expect(weak.statusCode).toBe(400);
    expect(json(weak).message).toMatch(/^invalid request - new_password must be at least 15 characters/);

    const changed = await change({ current_password: STRONG_PASSWORD, new_password: 'a brand new long passphrase' });
    expect(changed.statusCode).toBe(200);
    expect(json(changed).message).toBe('password changed');

    expect((await getUsers(test.app, current.token)).statusCode).toBe(200);
    expectRevoked(await getUsers(test.app, other.token));
    expectRefreshRefused(await refresh(test.app, other.refresh_token));
    expect((await loginUser(test.app, 'changer@example.com')).statusCode).toBe(403);
    expect((await loginUser(test.app, 'changer@example.com', 'a brand new long passphrase')).statusCode).toBe(201);
  });

  it('a new password equal to the current one is refused with 400, and nothing changes', async () => {
    const current = await signedInUser(test.app, 'same-again@example.com');
    const other = json(await loginUser(test.app, 'same-again@example.com'));
    const same = await test.app.inject({
      method: 'POST',
      url: '/me/password',
      headers: { 'x-access-token': current.token },
      payload: { current_password: STRONG_PASSWORD, new_password: STRONG_PASSWORD },
    });
    expect(same.statusCode).toBe(400);
    expect(json(same)).toMatchObject({
      status: false,
      code: 400,
      message: 'invalid request - new_password must differ from current_password',
      data: { errors: [{ field: 'new_password', message: 'new_password must differ from current_password' }] },
    });
    // Refused before anything was written: the other session lives on and the password is as it was.
    expect((await getUsers(test.app, other.token)).statusCode).toBe(200);
    expect((await refresh(test.app, other.refresh_token)).statusCode).toBe(201);
    expect((await loginUser(test.app, 'same-again@example.com')).statusCode).toBe(201);
  });

  it('access tokens expire at ACCESS_TOKEN_TTL, refresh tokens at REFRESH_TOKEN_TTL', async () => {
    const user = await signedInUser(test.app, 'expiry@example.com');
    test.clock.advanceSeconds(899);
    expect((await getUsers(test.app, user.token)).statusCode).toBe(200);
    test.clock.advanceSeconds(1);
    const expired = await getUsers(test.app, user.token);
    expect(expired.statusCode).toBe(401);
    expect(json(expired).message).toBe('auth failed - token has expired');

    const renewed = json(await refresh(test.app, user.refreshToken));
    test.clock.advanceSeconds(30 * 24 * 3600);
    expectRefreshRefused(await refresh(test.app, renewed.refresh_token));
  });

  it('a disabled user can neither refresh nor use a live session', async () => {
    const user = await signedInUser(test.app, 'disabled@example.com');
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    expectRefreshRefused(await refresh(test.app, user.refreshToken));
    expectRevoked(await getUsers(test.app, user.token));
  });

  it('a user disabled elsewhere is refused within a second, without a query per request', async () => {
    const user = await signedInUser(test.app, 'disabled-later@example.com');
    expect((await getUsers(test.app, user.token)).statusCode).toBe(200);
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    // Another instance or a manual UPDATE: this process trusts its one-second-old answer...
    expect((await getUsers(test.app, user.token)).statusCode).toBe(200);
    // ...and no longer.
    test.clock.advanceSeconds(1);
    expectRevoked(await getUsers(test.app, user.token));
  });

  it("a revoked session's access token stays refused after a restart", async () => {
    const user = await signedInUser(test.app, 'restart@example.com');
    await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': user.token } });
    await test.restart();
    expectRevoked(await getUsers(test.app, user.token));
  });

  it('revocations made by another instance arrive with the next sync', async () => {
    const user = await signedInUser(test.app, 'elsewhere@example.com');
    // Another instance revoked the session directly in the shared database.
    await test.deps.db.updateTable('sessions').set({ revoked_at: test.clock.nowSeconds(), revoked_reason: 'logout' }).execute();
    expect((await getUsers(test.app, user.token)).statusCode).toBe(200);
    await test.deps.denylist.sync();
    expectRevoked(await getUsers(test.app, user.token));
  });

  it('refuses malformed, unknown and wrongly typed refresh tokens without a 500', async () => {
    for (const payload of [{ refresh_token: 'x' }, { refresh_token: 'A'.repeat(43) }, { refresh_token: "' OR 1=1 --" }]) {
      expectRefreshRefused(await test.app.inject({ method: 'POST', url: '/token/refresh', payload }));
    }
    const wrongType = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: 42 } });
    expect(wrongType.statusCode).toBe(400);
    // An access token is not a refresh token, and the reverse.
    const user = await signedInUser(test.app, 'confused@example.com');
    expectRefreshRefused(await refresh(test.app, user.token));
    expect((await getUsers(test.app, user.refreshToken)).statusCode).toBe(401);
  });

  it('purges expired sessions and tokens and shrinks the denylist, keeping live ones', async () => {
    const old = await signedInUser(test.app, 'old@example.com');
    await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': old.token } });
    expect(test.deps.denylist.size).toBe(1);
    test.clock.advanceSeconds(30 * 24 * 3600 + 901);
    const fresh = await signedInUser(test.app, 'fresh@example.com');
    const report = await purgeExpired({ db: test.deps.db, clock: test.clock, denylist: test.deps.denylist, accessTokenTtlSeconds: 900 });
    expect(report.sessionsDeleted).toBe(1);
    expect(test.deps.denylist.size).toBe(0);
    expect(await test.deps.db.selectFrom('sessions').select('id').execute()).toHaveLength(1);
    expect((await refresh(test.app, fresh.refreshToken)).statusCode).toBe(201);
  });
});
