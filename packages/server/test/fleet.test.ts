import type { FastifyInstance } from 'fastify';
import { decodeProtectedHeader } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, loginUser, openTestApp, signedInUser, signupUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

function getMe(app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
}

const kidOf = (token: string) => decodeProtectedHeader(token).kid;

/** Two instances of a fleet on one database, with one clock (their clocks agree). */
describe.each(testDialects())('two apps sharing one database [%s]', (dialect) => {
  let one: TestApp;
  let two: TestApp;
  beforeEach(async () => {
    one = await startTestApp(dialect);
    two = await openTestApp(one.database, {}, one.clock);
  });
  afterEach(async () => {
    await two.close();
    await one.close();
  });

  it('a user created on one logs in on the other, and each accepts the tokens of the other', async () => {
    expect((await signupUser(one.app, { email: 'roamer@example.com' })).statusCode).toBe(201);
    const login = await loginUser(two.app, 'roamer@example.com');
    expect(login.statusCode).toBe(201);
    expect((await getMe(one.app, json(login).token)).statusCode).toBe(200);
    const refreshed = await one.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: json(login).refresh_token } });
    expect(refreshed.statusCode).toBe(201);
    expect((await getMe(two.app, json(refreshed).token)).statusCode).toBe(200);
    // Unique emails hold across instances: the database decides.
    expect((await signupUser(two.app, { email: 'ROAMER@example.com' })).statusCode).toBe(409);
  });

  it("a logout on one is refused on the other once the other's denylist has synced", async () => {
    const user = await signedInUser(one.app, 'leaver@example.com');
    expect((await getMe(two.app, user.token)).statusCode).toBe(200);
    expect((await one.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': user.token } })).statusCode).toBe(200);
    expectErrorEnvelope(await getMe(one.app, user.token), 401, 'auth failed - token has been revoked');
    // The other instance learns it from the database: at its next sync (every 5 s), not before.
    expect((await getMe(two.app, user.token)).statusCode).toBe(200);
    one.clock.advanceSeconds(5);
    await two.deps.denylist.sync();
    expectErrorEnvelope(await getMe(two.app, user.token), 401, 'auth failed - token has been revoked');
    // And the refresh token is dead everywhere at once: the database is the source of truth.
    const refresh = await two.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: user.refreshToken } });
    expectErrorEnvelope(refresh, 401, 'refresh failed - token is invalid');
  });

  it('a key rotated by one is used by both from its activation, and old tokens verify on both', async () => {
    const before = await signedInUser(one.app, 'keys@example.com');
    const oldKid = kidOf(before.token);
    const { kid: newKid, activatesAt } = await one.deps.keys.rotate();
    expect(newKid).not.toBe(oldKid);
    // Published now, signing later: until then both keep the old key, the rotating one too.
    for (const app of [one.app, two.app]) expect(kidOf(json(await loginUser(app, 'keys@example.com')).token)).toBe(oldKid);
    one.clock.advanceSeconds(60);
    await two.deps.keys.reload(); // its minute timer
    for (const app of [one.app, two.app]) expect(kidOf(json(await loginUser(app, 'keys@example.com')).token)).toBe(oldKid);
    one.clock.set(new Date(activatesAt * 1000));
    const fromOne = json(await loginUser(one.app, 'keys@example.com')).token;
    const fromTwo = json(await loginUser(two.app, 'keys@example.com')).token;
    expect([kidOf(fromOne), kidOf(fromTwo)]).toEqual([newKid, newKid]);
    expect((await getMe(one.app, fromTwo)).statusCode).toBe(200);
    expect((await getMe(two.app, fromOne)).statusCode).toBe(200);
    for (const app of [one.app, two.app]) expect((await getMe(app, before.token)).statusCode).toBe(200);
    const jwks = json(await two.app.inject({ method: 'GET', url: '/.well-known/jwks.json' }));
    expect(jwks.keys.map((key: { kid: string }) => key.kid).sort()).toEqual([oldKid, newKid].sort());
  });

  it('a token with an unknown kid makes the instance reload its keys at once, at most once per 10 s', async () => {
    await signupUser(one.app, { email: 'kid@example.com' });
    // Instance two rotates at once (rotate --now); a token it signs reaches instance one before one's minute timer.
    await two.deps.keys.rotate({ immediately: true });
    const second = json(await loginUser(two.app, 'kid@example.com')).token;
    expect((await getMe(one.app, second)).statusCode).toBe(200);

    // Another rotation within 10 s: the unknown kid does not send instance one to the database again...
    one.clock.advanceSeconds(9);
    await two.deps.keys.rotate({ immediately: true });
    const third = json(await loginUser(two.app, 'kid@example.com')).token;
    expectErrorEnvelope(await getMe(one.app, third), 401, 'auth failed - token is invalid');
    // ...until the 10 s are up.
    one.clock.advanceSeconds(1);
    expect((await getMe(one.app, third)).statusCode).toBe(200);
  });
});
