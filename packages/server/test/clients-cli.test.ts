import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runClientsCommand } from '../src/clients/commands.ts';
import { createTestDatabase, json, openTestApp, signupUser, STRONG_PASSWORD, testDialects, type TestApp, type TestDatabase } from './helpers.ts';
import { basicAuthorization, expectOAuthError, expectTokenAnswer, postForm } from './oauth-helpers.ts';

const USAGE = 'usage: gatehouse (test)';

describe.each(testDialects())('gatehouse clients [%s]', (dialect) => {
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

  /** Runs the command in this process, on the test's database and clock. */
  async function clients(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await runClientsCommand(argv, USAGE, {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      env: { DATABASE_URL: database.url, LOG_LEVEL: 'silent' },
      clock: test.clock,
    });
    return { code, stdout, stderr };
  }
  const clientCredentials = (authorization: string) => postForm(test.app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization });

  it('creates a confidential client: the secret printed once with a warning, stored only hashed, and it works at /oauth/token', async () => {
    const created = await clients('create', '--id', 'orders-api', '--name', 'Orders API', '--type', 'confidential', '--audience', 'https://orders.example', '--scope', 'orders:read', '--scope', 'orders:write');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^created confidential client orders-api \(Orders API\)\n {2}audiences: https:\/\/orders\.example\n {2}scopes: orders:read orders:write\n/);
    expect(created.stdout).toContain('will not show it again');
    const secret = /client secret: (ghcs_\S+)/.exec(created.stdout)?.[1];
    expect(secret).toBeDefined();
    const row = await test.deps.db.selectFrom('clients').selectAll().where('id', '=', 'orders-api').executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(secret!);

    const { body } = expectTokenAnswer(await clientCredentials(basicAuthorization('orders-api', secret!)));
    expect(body.scope).toBe('orders:read orders:write');
    // Never shown again: list has no secret.
    expect((await clients('list')).stdout).not.toContain(secret!);
    expect((await clients('list', '--json')).stdout).not.toContain(secret!);
  });

  it('prints JSON with --json (the warning on stderr), and lists clients as text or JSON', async () => {
    const created = await clients('create', '--id', 'report-worker', '--name', 'Reports', '--type', 'confidential', '--json');
    expect(created.code).toBe(0);
    const body = JSON.parse(created.stdout);
    expect(body).toMatchObject({ client: { id: 'report-worker', name: 'Reports', type: 'confidential', audiences: [], scopes: [], disabled_at: null }, client_secret: expect.stringMatching(/^ghcs_/) });
    expect(created.stderr).toContain('will not show it again');
    const spa = JSON.parse((await clients('create', '--id', 'spa', '--name', 'Web app', '--type', 'public', '--json')).stdout);
    expect(spa).not.toHaveProperty('client_secret');

    const listed = await clients('list');
    expect(listed.stdout.trim().split('\n').map((line) => line.split('  ').slice(0, 3).join(' '))).toEqual([
      'gatehouse public active',
      'report-worker confidential active',
      'spa public active',
    ]);
    expect(JSON.parse((await clients('list', '--json')).stdout).map((client: { id: string }) => client.id)).toEqual(['gatehouse', 'report-worker', 'spa']);
  });

  it('rotates a secret: with --grace the old one works until the grace ends; without, it is refused at once', async () => {
    const secret = JSON.parse((await clients('create', '--id', 'svc-a', '--name', 'A', '--type', 'confidential', '--json')).stdout).client_secret as string;
    const rotated = await clients('rotate-secret', 'svc-a', '--grace', '1h');
    expect(rotated.code).toBe(0);
    const second = /new client secret for svc-a: (ghcs_\S+)/.exec(rotated.stdout)?.[1];
    expect(rotated.stdout).toContain(`the previous secret still works until ${new Date((test.clock.nowSeconds() + 3600) * 1000).toISOString()}`);
    expect(second).toBeDefined();
    expect((await clients('list')).stdout).toMatch(/svc-a .*previous secret until/);

    expectTokenAnswer(await clientCredentials(basicAuthorization('svc-a', secret)));
    expectTokenAnswer(await clientCredentials(basicAuthorization('svc-a', second!)));
    test.clock.advanceSeconds(3600);
    expectOAuthError(await clientCredentials(basicAuthorization('svc-a', secret)), 401, 'invalid_client');

    const third = JSON.parse((await clients('rotate-secret', '--id', 'svc-a', '--json')).stdout);
    expect(third).toMatchObject({ client_id: 'svc-a', previous_secret_expires_at: null });
    expectOAuthError(await clientCredentials(basicAuthorization('svc-a', second!)), 401, 'invalid_client');
    expectTokenAnswer(await clientCredentials(basicAuthorization('svc-a', third.client_secret)));
  });

  it("deletes a client and revokes its sessions; refuses the default client and unknown ids", async () => {
    await clients('create', '--id', 'spa', '--name', 'Web app', '--type', 'public');
    await signupUser(test.app, { email: 'dana@example.com' });
    const login = json(await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'dana@example.com', password: STRONG_PASSWORD, client_id: 'spa' } }));
    const other = json(await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'dana@example.com', password: STRONG_PASSWORD } }));

    const deleted = await clients('delete', 'spa', '--json');
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ client_id: 'spa', deleted: true, revoked_sessions: 1 });
    // Every instance hears of it at its next revocation sync.
    await test.deps.denylist.sync();
    expect((await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: login.refresh_token } })).statusCode).toBe(401);
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': login.token } })).statusCode).toBe(401);
    // Other clients' sessions are untouched.
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': other.token } })).statusCode).toBe(200);

    const refused = await clients('delete', 'gatehouse');
    expect(refused).toMatchObject({ code: 1, stderr: 'gatehouse: the default client "gatehouse" cannot be deleted\n' });
    expect(await clients('delete', 'spa')).toMatchObject({ code: 1, stderr: 'gatehouse: no client "spa"\n' });
  });

  it('disables a client: its sessions end for good and its secret is refused; enabled again, it works for new sessions only', async () => {
    const created = JSON.parse((await clients('create', '--id', 'worker', '--name', 'Worker', '--type', 'confidential', '--json')).stdout);
    const worker = basicAuthorization('worker', created.client_secret);
    await clients('create', '--id', 'kiosk', '--name', 'Kiosk', '--type', 'public');
    await signupUser(test.app, { email: 'erin@example.com' });
    const login = json(await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'erin@example.com', password: STRONG_PASSWORD, client_id: 'kiosk' } }));

    const disabled = await clients('disable', 'kiosk', '--json');
    expect(disabled.code).toBe(0);
    expect(JSON.parse(disabled.stdout)).toEqual({ client_id: 'kiosk', disabled: true, revoked_sessions: 1 });
    expect((await clients('disable', 'worker')).stdout).toBe('disabled client worker; 0 session(s) revoked\n');
    await test.deps.denylist.sync();
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': login.token } })).statusCode).toBe(401);
    expect((await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'erin@example.com', password: STRONG_PASSWORD, client_id: 'kiosk' } })).statusCode).toBe(400);
    expectOAuthError(await clientCredentials(worker), 401, 'invalid_client');

    expect(await clients('enable', 'kiosk')).toMatchObject({ code: 0, stdout: 'enabled client kiosk\n' });
    await clients('enable', 'worker');
    expectTokenAnswer(await clientCredentials(worker));
    expect((await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: login.refresh_token } })).statusCode).toBe(401);
    expect((await test.app.inject({ method: 'POST', url: '/login', payload: { email: 'erin@example.com', password: STRONG_PASSWORD, client_id: 'kiosk' } })).statusCode).toBe(201);

    expect(await clients('disable', 'gatehouse')).toMatchObject({ code: 1, stderr: 'gatehouse: the default client "gatehouse" cannot be disabled\n' });
    expect(await clients('enable', 'nobody')).toMatchObject({ code: 1, stderr: 'gatehouse: no client "nobody"\n' });
    expect((await clients('disable')).code).toBe(2);
  });

  it('refuses bad values with the reason (exit 1) and malformed commands with the usage (exit 2)', async () => {
    const invalid = await clients('create', '--id', '12345', '--name', 'x', '--type', 'secret');
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/id must be .*type must be public or confidential/);
    expect((await clients('create', '--id', 'spa', '--name', 'x', '--type', 'public', '--scope', 'a')).stderr).toMatch(/public client cannot have scopes/);
    await clients('create', '--id', 'svc-b', '--name', 'B', '--type', 'confidential');
    expect(await clients('create', '--id', 'svc-b', '--name', 'B', '--type', 'confidential')).toMatchObject({ code: 1, stderr: 'gatehouse: client "svc-b" already exists\n' });
    expect((await clients('rotate-secret', 'svc-b', '--grace', 'forever')).code).toBe(1);
    expect((await clients('rotate-secret', 'svc-b', '--grace', '31d')).code).toBe(1);
    expect((await clients('rotate-secret', 'gatehouse')).stderr).toMatch(/is public: it has no secret/);

    for (const argv of [
      [],
      ['frobnicate'],
      ['create', '--id', 'svc-c', '--name', 'C'],
      ['create', '--id', 'svc-c', '--name', 'C', '--type', 'public', '--grace', '1h'],
      ['list', '--id', 'x'],
      ['list', 'extra'],
      ['delete'],
      ['delete', 'a', 'b'],
      ['delete', '--id', 'a', 'b'],
      ['rotate-secret', '--frob'],
    ]) {
      const result = await clients(...argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr).toContain(USAGE);
    }
  });
});

describe.each(testDialects())('gatehouse clients, as a process [%s]', (dialect) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(dialect);
  });
  afterAll(() => database.drop());
  const cli = (...args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', ...args], { env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'silent' } });

  it('is wired into the CLI with its usage', async () => {
    expect((await cli('clients', 'list')).stdout).toMatch(/^gatehouse {2}public {2}active/);
    const failure = await cli('clients', 'nope').catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toContain('clients rotate-secret <id> [--grace 1h]');
  });
});
