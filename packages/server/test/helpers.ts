import { Secret, TOTP } from 'otpauth';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { expect } from 'vitest';
import { fixedClock, type ManualClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createDeps, type Deps } from '../src/deps.ts';
import { buildApp, type AppOptions } from '../src/http/app.ts';
import { createPasswordHasher, type Argon2Parameters } from '../src/passwords/index.ts';
import { attachOpenApiCheck, type OpenApiCheck } from './openapi-check.ts';

export type DialectName = 'sqlite' | 'postgres';

/** A fresh, empty database per call: a temporary SQLite file, or a new PostgreSQL schema. */
export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * The dialects this run covers: SQLite always, PostgreSQL when TEST_DATABASE_URL is set.
 * TEST_DIALECTS=sqlite (or postgres) narrows the list.
 */
export function testDialects(): DialectName[] {
  const wanted = process.env.TEST_DIALECTS?.split(',').map((name) => name.trim());
  const available: DialectName[] = process.env.TEST_DATABASE_URL ? ['sqlite', 'postgres'] : ['sqlite'];
  return available.filter((name) => !wanted || wanted.includes(name));
}

/**
 * The Redis server for suites that need one (TEST_REDIS_URL), and a key prefix of the test's own so
 * runs sharing that server never see each other's counters or messages. Suites without it skip.
 */
export function testRedis(): { url: string; keyPrefix: string } | undefined {
  const url = process.env.TEST_REDIS_URL;
  return url ? { url, keyPrefix: `gh_test_${randomBytes(6).toString('hex')}:` } : undefined;
}

export async function createTestDatabase(dialect: DialectName): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const directory = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
    return { url: `sqlite:${join(directory, 'gatehouse.db')}`, drop: async () => rmSync(directory, { recursive: true, force: true }) };
  }
  const baseUrl = process.env.TEST_DATABASE_URL;
  if (!baseUrl) throw new Error('TEST_DATABASE_URL is not set');
  const schema = `gh_test_${randomBytes(6).toString('hex')}`;
  await withAdminClient(baseUrl, (client) => client.query(`create schema ${schema}`));
  const url = new URL(baseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    drop: () => withAdminClient(baseUrl, (client) => client.query(`drop schema ${schema} cascade`)).then(() => undefined),
  };
}

async function withAdminClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** Cheap Argon2id for tests; production parameters are tested in passwords/. */
export const FAST_ARGON2: Argon2Parameters = Object.freeze({ memoryCost: 1024, timeCost: 1, parallelism: 1 });
// Shared by every app of a test file, so its queue bound is far above any one test's burst.
export const fastHasher = createPasswordHasher(FAST_ARGON2, { queueMax: 10_000 });

export interface TestApp {
  app: FastifyInstance;
  deps: Deps;
  clock: ManualClock;
  database: TestDatabase;
  /**
   * Every exchange is held to the served OpenAPI document (test/openapi-check.ts): app.inject rejects
   * on a mismatch; mismatches of requests over a listening socket wait in takeProblems(), and close() fails on them.
   */
  openapi: OpenApiCheck;
  /** Rebuilds deps and app on the same database, as a process restart would. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export const SEED_ENV = { PASSWORD_MIN_LENGTH: '6', PASSWORD_BREACHED_CHECK: 'false' };

export interface TestAppOptions {
  /**
   * Give the app its own hasher, built from its config (HASH_POOL_SIZE, HASH_QUEUE_MAX) with these
   * Argon2 costs, instead of the shared fastHasher; deps.close() stops it.
   */
  ownHasher?: Argon2Parameters;
}

export async function startTestApp(dialect: DialectName, env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const database = await createTestDatabase(dialect);
  const test = await openTestApp(database, env, fixedClock(new Date('2026-06-01T12:00:00Z')), options);
  const closeApp = test.close;
  // This app made the database, so closing it drops the database too.
  test.close = async () => {
    await closeApp();
    await database.drop();
  };
  return test;
}

/** buildApp with every exchange held to the served OpenAPI document, for tests that wire their own deps. */
export async function buildCheckedApp(deps: Deps, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp(deps, options);
  attachOpenApiCheck(app);
  return app;
}

/** startTestApp listening on 127.0.0.1 (a free port), for clients that speak real HTTP; origin is its base URL. */
export async function startListeningTestApp(dialect: DialectName, env: Record<string, string> = {}): Promise<{ test: TestApp; origin: string }> {
  const test = await startTestApp(dialect, env);
  try {
    const origin = await test.app.listen({ host: '127.0.0.1', port: 0 });
    return { test, origin };
  } catch (error) {
    await test.close();
    throw error;
  }
}

export function json<T = any>(response: LightMyRequestResponse): T {
  return JSON.parse(response.body) as T;
}

export const STRONG_PASSWORD = 'correct horse battery staple';

export async function signupUser(
  app: FastifyInstance,
  user: { name?: string; email: string; password?: string },
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: '/signup',
    payload: { name: user.name ?? 'Test User', email: user.email, password: user.password ?? STRONG_PASSWORD },
  });
}

export async function loginUser(app: FastifyInstance, email: string, password: string = STRONG_PASSWORD) {
  return app.inject({ method: 'POST', url: '/login', payload: { email, password } });
}

/** Signs up and logs in; returns the login answer's tokens. */
export async function signedInUser(app: FastifyInstance, email: string) {
  const signup = await signupUser(app, { email });
  if (signup.statusCode !== 201) throw new Error(`signup failed: ${signup.body}`);
  const login = await loginUser(app, email);
  if (login.statusCode !== 201) throw new Error(`login failed: ${login.body}`);
  const body = json(login);
  return { id: body.data.id as number, token: body.token as string, refreshToken: body.refresh_token as string };
}

/** Marks the address proved, as following the verification link does (adding a sign-in factor needs it). */
export async function markEmailVerified(test: Pick<TestApp, 'deps' | 'clock'>, email: string): Promise<void> {
  await test.deps.db.updateTable('users').set({ email_verified_at: test.clock.nowSeconds() }).where('email_normalized', '=', email.toLowerCase()).execute();
}

/** A signed-in user whose address is verified: one who may add a TOTP factor or a passkey. */
export async function signedInVerifiedUser(test: Pick<TestApp, 'app' | 'deps' | 'clock'>, email: string) {
  const user = await signedInUser(test.app, email);
  await markEmailVerified(test, email);
  return user;
}

/** The code an authenticator app shows for the secret at the test's clock: computed by otpauth, not by Gatehouse. */
export function totpAt(test: Pick<TestApp, 'clock'>, secret: string, stepsFromNow = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: test.clock.now().getTime() + stepsFromNow * 30_000 });
}

/**
 * Turns TOTP on over the HTTP API for a signed-in user (the address marked verified first, as only a proved
 * one may add a factor; then enrol and confirm), and moves the clock to the next 30 s step: each code works once.
 */
export async function enableTotp(test: Pick<TestApp, 'app' | 'deps' | 'clock'>, user: { email: string; token: string }) {
  await markEmailVerified(test, user.email);
  const authorization = `Bearer ${user.token}`;
  const enrolment = await test.app.inject({ method: 'POST', url: '/me/mfa/totp', headers: { authorization } });
  if (enrolment.statusCode !== 200) throw new Error(`enrolment failed: ${enrolment.body}`);
  const secret: string = json(enrolment).data.secret;
  const confirmed = await test.app.inject({ method: 'POST', url: '/me/mfa/totp/confirm', headers: { authorization }, payload: { code: totpAt(test, secret) } });
  if (confirmed.statusCode !== 200) throw new Error(`confirmation failed: ${confirmed.body}`);
  test.clock.advanceSeconds(30);
  return { secret, recoveryCodes: json(confirmed).data.recovery_codes as string[] };
}

/** Markers that must never appear in an answer body. */
export const LEAK_MARKERS = [/\$argon2/i, /scrypt:\d/, /pbkdf2:sha/, /\$2[aby]\$/, /\bat .*\.ts:\d+/, /SQLITE_/, /syntax error/i, /\bselect\b.*\bfrom\b/i, /"d":"/, /PRIVATE KEY/];

export function assertNoLeak(body: string, secrets: string[] = []): void {
  for (const marker of LEAK_MARKERS) {
    if (marker.test(body)) throw new Error(`answer leaks ${marker}: ${body.slice(0, 300)}`);
  }
  for (const secret of secrets) {
    if (secret && body.includes(secret)) throw new Error(`answer leaks a secret: ${body.slice(0, 300)}`);
  }
}

/**
 * Checks an error answer: the seed's envelope with status false, code equal to the HTTP status,
 * data an object or null, JSON content type, and nothing leaked. Returns the parsed body.
 */
export function expectErrorEnvelope(
  response: LightMyRequestResponse,
  status: number,
  message?: string | RegExp,
  secrets: string[] = [],
): { status: boolean; code: number; message: string; data: any } {
  assertNoLeak(response.body, secrets);
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = json(response);
  expect(Object.keys(body).sort()).toEqual(['code', 'data', 'message', 'status']);
  expect(body.status).toBe(false);
  expect(body.code).toBe(status);
  expect(typeof body.message).toBe('string');
  expect(body.data === null || (typeof body.data === 'object' && !Array.isArray(body.data))).toBe(true);
  if (typeof message === 'string') expect(body.message).toBe(message);
  else if (message) expect(body.message).toMatch(message);
  return body;
}

/**
 * Signs up a user, gives it the admin role in the database (as ADMIN_EMAIL or `gatehouse users create
 * --admin` would, without a restart or a subprocess), and logs in so the access token carries the role.
 */
export async function signedInAdmin(test: TestApp, email: string) {
  const signup = await signupUser(test.app, { email });
  if (signup.statusCode !== 201) throw new Error(`signup failed: ${signup.body}`);
  await test.deps.db.updateTable('users').set({ roles: JSON.stringify(['user', 'admin']) }).where('email_normalized', '=', email.toLowerCase()).execute();
  const login = await loginUser(test.app, email);
  if (login.statusCode !== 201) throw new Error(`login failed: ${login.body}`);
  const body = json(login);
  return { id: body.data.id as number, token: body.token as string, refreshToken: body.refresh_token as string };
}

/**
 * Another instance on an existing database (a second process of a fleet, or a restart with
 * a different environment): its own deps, app and clock; closing it leaves the database alone.
 */
export async function openTestApp(
  database: TestDatabase,
  env: Record<string, string> = {},
  clock: ManualClock = fixedClock(new Date('2026-06-01T12:00:00Z')),
  options: TestAppOptions = {},
): Promise<TestApp> {
  const config = loadConfig({ LOG_LEVEL: 'silent', RATE_LIMIT_PER_MINUTE: '100000', ...env, DATABASE_URL: database.url });
  const test: TestApp = {
    app: undefined as unknown as FastifyInstance,
    deps: undefined as unknown as Deps,
    clock,
    database,
    openapi: undefined as unknown as OpenApiCheck,
    async restart() {
      await closeBoth();
      await open();
    },
    close: () => closeBoth(),
  };
  // app.close() rejects when exchanges over a listening socket did not match the document.
  async function closeBoth() {
    try {
      await test.app.close();
    } finally {
      await test.deps.close();
    }
  }
  async function open() {
    test.deps = await createDeps(config, options.ownHasher ? { clock, argon2Parameters: options.ownHasher } : { clock, hasher: fastHasher });
    test.app = await buildApp(test.deps, { logger: false });
    test.openapi = attachOpenApiCheck(test.app);
    await test.app.ready();
  }
  await open();
  return test;
}
