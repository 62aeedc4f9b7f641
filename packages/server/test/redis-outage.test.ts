import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fixedClock, type ManualClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createDeps, type Deps } from '../src/deps.ts';
import { buildCheckedApp, createTestDatabase, fastHasher, json, SEED_ENV, signupUser, testDialects, testRedis, type TestDatabase } from './helpers.ts';
import { startThrowawayRedis, type ThrowawayRedis } from './redis-server.ts';

const RATE_LIMIT = 4;

interface Instance {
  app: FastifyInstance;
  deps: Deps;
  logs: Array<{ level: string; message: string; fields: Record<string, unknown> }>;
  close(): Promise<void>;
}

/** One Gatehouse instance in this process, on the given database and Redis, with its shared-state log captured. */
async function openInstance(database: TestDatabase, redisUrl: string, clock: ManualClock): Promise<Instance> {
  const config = loadConfig({
    ...SEED_ENV,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: 'gh_outage:',
  });
  const logs: Instance['logs'] = [];
  const deps = await createDeps(config, { clock, hasher: fastHasher, sharedStateLog: (level, fields, message) => logs.push({ level, fields, message }) });
  const app = await buildCheckedApp(deps, { logger: false });
  await app.ready();
  return {
    app,
    deps,
    logs,
    async close() {
      await app.close();
      await deps.close();
    },
  };
}

/** A request that only spends the client's budget: 400 while within it, 429 past it; never anything else. */
async function spend(instance: Instance, remoteAddress: string): Promise<number> {
  const response = await instance.app.inject({ method: 'POST', url: '/login', remoteAddress, payload: {} });
  expect([400, 429], response.body).toContain(response.statusCode);
  if (response.statusCode === 429) expect(json(response).message).toBe('too many requests - try again later');
  return response.statusCode;
}

const getMe = (instance: Instance, token: string) => instance.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });

async function until(check: () => boolean | Promise<boolean>, deadlineMs: number, what: string): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const redisStatus = (instance: Instance) => instance.deps.shared.status().redis;

describe.skipIf(!testRedis()).each(testDialects())('Redis outage: degrade and recover [redis] [%s]', (dialect) => {
  let redis: ThrowawayRedis;
  let database: TestDatabase;
  let one: Instance;
  let two: Instance;
  beforeEach(async () => {
    redis = await startThrowawayRedis();
    database = await createTestDatabase(dialect);
    const clock = fixedClock(new Date('2026-06-01T12:00:00Z'));
    one = await openInstance(database, redis.url, clock);
    two = await openInstance(database, redis.url, clock);
  });
  afterEach(async () => {
    await one?.close();
    await two?.close();
    await redis?.kill();
    await database?.drop();
  });

  it('counts per process with one warning while Redis is dead, and shares again once it is back, without a restart', async () => {
    // Shared: the budget spent on one instance is gone on the other.
    for (const instance of [one, one, two, two]) expect(await spend(instance, '203.0.113.1')).toBe(400);
    expect(await spend(one, '203.0.113.1')).toBe(429);
    expect(await spend(two, '203.0.113.1')).toBe(429);
    expect([redisStatus(one), redisStatus(two)]).toEqual(['up', 'up']);

    await redis.kill();
    await until(() => redisStatus(one) === 'down' && redisStatus(two) === 'down', 5000, 'both instances see Redis down');
    // Each process now has a budget of its own, and still enforces it; logins are answered, never a 500.
    for (const instance of [one, two]) {
      for (let attempt = 0; attempt < RATE_LIMIT; attempt += 1) expect(await spend(instance, '203.0.113.2')).toBe(400);
      expect(await spend(instance, '203.0.113.2')).toBe(429);
    }
    expect((await signupUser(one.app, { email: 'outage@example.com' })).statusCode).toBe(201);
    const login = await two.app.inject({ method: 'POST', url: '/login', payload: { email: 'outage@example.com', password: 'correct horse battery staple' } });
    expect(login.statusCode, login.body).toBe(201);
    // Reconnect attempts went on meanwhile: still one warning per instance for the whole outage.
    for (const instance of [one, two]) {
      expect(instance.logs.filter((line) => line.level === 'warn')).toHaveLength(1);
      expect(instance.logs[0]).toMatchObject({ level: 'warn', fields: { redis: redis.url.replace('redis://', '') } });
    }

    await redis.start();
    await until(() => redisStatus(one) === 'up' && redisStatus(two) === 'up', 10_000, 'both instances see Redis up again');
    for (const instance of [one, two]) expect(instance.logs.map((line) => line.level)).toEqual(['warn', 'info']);
    for (const instance of [one, one, two, two]) expect(await spend(instance, '203.0.113.3')).toBe(400);
    expect(await spend(two, '203.0.113.3')).toBe(429);

    // Revocation news flows again (these apps run no periodic database sync: only pub/sub can tell the other).
    const token = json(await two.app.inject({ method: 'POST', url: '/login', payload: { email: 'outage@example.com', password: 'correct horse battery staple' } })).token;
    expect((await getMe(one, token)).statusCode).toBe(200);
    expect((await one.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': token } })).statusCode).toBe(200);
    await until(async () => (await getMe(two, token)).statusCode === 401, 3000, 'the other instance refuses the logged-out token');
  });

  it('lets revocations made while Redis is dead reach the other instance through the database sync', async () => {
    expect((await signupUser(one.app, { email: 'sync@example.com' })).statusCode).toBe(201);
    const token = json(await one.app.inject({ method: 'POST', url: '/login', payload: { email: 'sync@example.com', password: 'correct horse battery staple' } })).token;
    await redis.kill();
    await until(() => redisStatus(one) === 'down', 5000, 'Redis seen down');
    expect((await one.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': token } })).statusCode).toBe(200);
    expect((await getMe(one, token)).statusCode).toBe(401);
    // The news could not be published; the database still has it, and the periodic sync brings it.
    await two.deps.denylist.sync();
    expect((await getMe(two, token)).statusCode).toBe(401);
  });

  it('answers logins within about the command timeout when Redis hangs, and recovers when it answers again', async () => {
    redis.pause();
    const started = Date.now();
    for (const address of ['203.0.113.4', '203.0.113.6']) {
      for (let attempt = 0; attempt < RATE_LIMIT; attempt += 1) expect(await spend(one, address)).toBe(400);
      expect(await spend(one, address)).toBe(429);
    }
    // The first command waits out the 500 ms timeout; the rest go straight to the fallback
    // (10 × 500 ms if each waited again; forever without a command timeout).
    expect(Date.now() - started).toBeLessThan(2500);
    expect(redisStatus(one)).toBe('down');
    expect(one.logs.filter((line) => line.level === 'warn')).toHaveLength(1);

    redis.resume();
    await until(() => redisStatus(one) === 'up', 10_000, 'Redis seen up again');
    for (const instance of [one, one, two, two]) expect(await spend(instance, '203.0.113.5')).toBe(400);
    expect(await spend(one, '203.0.113.5')).toBe(429);
  });

  it('falls back while Redis refuses writes (out of memory) and uses it again as soon as it accepts them', async () => {
    const admin = new Redis(redis.url);
    admin.on('error', () => {});
    try {
      await admin.config('SET', 'maxmemory', '1'); // with the default noeviction policy every script write is refused
      for (let attempt = 0; attempt < RATE_LIMIT; attempt += 1) expect(await spend(one, '203.0.113.7')).toBe(400);
      expect(await spend(one, '203.0.113.7')).toBe(429);
      expect(redisStatus(one)).toBe('down');
      expect(one.logs.map((line) => [line.level, line.fields.error])).toEqual([['warn', 'ReplyError']]);
      // The connection is fine, so there is no reconnect to wait for: the next command that succeeds brings it back.
      await admin.config('SET', 'maxmemory', '0');
      expect(await spend(one, '203.0.113.8')).toBe(400);
      expect(redisStatus(one)).toBe('up');
      expect(one.logs.map((line) => line.level)).toEqual(['warn', 'info']);
      for (const instance of [one, two, two]) expect(await spend(instance, '203.0.113.8')).toBe(400);
      expect(await spend(two, '203.0.113.8')).toBe(429);
    } finally {
      await admin.quit();
    }
  });
});
