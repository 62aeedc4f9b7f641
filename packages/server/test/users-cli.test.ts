import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runUsersCommand } from '../src/users/commands.ts';
import { createTestDatabase, FAST_ARGON2, json, loginUser, openTestApp, signupUser, STRONG_PASSWORD, testDialects, type TestApp, type TestDatabase } from './helpers.ts';

const USAGE = 'usage: gatehouse (test)';
const run = promisify(execFile);

/** The real CLI as an operator runs it, the password piped on stdin. */
function cliWithStdin(args: string[], env: Record<string, string>, stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe.each(testDialects())('gatehouse users create and ADMIN_EMAIL [%s]', (dialect) => {
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

  async function users(argv: string[], password: string) {
    let stdout = '';
    let stderr = '';
    const code = await runUsersCommand(argv, USAGE, {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      env: { DATABASE_URL: database.url, LOG_LEVEL: 'silent' },
      clock: test.clock,
      readPassword: async () => password,
      argon2: FAST_ARGON2,
    });
    return { code, stdout, stderr };
  }

  it('creates the first admin: the password from stdin, never argv; the admin signs in through the normal API and sees every user', async () => {
    await signupUser(test.app, { email: 'someone@example.com' });
    const created = await cliWithStdin(['users', 'create', '--email', 'root@example.com', '--name', 'Root', '--admin', '--json'], { DATABASE_URL: database.url, LOG_LEVEL: 'silent' }, `${STRONG_PASSWORD}\n`);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ email: 'root@example.com', name: 'Root', roles: ['user', 'admin'] });
    expect(created.stdout + created.stderr).not.toContain(STRONG_PASSWORD);

    const login = await loginUser(test.app, 'root@example.com');
    expect(login.statusCode).toBe(201);
    const listed = json(await test.app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': json(login).token } }));
    expect(listed.users.map((user: { email: string }) => user.email)).toEqual(['someone@example.com', 'root@example.com']);
    // Stored as Argon2id, not as given.
    const row = await test.deps.db.selectFrom('users').select('password_hash').where('email_normalized', '=', 'root@example.com').executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
  });

  it('without --admin makes a plain user; refuses a taken email, a weak password and an empty one, with the reason', async () => {
    expect(await users(['create', '--email', 'plain@example.com', '--name', 'Plain'], STRONG_PASSWORD)).toMatchObject({ code: 0, stdout: expect.stringMatching(/^created user \d+ <plain@example.com> with roles user\n$/) });
    expect(await users(['create', '--email', 'PLAIN@example.com', '--name', 'Again'], STRONG_PASSWORD)).toMatchObject({ code: 1, stderr: 'gatehouse: email already registered\n' });
    const weak = await users(['create', '--email', 'weak@example.com', '--name', 'Weak'], 'short');
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/^gatehouse: .*password/);
    expect(await users(['create', '--email', 'empty@example.com', '--name', 'Empty'], '')).toMatchObject({ code: 1 });
    const count = await test.deps.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
  });

  it('refuses a malformed command, and any --password option, with the usage (exit 2)', async () => {
    for (const argv of [['create', '--email', 'x@example.com'], ['create', '--name', 'X'], ['create', '--email', 'x@example.com', '--name', 'X', '--password', 'secret'], ['delete'], []]) {
      expect(await users(argv, STRONG_PASSWORD)).toMatchObject({ code: 2, stderr: `${USAGE}\n` });
    }
  });

  it('ADMIN_EMAIL promotes that existing user at start, once; it never creates an account', async () => {
    await signupUser(test.app, { email: 'boss@example.com' });
    const promoted = await openTestApp(database, { ADMIN_EMAIL: 'Boss@Example.com' });
    expect(promoted.deps.adminPromotion).toEqual({ email: 'Boss@Example.com', outcome: 'promoted' });
    const login = json(await loginUser(promoted.app, 'boss@example.com'));
    const me = json(await promoted.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': login.token } }));
    expect(me.data.roles).toEqual(['user', 'admin']);
    await promoted.close();

    const again = await openTestApp(database, { ADMIN_EMAIL: 'boss@example.com' });
    expect(again.deps.adminPromotion?.outcome).toBe('already_admin');
    await again.close();
    const missing = await openTestApp(database, { ADMIN_EMAIL: 'nobody@example.com' });
    expect(missing.deps.adminPromotion?.outcome).toBe('no_such_user');
    await missing.close();
    const count = await test.deps.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
  });
});

describe('gatehouse --help', () => {
  it.each([['--help'], ['-h'], ['help'], ['keys', '--help'], ['clients', 'create', '--help'], ['users', '--help'], ['db', 'copy', '--help']])('%s prints the usage and exits 0', async (...args) => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', ...args], { env: { ...process.env, LOG_LEVEL: 'silent' } });
    expect(stdout).toMatch(/^usage: gatehouse <command>/);
    expect(stdout).toContain('users create --email');
  });
});
