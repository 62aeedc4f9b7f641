import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createDeps, type Deps } from '../src/deps.ts';
import { createDb } from '../src/storage/db.ts';
import { buildCheckedApp, createTestDatabase, fastHasher, json, loginUser, signedInUser, signupUser, STRONG_PASSWORD, startTestApp, type TestApp, type TestDatabase } from './helpers.ts';

const run = promisify(execFile);
const POSTGRES_URL = process.env.TEST_DATABASE_URL;
const KEY_ENCRYPTION_SECRET = randomBytes(32).toString('base64url');
// werkzeug generate_password_hash('correct horse battery staple', 'pbkdf2:sha256:10000'), as the Flask seed stored it.
const WERKZEUG_PBKDF2 = 'pbkdf2:sha256:10000$HaWHiqkodBUSP4G0$3dc9ad9cb101a13b47dc8b689dab19b68d3865b7fa7e7b167fc95917b2673f8f';
const TABLES = ['users', 'sessions', 'refresh_tokens', 'signing_keys', 'server_secrets', 'clients', 'audit_events', 'email_tokens', 'totp_factors', 'recovery_codes', 'mfa_tickets', 'passkeys', 'webauthn_challenges'];

/** Runs `gatehouse db copy …`; resolves with the exit code and output instead of throwing on failure. */
async function dbCopy(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', 'db', 'copy', ...args], {
      env: { PATH: process.env.PATH ?? '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

/** The per-table checksums of a copy's summary. */
function checksums(stdout: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const match of stdout.matchAll(/^(\w+) +\d+ rows {2}sha256 ([0-9a-f]{64}) {2}ok$/gm)) found[match[1]!] = match[2]!;
  return found;
}

describe.skipIf(!POSTGRES_URL)('gatehouse db copy from SQLite to PostgreSQL', () => {
  let source: TestApp;
  let sqlitePath: string;
  let target: TestDatabase;
  let backDirectory: string;
  let deps: Deps;
  let app: FastifyInstance;
  const users: Array<{ email: string; password: string }> = [];
  let oldKeyToken: string;
  let newKeyToken: string;
  let refreshToken: string;
  let firstCopy: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    source = await startTestApp('sqlite', { KEY_ENCRYPTION_SECRET });
    sqlitePath = source.database.url.slice('sqlite:'.length);
    for (let index = 0; index < 5; index++) {
      const email = `user-${index}@example.com`;
      const password = `${STRONG_PASSWORD} ${index}`;
      expect((await signupUser(source.app, { email, password })).statusCode).toBe(201);
      users.push({ email, password });
    }
    // A user imported from the Flask app: still a werkzeug hash, upgraded only at its first login.
    const legacy = await signupUser(source.app, { email: 'legacy@example.com' });
    await source.deps.db.updateTable('users').set({ password_hash: WERKZEUG_PBKDF2 }).where('id', '=', json(legacy).data.id).execute();
    users.push({ email: 'legacy@example.com', password: STRONG_PASSWORD });

    const before = json(await loginUser(source.app, users[0]!.email, users[0]!.password));
    oldKeyToken = before.token;
    const refreshed = await source.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: before.refresh_token } });
    expect(refreshed.statusCode).toBe(201);
    refreshToken = json(refreshed).refresh_token;
    await source.deps.keys.rotate();
    newKeyToken = (await signedInUser(source.app, 'rotated@example.com')).token;
    users.push({ email: 'rotated@example.com', password: STRONG_PASSWORD });
    await source.app.close();
    await source.deps.close();

    target = await createTestDatabase('postgres');
    backDirectory = mkdtempSync(join(tmpdir(), 'gatehouse-copy-back-'));
    firstCopy = await dbCopy('--from', source.database.url, '--to', target.url);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await deps?.close();
    await source?.database.drop();
    await target?.drop();
    if (backDirectory) rmSync(backDirectory, { recursive: true, force: true });
  });

  it('copies every table and prints a verified row count and checksum for each', () => {
    expect(firstCopy.code, firstCopy.stderr).toBe(0);
    expect(firstCopy.stdout).toContain(`copying sqlite ${sqlitePath} → postgres `);
    expect(Object.keys(checksums(firstCopy.stdout))).toEqual(TABLES);
    expect(firstCopy.stdout).toMatch(/^users +7 rows /m);
    expect(firstCopy.stdout).toMatch(/^signing_keys +2 rows /m);
    // The source's signups, logins and refresh, written by its audit log before it closed.
    expect(firstCopy.stdout).toMatch(/^audit_events +(1\d|[2-9]\d) rows /m);
    expect(firstCopy.stdout).toContain('verified: row counts and SHA-256 checksums match on both sides');
    // Not a terminal: no progress lines in a log.
    expect(firstCopy.stderr).toBe('');
  });

  it('copies back to SQLite with the same checksums (either direction, dialect-independent rows)', async () => {
    const back = await dbCopy('--from', target.url, '--to', `sqlite:${join(backDirectory, 'back.db')}`);
    expect(back.code, back.stderr).toBe(0);
    expect(checksums(back.stdout)).toEqual(checksums(firstCopy.stdout));
  });

  it('serves the copied data on PostgreSQL: every user logs in, old tokens verify, an old refresh token refreshes', async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent', RATE_LIMIT_PER_MINUTE: '100000', KEY_ENCRYPTION_SECRET, DATABASE_URL: target.url });
    deps = await createDeps(config, { clock: fixedClock(source.clock.now()), hasher: fastHasher });
    app = await buildCheckedApp(deps, { logger: false });
    for (const token of [oldKeyToken, newKeyToken]) {
      const me = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
      expect(me.statusCode, me.body).toBe(200);
    }
    const refreshed = await app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } });
    expect(refreshed.statusCode, refreshed.body).toBe(201);
    for (const user of users) expect((await loginUser(app, user.email, user.password)).statusCode, user.email).toBe(201);
    // The id sequence continues after the copied ids.
    const signup = await signupUser(app, { email: 'after-copy@example.com' });
    expect(signup.statusCode, signup.body).toBe(201);
    expect(json(signup).data.id).toBe(users.length + 1);
    // So does the audit log's: the new events go in after the copied ones, none refused.
    await deps.audit.flush();
    expect(deps.audit.stats()).toMatchObject({ queued: 0, failing: false });
    const copied = Number(/^audit_events +(\d+) rows /m.exec(firstCopy.stdout)![1]);
    const { count } = await deps.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    expect(Number(count)).toBe(copied + 1 + users.length + 1);
  });

  it('refuses a non-empty target without --force, and replaces it with --force', async () => {
    const refused = await dbCopy('--from', source.database.url, '--to', target.url);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the target is not empty \(users: 8, .*\); pass --force to replace its contents/);
    const forced = await dbCopy('--from', source.database.url, '--to', target.url, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(checksums(forced.stdout)).toEqual(checksums(firstCopy.stdout));
  });

  it('exits 1 and leaves the target unchanged when a checksum does not match', async () => {
    const tampered = await createTestDatabase('postgres');
    try {
      const database = await createDb(tampered.url);
      await database.migrate();
      await database.close();
      // A trigger that alters rows as they arrive: what a lossy conversion would do.
      const client = new pg.Client({ connectionString: tampered.url });
      await client.connect();
      await client.query(`create function gh_tamper() returns trigger language plpgsql as $$ begin new.name := new.name || '!'; return new; end $$`);
      await client.query('create trigger gh_tamper before insert on users for each row execute function gh_tamper()');
      const copy = await dbCopy('--from', source.database.url, '--to', tampered.url);
      const { rows } = await client.query('select count(*)::int as count from users');
      await client.end();
      expect(copy.code).toBe(1);
      expect(copy.stdout).toMatch(/^users +7 rows {2}sha256 [0-9a-f]{64} {2}MISMATCH \(source 7 rows, sha256 [0-9a-f]{64}\)$/m);
      expect(copy.stdout).toMatch(/^sessions +\d+ rows {2}sha256 [0-9a-f]{64} {2}ok$/m);
      expect(copy.stderr).toContain('verification failed for users; the target was left unchanged');
      expect(rows[0].count).toBe(0);
    } finally {
      await tampered.drop();
    }
  });

  it('answers a usage error with exit code 2', async () => {
    const usage = await dbCopy('--from', source.database.url);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: gatehouse db copy');
  });
});
