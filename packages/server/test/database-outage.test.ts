import { randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createDeps, type Deps } from '../src/deps.ts';
import { buildCheckedApp, createTestDatabase, expectErrorEnvelope, fastHasher, signupUser, testDialects, type TestDatabase } from './helpers.ts';
import { buildService, startService, waitUntil, type ServiceProcess } from './service-process.ts';

// The bug was a process crash, so these run the built service (dist/main.js) as a child process.
beforeAll(() => buildService(), 60_000);

const POSTGRES_URL = process.env.TEST_DATABASE_URL;
/** Trust authentication ignores it; it is there to prove no log line ever shows it. */
const FAKE_DATABASE_PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

/** The URL of a fresh test schema, with a password and an application_name naming only this service's connections. */
function serviceDatabaseUrl(database: TestDatabase, applicationName?: string): string {
  const url = new URL(database.url);
  url.password = FAKE_DATABASE_PASSWORD;
  if (applicationName) url.searchParams.set('application_name', applicationName);
  return url.toString();
}

async function terminateConnections(admin: pg.Client, applicationName: string, where = 'true'): Promise<number> {
  const { rows } = await admin.query<{ terminated: boolean }>(
    `select pg_terminate_backend(pid) as terminated from pg_stat_activity
      where application_name = $1 and datname = current_database() and pid <> pg_backend_pid() and ${where}`,
    [applicationName],
  );
  return rows.filter((row) => row.terminated).length;
}

async function post(service: ServiceProcess, path: string, body: unknown) {
  const response = await fetch(`${service.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as any };
}

describe.skipIf(!POSTGRES_URL)('the service survives PostgreSQL dropping its connections', () => {
  const applicationName = `gh_outage_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  let database: TestDatabase;
  let service: ServiceProcess;
  let admin: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    service = await startService({ DATABASE_URL: serviceDatabaseUrl(database, applicationName) });
  }, 60_000);
  afterAll(async () => {
    await service?.stop();
    await admin?.end();
    await database?.drop();
  });

  it('stays up when its idle connections are terminated, logs it, and answers again within seconds', async () => {
    expect((await post(service, '/signup', { name: 'Before', email: 'before@example.com', password })).status).toBe(201);
    // The pool keeps the connection that served the signup: that is the idle one to drop. The work a
    // signup does after its answer (the verification link) may hold it for a moment: until it is idle.
    let terminated = 0;
    for (const deadline = Date.now() + 5000; terminated === 0 && Date.now() < deadline; ) {
      terminated = await terminateConnections(admin, applicationName, "state = 'idle'");
      if (terminated === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(terminated).toBeGreaterThan(0);

    await waitUntil(service, 10_000, async () => (await fetch(`${service.baseUrl}/readyz`)).status === 200);
    expect((await post(service, '/signup', { name: 'After', email: 'after@example.com', password })).status).toBe(201);
    expect((await post(service, '/login', { email: 'before@example.com', password })).status).toBe(201);
    service.assertRunning();

    // One warning per dropped connection, although pg raises two errors for each.
    const lost = () => service.logLines().filter((line) => line.level === 40 && /database connection lost/.test(line.msg));
    await waitUntil(service, 5_000, () => lost().length >= terminated);
    expect(lost()).toHaveLength(terminated);
    // Which of pg's errors for the connection comes first depends on timing: the server's 57P01 (admin
    // shutdown), the socket's ECONNRESET, or "Connection terminated unexpectedly" without a code (all
    // three seen in CI). The warning names the reason, whichever it was.
    expect(lost()[0]).toMatchObject({ reason: expect.stringMatching(/\S/) });
    expect(service.output()).not.toContain(FAKE_DATABASE_PASSWORD);
  });

  it('answers 201 or a 503 envelope while its busy connections are terminated, and every 201 can log in', async () => {
    const rounds = 2;
    const inFlight = 40;
    const answers: Array<{ email: string; status: number; retryAfter: string | null; body: any }> = [];
    let terminated = 0;
    for (let round = 0; round < rounds; round++) {
      let settled = false;
      const signups = Promise.all(
        Array.from({ length: inFlight }, async (_, index) => {
          const email = `busy-${round}-${index}@example.com`;
          // A rejected fetch (connection reset, process gone) fails the test here.
          answers.push({ email, ...(await post(service, '/signup', { name: 'Busy User', email, password })) });
        }),
      ).finally(() => (settled = true));
      while (!settled) {
        terminated += await terminateConnections(admin, applicationName);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await signups;
    }

    expect(terminated).toBeGreaterThan(0);
    service.assertRunning();
    for (const answer of answers) {
      expect([201, 503], JSON.stringify(answer)).toContain(answer.status);
      if (answer.status === 503) {
        expect(answer.body).toEqual({ status: false, code: 503, message: 'service unavailable', data: null });
        expect(answer.retryAfter).toBe('5');
      }
    }
    const created = answers.filter((answer) => answer.status === 201);
    expect(created.length).toBeGreaterThan(0);
    console.info(`busy termination: ${terminated} connections terminated, ${created.length} × 201, ${answers.length - created.length} × 503`);

    // In batches well under HASH_QUEUE_MAX (64), so the hashing queue's own 503s do not mix in.
    const logins = [];
    for (let start = 0; start < created.length; start += 16) {
      const batch = created.slice(start, start + 16);
      logins.push(...(await Promise.all(batch.map((answer) => post(service, '/login', { email: answer.email, password })))));
    }
    expect(logins.map((login) => login.status)).toEqual(created.map(() => 201));
    service.assertRunning();
  });
});

describe.each(testDialects())('a database that cannot answer mid-request gets a 503 envelope [%s]', (dialect) => {
  const applicationName = `gh_midquery_${randomBytes(4).toString('hex')}`;
  let database: TestDatabase;
  let deps: Deps;
  let app: FastifyInstance;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    const databaseUrl = dialect === 'postgres' ? serviceDatabaseUrl(database, applicationName) : database.url;
    const config = loadConfig({ LOG_LEVEL: 'silent', RATE_LIMIT_PER_MINUTE: '100000', DATABASE_URL: databaseUrl });
    deps = await createDeps(config, { clock: fixedClock(new Date('2026-06-01T12:00:00Z')), hasher: fastHasher });
    app = await buildCheckedApp(deps, { logger: false });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
    await database?.drop();
  });

  /** Blocks the next write to users; for PostgreSQL, then kills the connection caught waiting. */
  async function makeUnavailable(): Promise<{ whileBlocked(): Promise<void>; release(): Promise<void> }> {
    if (dialect === 'sqlite') {
      // Another writer holds the lock; the service's insert gets SQLITE_BUSY once busy_timeout has passed.
      // (Shortened on the service's own connection so the test does not wait the production 5 s.)
      await sql`pragma busy_timeout = 100`.execute(deps.db);
      const other = new BetterSqlite(database.url.slice('sqlite:'.length));
      other.exec('begin immediate');
      return {
        whileBlocked: async () => {},
        release: async () => {
          other.exec('rollback');
          other.close();
        },
      };
    }
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query('begin');
    await admin.query('lock table users in access exclusive mode');
    return {
      async whileBlocked() {
        // The request's query is now waiting on our lock: it is mid-query when its connection dies.
        const deadline = Date.now() + 10_000;
        while ((await terminateConnections(admin, applicationName, "wait_event_type = 'Lock'")) === 0) {
          if (Date.now() > deadline) throw new Error('the signup never reached the database');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      },
      async release() {
        await admin.query('rollback');
        await admin.end();
      },
    };
  }

  it('answers 503 with Retry-After, never a 500, and serves again once the database is back', async () => {
    const outage = await makeUnavailable();
    let response;
    try {
      const pending = signupUser(app, { email: 'caught@example.com' });
      await outage.whileBlocked();
      response = await pending;
    } finally {
      await outage.release();
    }
    expectErrorEnvelope(response, 503, 'service unavailable');
    expect(response.headers['retry-after']).toBe('5');

    // Nothing was half-written, and the pool has replaced the connection by itself.
    expect((await signupUser(app, { email: 'caught@example.com' })).statusCode).toBe(201);
  });
});

describe.each(testDialects())('start-up names its database [%s]', (dialect) => {
  let database: TestDatabase;
  let workingDirectory: string;
  let databaseUrl: string;
  let expectedLocation: string;

  beforeAll(async () => {
    if (dialect === 'sqlite') {
      // A relative path, as a typo would be: the log must show where it really landed.
      workingDirectory = realpathSync(mkdtempSync(join(tmpdir(), 'gatehouse-start-')));
      databaseUrl = 'sqlite:./data/typo.db';
      expectedLocation = join(workingDirectory, 'data', 'typo.db');
    } else {
      database = await createTestDatabase('postgres');
      databaseUrl = serviceDatabaseUrl(database);
      const server = new URL(POSTGRES_URL!);
      expectedLocation = `${server.hostname}:${server.port || 5432}${server.pathname}`;
    }
  });
  afterAll(async () => {
    if (workingDirectory) rmSync(workingDirectory, { recursive: true, force: true });
    await database?.drop();
  });

  async function startAndStop(logLevel: string) {
    const service = await startService({ DATABASE_URL: databaseUrl, LOG_LEVEL: logLevel }, workingDirectory ? { cwd: workingDirectory } : {});
    await service.stop();
    expect(service.output()).not.toContain(FAKE_DATABASE_PASSWORD);
    return service.logLines();
  }

  it('warns, even at LOG_LEVEL=warn, that it created a new, empty database, and names where', async () => {
    const lines = await startAndStop('warn');
    const created = lines.filter((line) => /created a new, empty database/.test(line.msg));
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ level: 40, msg: `created a new, empty database at ${expectedLocation}`, database: { dialect, location: expectedLocation } });
  });

  it('on the next start logs the absolute location at info and does not claim to have created it', async () => {
    const lines = await startAndStop('info');
    expect(lines.filter((line) => /created a new, empty database/.test(line.msg))).toEqual([]);
    const opened = lines.find((line) => line.database?.location !== undefined);
    expect(opened).toMatchObject({ level: 30, msg: `database: ${dialect} at ${expectedLocation}`, database: { dialect, location: expectedLocation, created: false } });
  });
});
