import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startBackgroundTasks, type BackgroundTasks } from '../src/background/tasks.ts';
import { JWKS_MAX_AGE_SECONDS, KEY_ACTIVATION_DELAY_SECONDS, KEY_RELOAD_INTERVAL_SECONDS } from '../src/keys/rotation.ts';
import { json, loginUser, openTestApp, signupUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

const ISSUER = 'http://localhost:2000';
const TTL = 900; // ACCESS_TOKEN_TTL's default
const MARGIN = 60; // the revocation margin a retired key is kept past its last token
const DAY = 86_400;

const kidOf = (token: string) => decodeProtectedHeader(token).kid as string;

async function tokenFrom(app: FastifyInstance, email: string): Promise<string> {
  const login = await loginUser(app, email);
  expect(login.statusCode).toBe(201);
  return json(login).token as string;
}

async function jwksBody(app: FastifyInstance): Promise<string> {
  const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  expect(response.statusCode).toBe(200);
  return response.body;
}

async function publishedKids(app: FastifyInstance): Promise<string[]> {
  return (JSON.parse(await jwksBody(app)) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid).sort();
}

async function meStatus(app: FastifyInstance, token: string): Promise<number> {
  return (await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode;
}

/** A resource server that fetched the JWKS once and verifies locally against those bytes, never refetching. */
function cachingResourceServer(body: string, fetchedAt: number) {
  const keySet = createLocalJWKSet(JSON.parse(body));
  return {
    /** Until when its cache-control lets it keep these bytes. */
    cachedUntil: fetchedAt + JWKS_MAX_AGE_SECONDS,
    async verifies(token: string, at: Date): Promise<boolean> {
      try {
        await jwtVerify(token, keySet, { issuer: ISSUER, audience: 'gatehouse', typ: 'at+jwt', currentDate: at });
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** Two instances on one database with one clock (their clocks agree). */
describe.each(testDialects())('key rotation across instances [%s]', (dialect) => {
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

  it('publishes the next key at once, both sign with it from its activation by the clock, and a cached JWKS never meets an unknown kid', async () => {
    expect((await signupUser(one.app, { email: 'rotor@example.com' })).statusCode).toBe(201);
    const oldKid = kidOf(await tokenFrom(one.app, 'rotor@example.com'));
    const t0 = one.clock.nowSeconds();

    const timeline = await one.deps.keys.rotate();
    expect(timeline).toMatchObject({
      publishedAt: t0,
      activatesAt: t0 + KEY_ACTIVATION_DELAY_SECONDS,
      replaces: [{ kid: oldKid, publishedUntil: t0 + KEY_ACTIVATION_DELAY_SECONDS + TTL + MARGIN }],
    });
    const newKid = timeline.kid;
    // Published by the rotating instance at once; by the other once it has reloaded.
    expect(await publishedKids(one.app)).toEqual([oldKid, newKid].sort());
    expect(await publishedKids(two.app)).toEqual([oldKid]);
    // A resource server fetched from each just then: from two, the worst case, still without the new key.
    const servers = [cachingResourceServer(await jwksBody(one.app), t0), cachingResourceServer(await jwksBody(two.app), t0)];

    // Every moment up to the activation: both sign with the old key; their tokens verify on both
    // instances and on every resource server whose cached JWKS is still fresh.
    const issued: string[] = [];
    let reloaded = false;
    const delay = timeline.activatesAt - t0;
    const moments = [0, 1, 30, KEY_RELOAD_INTERVAL_SECONDS, 120, JWKS_MAX_AGE_SECONDS, JWKS_MAX_AGE_SECONDS + KEY_RELOAD_INTERVAL_SECONDS, delay - 1];
    for (const at of moments.filter((moment) => moment < delay)) {
      one.clock.set(new Date((t0 + at) * 1000));
      if (!reloaded && at >= KEY_RELOAD_INTERVAL_SECONDS) {
        // A resource server that fetched from two just before its minute timer keeps a JWKS without the new key.
        servers.push(cachingResourceServer(await jwksBody(two.app), t0 + at));
        await two.deps.keys.reload();
        reloaded = true;
        expect(await publishedKids(two.app)).toEqual([oldKid, newKid].sort());
      }
      for (const app of [one.app, two.app]) {
        const token = await tokenFrom(app, 'rotor@example.com');
        expect(kidOf(token)).toBe(oldKid);
        issued.push(token);
      }
      for (const token of issued.slice(-2)) {
        for (const app of [one.app, two.app]) expect(await meStatus(app, token)).toBe(200);
        for (const server of servers) {
          if (t0 + at <= server.cachedUntil) expect(await server.verifies(token, one.clock.now())).toBe(true);
        }
      }
    }

    // At the activation both switch by the clock, with no reload in between.
    one.clock.set(new Date(timeline.activatesAt * 1000));
    const afterOne = await tokenFrom(one.app, 'rotor@example.com');
    const afterTwo = await tokenFrom(two.app, 'rotor@example.com');
    expect([kidOf(afterOne), kidOf(afterTwo)]).toEqual([newKid, newKid]);
    // Any JWKS fetched once the rotation reached every instance has the new key.
    const later = cachingResourceServer(await jwksBody(two.app), timeline.activatesAt);
    for (const token of [afterOne, afterTwo]) {
      for (const app of [one.app, two.app]) expect(await meStatus(app, token)).toBe(200);
      expect(await later.verifies(token, one.clock.now())).toBe(true);
      // Every JWKS cached without the new key has gone stale by now: no resource server meets an unknown kid.
      for (const server of servers) {
        expect(server.cachedUntil < timeline.activatesAt || (await server.verifies(token, one.clock.now()))).toBe(true);
      }
    }
    // Old-key tokens keep verifying on both after the switch.
    const lastOld = issued.at(-1) as string;
    for (const app of [one.app, two.app]) expect(await meStatus(app, lastOld)).toBe(200);

    // The retired key stays published until its last token (issued 1 s before activation) has expired, plus the margin.
    one.clock.set(new Date((timeline.activatesAt - 1 + TTL - 1) * 1000));
    for (const app of [one.app, two.app]) expect(await meStatus(app, lastOld)).toBe(200);
    one.clock.set(new Date((timeline.activatesAt + TTL + MARGIN - 1) * 1000));
    for (const app of [one.app, two.app]) expect(await publishedKids(app)).toEqual([oldKid, newKid].sort());
    one.clock.set(new Date((timeline.activatesAt + TTL + MARGIN) * 1000));
    for (const app of [one.app, two.app]) expect(await publishedKids(app)).toEqual([newKid]);
  });

  it('rotate --now (a compromised key) signs at once; the other instance switches at its reload or at the first token it does not know', async () => {
    expect((await signupUser(one.app, { email: 'urgent@example.com' })).statusCode).toBe(201);
    const before = await tokenFrom(two.app, 'urgent@example.com');
    const oldKid = kidOf(before);
    const timeline = await one.deps.keys.rotate({ immediately: true });
    const t0 = one.clock.nowSeconds();
    expect(timeline).toMatchObject({ activatesAt: t0, replaces: [{ kid: oldKid, publishedUntil: t0 + TTL + MARGIN }] });
    const fromOne = await tokenFrom(one.app, 'urgent@example.com');
    expect(kidOf(fromOne)).toBe(timeline.kid);
    // Two does not know the key yet; the unknown kid sends it to the database, and from then on it signs with it.
    expect(kidOf(await tokenFrom(two.app, 'urgent@example.com'))).toBe(oldKid);
    expect(await meStatus(two.app, fromOne)).toBe(200);
    expect(kidOf(await tokenFrom(two.app, 'urgent@example.com'))).toBe(timeline.kid);
    for (const app of [one.app, two.app]) expect(await meStatus(app, before)).toBe(200);
  });

  it('refuses a second rotation while one is pending; --now replaces both the active and the pending key', async () => {
    const first = await one.deps.keys.rotate();
    one.clock.advanceSeconds(60);
    await expect(two.deps.keys.rotate()).rejects.toThrow(/a rotation is already pending: key \S+ signs from .*rotate --now/);
    const emergency = await two.deps.keys.rotate({ immediately: true });
    const now = one.clock.nowSeconds();
    expect(emergency.replaces.map((key) => key.kid).sort()).toEqual([first.replaces[0]!.kid, first.kid].sort());
    await one.deps.keys.reload();
    // The pending key never signs: at its activation time the emergency key does.
    one.clock.set(new Date(first.activatesAt * 1000));
    for (const test of [one, two]) expect(test.deps.keys.current().kid).toBe(emergency.kid);
    const rows = await one.deps.db.selectFrom('signing_keys').select(['kid', 'retired_at', 'expires_at']).execute();
    for (const row of rows.filter((row) => row.kid !== emergency.kid)) expect(row).toMatchObject({ retired_at: now, expires_at: now + TTL + MARGIN });
  });

  it('a rotation cut short between its insert and the retirement of the old key is finished by the next reload', async () => {
    const timeline = await one.deps.keys.rotate();
    const oldKid = timeline.replaces[0]!.kid;
    await one.deps.db.updateTable('signing_keys').set({ retired_at: null, expires_at: null }).where('kid', '=', oldKid).execute();
    await two.deps.keys.reload();
    const old = await one.deps.db.selectFrom('signing_keys').select(['retired_at', 'expires_at']).where('kid', '=', oldKid).executeTakeFirstOrThrow();
    expect(old).toEqual({ retired_at: timeline.activatesAt, expires_at: timeline.activatesAt + TTL + MARGIN });
  });
});

describe.each(testDialects())('scheduled key rotation (KEY_ROTATION_DAYS) [%s]', (dialect) => {
  let one: TestApp;
  let two: TestApp;
  const keyCount = async () => (await one.deps.db.selectFrom('signing_keys').select('kid').execute()).length;
  beforeEach(async () => {
    one = await startTestApp(dialect, { KEY_ROTATION_DAYS: '30' });
    two = await openTestApp(one.database, { KEY_ROTATION_DAYS: '30' }, one.clock);
  });
  afterEach(async () => {
    await two.close();
    await one.close();
  });

  it('rotates once when the newest key is N days old, not twice when two instances check at the same moment', async () => {
    const firstKid = one.deps.keys.current().kid;
    one.clock.advanceSeconds(30 * DAY - 1);
    expect(await Promise.all([one.deps.keys.rotateIfDue(), two.deps.keys.rotateIfDue()])).toEqual([undefined, undefined]);
    expect(await keyCount()).toBe(1);

    one.clock.advanceSeconds(1);
    const outcomes = await Promise.all([one.deps.keys.rotateIfDue(), two.deps.keys.rotateIfDue()]);
    const rotated = outcomes.filter((outcome) => outcome !== undefined);
    expect(rotated).toHaveLength(1);
    expect(rotated[0]).toMatchObject({ activatesAt: one.clock.nowSeconds() + KEY_ACTIVATION_DELAY_SECONDS, replaces: [{ kid: firstKid }] });
    expect(await keyCount()).toBe(2);
    // Published, then signing on both from its activation, like a manual rotation.
    await Promise.all([one.deps.keys.reload(), two.deps.keys.reload()]);
    for (const test of [one, two]) expect(await publishedKids(test.app)).toContain(rotated[0]!.kid);
    one.clock.advanceSeconds(KEY_ACTIVATION_DELAY_SECONDS);
    for (const test of [one, two]) expect(test.deps.keys.current().kid).toBe(rotated[0]!.kid);

    // The new key counts from its creation: nothing more until 30 days after it.
    one.clock.advanceSeconds(30 * DAY - KEY_ACTIVATION_DELAY_SECONDS - 1);
    expect(await Promise.all([one.deps.keys.rotateIfDue(), two.deps.keys.rotateIfDue()])).toEqual([undefined, undefined]);
    one.clock.advanceSeconds(1);
    expect((await Promise.all([one.deps.keys.rotateIfDue(), two.deps.keys.rotateIfDue()])).filter(Boolean)).toHaveLength(1);
    expect(await keyCount()).toBe(3);
  });

  it("both instances' background tasks, started at the same moment past the due date, make one new key", async () => {
    one.clock.advanceSeconds(31 * DAY);
    const errors: unknown[] = [];
    const outcomes: unknown[] = [];
    const tasks: BackgroundTasks[] = [one, two].map((test) => {
      const keys = {
        reload: () => test.deps.keys.reload(),
        rotateIfDue: async () => {
          const outcome = await test.deps.keys.rotateIfDue();
          outcomes.push(outcome);
          return outcome;
        },
      };
      return startBackgroundTasks(
        { ...test.deps, keys, accessTokenTtlSeconds: TTL },
        { syncIntervalMs: 3_600_000, keyReloadIntervalMs: 3_600_000, purgeIntervalMs: 3_600_000, onError: (error) => errors.push(error) },
      );
    });
    try {
      // The first check runs right after start on each instance.
      await vi.waitFor(() => expect(outcomes.length + errors.length).toBe(2), { timeout: 5_000, interval: 10 });
      expect(errors).toEqual([]);
      expect(outcomes.filter(Boolean)).toHaveLength(1);
      expect(await keyCount()).toBe(2);
    } finally {
      for (const task of tasks) task.stop();
    }
  });

  it('does nothing without KEY_ROTATION_DAYS', async () => {
    const plain = await openTestApp(one.database, {}, one.clock);
    try {
      one.clock.advanceSeconds(3650 * DAY);
      expect(await plain.deps.keys.rotateIfDue()).toBeUndefined();
      expect(await keyCount()).toBe(1);
    } finally {
      await plain.close();
    }
  });
});
