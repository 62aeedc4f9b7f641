import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runSessionsCommand, runUserAdminCommand } from '../src/users/admin-commands.ts';
import { runUsersCommand } from '../src/users/commands.ts';
import { createTestDatabase, json, loginUser, openTestApp, signedInAdmin, signedInUser, signupUser, testDialects, testRedis, type TestApp, type TestDatabase } from './helpers.ts';

const USAGE = 'usage: gatehouse (test)';
const run = promisify(execFile);

function captureIo(database: TestDatabase, test: TestApp, env: Record<string, string> = {}) {
  const output = { stdout: '', stderr: '' };
  const io = {
    stdout: { write: (text: string) => (output.stdout += text) },
    stderr: { write: (text: string) => (output.stderr += text) },
    env: { DATABASE_URL: database.url, LOG_LEVEL: 'silent', ...env },
    clock: test.clock,
  };
  return { io, output };
}

describe.each(testDialects())('gatehouse users list|show|disable|enable|delete|set-roles, sessions revoke [%s]', (dialect) => {
  let database: TestDatabase;
  let test: TestApp;
  beforeEach(async () => {
    database = await createTestDatabase(dialect);
    test = await openTestApp(database);
  });
  afterEach(async () => {
    await test.close();
    await database.drop();
  });

  /** Through `gatehouse users …`'s dispatch, as cli.ts runs it. */
  async function users(argv: string[]) {
    const { io, output } = captureIo(database, test);
    const code = await runUsersCommand(argv, USAGE, { ...io, readPassword: async () => '' });
    return { code, ...output };
  }
  async function sessions(argv: string[]) {
    const { io, output } = captureIo(database, test);
    const code = await runSessionsCommand(argv, USAGE, io);
    return { code, ...output };
  }
  async function operatorEvents(action: string) {
    const rows = await test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('id').execute();
    return rows.map((row) => ({ ...row, details: row.details === null ? null : JSON.parse(row.details) }));
  }
  const me = (token: string) => test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': token } });

  it('lists users with filters and a limit, as text or as JSON lines', async () => {
    for (const email of ['ada@example.com', 'adam@example.com', 'bob@example.com']) await signupUser(test.app, { email });
    await test.deps.db.updateTable('users').set({ disabled_at: 1_780_000_000 }).where('email', '=', 'bob@example.com').execute();

    const all = await users(['list']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^\d+ {2}ada@example\.com {2}"Test User" {2}roles=user {2}enabled$/),
      expect.stringMatching(/^\d+ {2}adam@example\.com /),
      expect.stringMatching(/^\d+ {2}bob@example\.com .* disabled since 2026-05-28T/),
    ]);
    const lines = (await users(['list', '--email', 'ADA', '--json'])).stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((user) => user.email)).toEqual(['ada@example.com', 'adam@example.com']);
    expect(Object.keys(lines[0]).sort()).toEqual(['created_at', 'disabled', 'disabled_at', 'email', 'id', 'name', 'roles', 'updated_at']);
    expect((await users(['list', '--disabled', '--json'])).stdout.trim().split('\n').map((line) => JSON.parse(line).email)).toEqual(['bob@example.com']);
    expect((await users(['list', '--enabled', '--limit', '1'])).stdout.trim().split('\n')).toHaveLength(1);
    expect((await users(['list', '--role', 'admin'])).stdout).toBe('');
  });

  it('lists more users than a page in order, each once', async () => {
    const emails = Array.from({ length: 105 }, (_unused, index) => `user${String(index).padStart(3, '0')}@example.com`);
    const now = test.clock.nowSeconds();
    await test.deps.db
      .insertInto('users')
      .values(emails.map((email) => ({ email, email_normalized: email, name: 'N', password_hash: 'x', roles: '["user"]', created_at: now, updated_at: now })))
      .execute();
    const listed = (await users(['list', '--json'])).stdout.trim().split('\n').map((line) => JSON.parse(line).email);
    expect(listed).toEqual(emails);
    expect((await users(['list', '--json', '--limit', '101'])).stdout.trim().split('\n')).toHaveLength(101);
  });

  it('shows a user by id or by email, with sessions; an unknown one exits 1', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    const shown = await users(['show', 'ADA@example.com']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^user ${ada.id} <ada@example.com>\\n  name: Test User\\n  roles: user\\n  enabled\\n`));
    expect(shown.stdout).toMatch(/sessions \(newest first\):\n {2}\S+ {2}client=gatehouse {2}created 2026-06-01T12:00:00\.000Z .* expires /);
    const asJson = JSON.parse((await users(['show', String(ada.id), '--json'])).stdout);
    expect(asJson.user).toMatchObject({ id: ada.id, email: 'ada@example.com', roles: ['user'], disabled: false });
    expect(asJson.sessions).toHaveLength(1);
    // A name is the user's own text: a C1 control (U+009B is CSI on some terminals) never reaches the terminal.
    await test.deps.db.updateTable('users').set({ name: 'Evil\u009b31mRed\u001b[0m' }).where('id', '=', ada.id).execute();
    const hostile = await users(['show', String(ada.id)]);
    expect(hostile.stdout).toContain('  name: Evil\ufffd31mRed\ufffd[0m\n');
    expect(hostile.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(JSON.stringify(asJson)).not.toMatch(/argon2|password/i);
    expect(await users(['show', 'nobody@example.com'])).toMatchObject({ code: 1, stdout: '', stderr: 'gatehouse: no such user\n' });
    expect(await users(['show', String(ada.id + 1000)])).toMatchObject({ code: 1, stderr: 'gatehouse: no such user\n' });
  });

  it('disable ends the sessions for good, enable lets the user sign in again, each audited as the operator', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    const disabled = await users(['disable', 'ada@example.com']);
    expect(disabled).toMatchObject({ code: 0, stdout: `disabled user ${ada.id} <ada@example.com>; 1 session(s) revoked\n` });
    // The service hears of it from the database: its next revocation sync, and its user status within a second.
    await test.deps.denylist.sync();
    expect(json(await me(ada.token)).message).toBe('auth failed - token has been revoked');
    expect((await loginUser(test.app, 'ada@example.com')).statusCode).toBe(403);

    const enabled = JSON.parse((await users(['enable', String(ada.id), '--json'])).stdout);
    expect(enabled).toMatchObject({ user: { id: ada.id, disabled: false, disabled_at: null }, revoked_sessions: 0 });
    test.clock.advanceSeconds(2);
    expect((await me(ada.token)).statusCode).toBe(401);
    expect((await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: ada.refreshToken } })).statusCode).toBe(401);
    expect((await loginUser(test.app, 'ada@example.com')).statusCode).toBe(201);

    const events = await operatorEvents('admin.user_update');
    expect(events.map((event) => [event.actor_type, event.subject_id, event.details])).toEqual([
      ['operator', String(ada.id), { before: { disabled: false }, after: { disabled: true }, revoked_sessions: 1 }],
      ['operator', String(ada.id), { before: { disabled: true }, after: { disabled: false }, revoked_sessions: 0 }],
    ]);
  });

  it('set-roles checks ROLES, ends the sessions when a role goes, and keeps the last admin', async () => {
    const root = await signedInAdmin(test, 'root@example.com');
    const ada = await signedInUser(test.app, 'ada@example.com');
    expect(await users(['set-roles', 'ada@example.com', 'user,superuser'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/^gatehouse: roles "superuser" not in ROLES \(user, admin\)\n$/) });
    expect(await users(['set-roles', 'ada@example.com', 'user, admin'])).toMatchObject({ code: 0, stdout: `set the roles of user ${ada.id} <ada@example.com> to user, admin; 0 session(s) revoked\n` });
    expect(await users(['set-roles', 'root@example.com', 'user'])).toMatchObject({ code: 0, stdout: expect.stringContaining('1 session(s) revoked') });
    await test.deps.denylist.sync();
    expect((await me(root.token)).statusCode).toBe(401);
    expect((await me(ada.token)).statusCode).toBe(200);

    // Ada is now the only enabled admin.
    for (const argv of [['set-roles', 'ada@example.com', 'user'], ['disable', 'ada@example.com'], ['delete', 'ada@example.com'], ['set-roles', 'ada@example.com', '']]) {
      expect(await users(argv)).toMatchObject({ code: 1, stderr: expect.stringMatching(/^gatehouse: refused: this is the last enabled admin/) });
    }
    const row = await test.deps.db.selectFrom('users').select(['roles', 'disabled_at']).where('id', '=', ada.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ roles: '["user","admin"]', disabled_at: null });
    expect((await operatorEvents('admin.user_update')).filter((event) => event.outcome === 'failure').map((event) => event.reason)).toEqual(['last_admin', 'last_admin', 'last_admin']);
  });

  it('delete removes the user and its sessions; a second time exits 1', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    expect(await users(['delete', 'ada@example.com', '--json'])).toMatchObject({ code: 0, stdout: `${JSON.stringify({ id: ada.id, email: 'ada@example.com', deleted: true, revoked_sessions: 1 })}\n` });
    expect(await test.deps.db.selectFrom('sessions').select('id').where('user_id', '=', ada.id).execute()).toEqual([]);
    test.clock.advanceSeconds(2);
    expect((await me(ada.token)).statusCode).toBe(401);
    expect(await users(['delete', 'ada@example.com'])).toMatchObject({ code: 1, stderr: 'gatehouse: no such user\n' });
    const [event] = await operatorEvents('admin.user_delete');
    expect(event).toMatchObject({ actor_type: 'operator', subject_id: String(ada.id), details: { before: { email: 'ada@example.com' }, after: null, revoked_sessions: 1 } });
  });

  it('sessions revoke --user ends every session of the account', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    await loginUser(test.app, 'ada@example.com');
    const bob = await signedInUser(test.app, 'bob@example.com');
    expect(await sessions(['revoke', '--user', 'Ada@Example.com'])).toMatchObject({ code: 0, stdout: `revoked 2 session(s) of user ${ada.id} <ada@example.com>\n` });
    expect(JSON.parse((await sessions(['revoke', '--user', String(ada.id), '--json'])).stdout)).toEqual({ user_id: ada.id, revoked: 0 });
    await test.deps.denylist.sync();
    expect((await me(ada.token)).statusCode).toBe(401);
    expect((await me(bob.token)).statusCode).toBe(200);
    expect(await sessions(['revoke', '--user', 'nobody@example.com'])).toMatchObject({ code: 1, stderr: 'gatehouse: no such user\n' });
    expect((await operatorEvents('admin.user_sessions_revoke')).map((event) => event.details)).toEqual([{ revoked_sessions: 2 }, { revoked_sessions: 0 }]);
  });

  it('refuses a malformed command with the usage (exit 2), touching nothing', async () => {
    await signupUser(test.app, { email: 'ada@example.com' });
    for (const argv of [
      ['show'],
      ['show', 'a', 'b'],
      ['disable'],
      ['list', 'extra'],
      ['list', '--disabled', '--enabled'],
      ['list', '--limit', '0'],
      ['list', '--limit', 'ten'],
      ['list', '--user', 'x'],
      ['set-roles', 'ada@example.com'],
      ['delete', 'ada@example.com', '--force'],
    ]) {
      expect(await users(argv), argv.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: `${USAGE}\n` });
    }
    for (const argv of [['revoke'], ['revoke', '--user'], ['revoke', '--user', ''], ['list'], ['revoke', 'ada@example.com']]) {
      expect(await sessions(argv), argv.join(' ')).toMatchObject({ code: 2, stderr: `${USAGE}\n` });
    }
    expect(await test.deps.db.selectFrom('users').select('id').execute()).toHaveLength(1);
    expect(await runUserAdminCommand(['frobnicate'], USAGE, captureIo(database, test).io)).toBe(2);
  });
});

const redisUnderTest = testRedis();

describe.skipIf(!redisUnderTest).each(testDialects())('gatehouse users disable with REDIS_URL [redis] [%s]', (dialect) => {
  it('tells the running service at once: its denylist hears the sessions without a database sync', async () => {
    const database = await createTestDatabase(dialect);
    const env = { REDIS_URL: redisUnderTest!.url, REDIS_KEY_PREFIX: redisUnderTest!.keyPrefix };
    const test = await openTestApp(database, env);
    try {
      const ada = await signedInUser(test.app, 'ada@example.com');
      const sid = (await test.deps.db.selectFrom('sessions').select('id').where('user_id', '=', ada.id).executeTakeFirstOrThrow()).id;
      const { io, output } = captureIo(database, test, env);
      expect(await runUserAdminCommand(['disable', 'ada@example.com'], USAGE, io), output.stderr).toBe(0);
      await vi.waitFor(() => expect(test.deps.denylist.isRevoked(sid)).toBe(true), { timeout: 2000, interval: 10 });
    } finally {
      await test.close();
      await database.drop();
      const raw = new Redis(redisUnderTest!.url);
      raw.on('error', () => {});
      for await (const keys of raw.scanStream({ match: `${redisUnderTest!.keyPrefix}*`, count: 500 })) if ((keys as string[]).length > 0) await raw.del(...(keys as string[]));
      await raw.quit();
    }
  });
});

describe('npx gatehouse (the bin entry)', () => {
  it('is declared by the server workspace, so npm links it into node_modules/.bin, and is an executable Node script', () => {
    const manifest = JSON.parse(readFileSync('packages/server/package.json', 'utf8'));
    expect(manifest.bin).toEqual({ gatehouse: 'bin/gatehouse.mjs' });
    expect(readFileSync('packages/server/bin/gatehouse.mjs', 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
    accessSync('packages/server/bin/gatehouse.mjs', constants.X_OK);
  });

  it('runs the CLI on plain Node: --help, and users list against a database', async () => {
    const database = await createTestDatabase('sqlite');
    try {
      const env = { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'silent' };
      const help = await run('packages/server/bin/gatehouse.mjs', ['--help'], { env });
      expect(help.stdout).toMatch(/^usage: gatehouse <command>/);
      const test = await openTestApp(database);
      await signupUser(test.app, { email: 'ada@example.com' });
      await test.close();
      const listed = await run('packages/server/bin/gatehouse.mjs', ['users', 'list', '--json'], { env });
      expect(JSON.parse(listed.stdout)).toMatchObject({ email: 'ada@example.com', roles: ['user'] });
      await expect(run('packages/server/bin/gatehouse.mjs', ['users', 'show', 'nobody@example.com'], { env })).rejects.toMatchObject({ code: 1, stderr: 'gatehouse: no such user\n' });
    } finally {
      await database.drop();
    }
  }, 60_000);
});
