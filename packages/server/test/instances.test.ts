import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, SEED_ENV, STRONG_PASSWORD, testDialects, testRedis, type TestDatabase } from './helpers.ts';
import { buildService, startService, type ServiceProcess } from './service-process.ts';

// Real processes, as two instances behind a load balancer would be: nothing shared but PostgreSQL (or one SQLite file) and Redis.
beforeAll(() => buildService(), 60_000);

const redisUnderTest = testRedis();
const RATE_LIMIT = 20;
const LOGIN_MAX_FAILURES = 10;
const TRIALS = 20;

interface Answer {
  status: number;
  body: any;
  retryAfter: string | null;
}

/** A request from the client address given (the processes trust X-Forwarded-For from 127.0.0.1, as from a proxy). */
async function call(service: ServiceProcess, method: string, path: string, options: { clientAddress: string; body?: unknown; token?: string }): Promise<Answer> {
  const headers: Record<string, string> = { 'x-forwarded-for': options.clientAddress };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(`${service.baseUrl}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  return { status: response.status, body: text.startsWith('{') ? JSON.parse(text) : text, retryAfter: response.headers.get('retry-after') };
}

const login = (service: ServiceProcess, clientAddress: string, email: string, password: string) =>
  call(service, 'POST', '/login', { clientAddress, body: { email, password } });

function percentile(sortedValues: number[], fraction: number): number {
  return sortedValues[Math.min(sortedValues.length - 1, Math.ceil(fraction * sortedValues.length) - 1)]!;
}

describe.skipIf(!redisUnderTest).each(testDialects())('two Gatehouse processes sharing the database and Redis [redis] [%s]', (dialect) => {
  let database: TestDatabase;
  let a: ServiceProcess;
  let b: ServiceProcess;
  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    const env = {
      ...SEED_ENV,
      DATABASE_URL: database.url,
      REDIS_URL: redisUnderTest!.url,
      REDIS_KEY_PREFIX: redisUnderTest!.keyPrefix,
      // Instances behind one address share one issuer; by default each would name its own port.
      JWT_ISSUER: 'http://gatehouse.test',
      TRUST_PROXY: '127.0.0.1',
      RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
      LOGIN_MAX_FAILURES: String(LOGIN_MAX_FAILURES),
      // The safety-net database sync as slow as allowed: only Redis pub/sub can meet the one-second goal here.
      REVOCATION_SYNC_INTERVAL: '60s',
    };
    // One after the other: the first creates the schema.
    a = await startService(env);
    b = await startService(env);
  }, 60_000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.drop();
    if (redisUnderTest) {
      const raw = new Redis(redisUnderTest.url);
      raw.on('error', () => {});
      for await (const keys of raw.scanStream({ match: `${redisUnderTest.keyPrefix}*`, count: 500 })) if ((keys as string[]).length > 0) await raw.del(...(keys as string[]));
      await raw.quit();
    }
  }, 30_000);

  it(`accepts a token from A on B, and refuses it on B within a second of a logout on A (${TRIALS} trials)`, async () => {
    expect((await call(a, 'POST', '/signup', { clientAddress: '198.51.100.1', body: { name: 'Roamer', email: 'roamer@example.com', password: STRONG_PASSWORD } })).status).toBe(201);
    const delaysFromRequest: number[] = [];
    const delaysFromAnswer: number[] = [];
    for (let trial = 0; trial < TRIALS; trial += 1) {
      const clientAddress = `198.51.100.${10 + trial}`; // each trial its own budget
      const signedIn = await login(a, clientAddress, 'roamer@example.com', STRONG_PASSWORD);
      expect(signedIn.status).toBe(201);
      const token = signedIn.body.token as string;
      expect((await call(b, 'GET', '/me', { clientAddress, token })).status).toBe(200);

      const sentAt = performance.now();
      let answeredAt = 0;
      const logout = call(a, 'POST', '/logout', { clientAddress, token }).then((answer) => {
        answeredAt = performance.now();
        return answer;
      });
      let refusedAt = 0;
      while (!refusedAt) {
        const me = await call(b, 'GET', '/me', { clientAddress, token });
        if (me.status === 401) {
          expect(me.body.message).toBe('auth failed - token has been revoked');
          refusedAt = performance.now();
        } else {
          expect(me.status).toBe(200);
          if (performance.now() - sentAt > 5000) throw new Error('B still accepts the token 5 s after the logout on A');
        }
      }
      expect((await logout).status).toBe(200);
      delaysFromRequest.push(refusedAt - sentAt);
      delaysFromAnswer.push(Math.max(0, refusedAt - answeredAt));
    }
    const fromRequest = [...delaysFromRequest].sort((x, y) => x - y);
    const fromAnswer = [...delaysFromAnswer].sort((x, y) => x - y);
    const figures = {
      dialect,
      trials: TRIALS,
      fromLogoutRequestMs: { p50: percentile(fromRequest, 0.5), p99: percentile(fromRequest, 0.99), max: fromRequest.at(-1) },
      fromLogoutAnswerMs: { p50: percentile(fromAnswer, 0.5), p99: percentile(fromAnswer, 0.99), max: fromAnswer.at(-1) },
    };
    console.log(`revocation propagation A → B: ${JSON.stringify(figures, (_key, value) => (typeof value === 'number' ? Math.round(value * 10) / 10 : value))}`);
    expect(figures.fromLogoutRequestMs.p99).toBeLessThan(1000);
  }, 60_000);

  it(`locks the account on both after ${LOGIN_MAX_FAILURES} failed logins split across A and B`, async () => {
    expect((await call(a, 'POST', '/signup', { clientAddress: '198.51.100.2', body: { name: 'Target', email: 'target@example.com', password: STRONG_PASSWORD } })).status).toBe(201);
    const attacker = '198.51.100.66';
    for (let attempt = 0; attempt < LOGIN_MAX_FAILURES; attempt += 1) {
      const failed = await login(attempt % 2 === 0 ? a : b, attacker, 'target@example.com', 'wrong password, guess number ' + attempt);
      expect(failed.status, JSON.stringify(failed.body)).toBe(403);
    }
    // Counted per process, each would have seen only half the failures and let the right password in.
    for (const service of [a, b]) {
      const locked = await login(service, attacker, 'target@example.com', STRONG_PASSWORD);
      expect(locked.status).toBe(429);
      expect(Number(locked.retryAfter)).toBeGreaterThan(0);
    }
  });

  it('shares the per-address budget between A and B', async () => {
    const client = '198.51.100.99';
    // An empty body spends budget (counted before the body is read) without any password hashing.
    for (const service of [a, b]) for (let request = 0; request < RATE_LIMIT / 2; request += 1) expect((await call(service, 'POST', '/login', { clientAddress: client, body: {} })).status).toBe(400);
    for (const service of [a, b]) {
      const refused = await call(service, 'POST', '/login', { clientAddress: client, body: {} });
      expect(refused.status).toBe(429);
      expect(refused.body.message).toBe('too many requests - try again later');
    }
    // Another address still has its own budget.
    expect((await call(b, 'POST', '/login', { clientAddress: '198.51.100.98', body: {} })).status).toBe(400);
  });
});
