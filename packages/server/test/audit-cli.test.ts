import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAuditCommand } from '../src/audit/commands.ts';
import { runClientsCommand } from '../src/clients/commands.ts';
import { createTestDatabase, json, loginUser, openTestApp, signupUser, STRONG_PASSWORD, testDialects, type TestApp, type TestDatabase } from './helpers.ts';

const USAGE = 'usage: gatehouse (test)';
const run = promisify(execFile);

describe.each(testDialects())('gatehouse audit, and the CLI changes it records [%s]', (dialect) => {
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
  const env = () => ({ DATABASE_URL: database.url, LOG_LEVEL: 'silent' });

  /** Runs the command in this process; `writes` counts stdout writes (export writes one per keyset page). */
  async function audit(argv: string[], options: { signal?: AbortSignal; onWrite?: (text: string) => void } = {}) {
    let stdout = '';
    let stderr = '';
    let writes = 0;
    const code = await runAuditCommand(argv, USAGE, {
      stdout: {
        write: (text: string) => {
          writes++;
          stdout += text;
          options.onWrite?.(text);
          return true;
        },
      },
      stderr: { write: (text: string) => (stderr += text) },
      env: env(),
      pollIntervalMs: 20,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { code, stdout, stderr, writes };
  }
  async function clients(...argv: string[]) {
    let stdout = '';
    const code = await runClientsCommand(argv, USAGE, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true }, env: env(), clock: test.clock });
    return { code, stdout };
  }
  const lines = (text: string) => text.trim().split('\n').filter(Boolean);

  it('records every client change made from the CLI as the operator, never the secret', async () => {
    const created = await clients('create', '--id', 'billing', '--name', 'Billing', '--type', 'confidential', '--scope', 'invoices:read', '--json');
    const secret = JSON.parse(created.stdout).client_secret as string;
    const rotated = await clients('rotate-secret', 'billing', '--grace', '1h', '--json');
    const newSecret = JSON.parse(rotated.stdout).client_secret as string;
    expect((await clients('disable', 'billing')).code).toBe(0);
    expect((await clients('enable', 'billing')).code).toBe(0);
    expect((await clients('delete', 'billing')).code).toBe(0);
    expect((await clients('disable', 'gatehouse')).code).toBe(1); // refused: nothing changed, nothing recorded

    const exported = (await audit(['export'])).stdout;
    const events = lines(exported).map((line) => JSON.parse(line));
    expect(events.map((event) => [event.action, event.actor, event.subject])).toEqual(
      ['client.create', 'client.rotate_secret', 'client.disable', 'client.enable', 'client.delete'].map((action) => [action, { type: 'operator', id: null }, { type: 'client', id: 'billing' }]),
    );
    expect(events[0].details).toEqual({ after: { name: 'Billing', type: 'confidential', audiences: [], scopes: ['invoices:read'] } });
    expect(events[1].details).toEqual({ grace_seconds: 3600 });
    expect(events[2].details).toEqual({ after: { disabled: true }, revoked_sessions: 0 });
    expect(exported).not.toContain(secret);
    expect(exported).not.toContain(newSecret);
    const stored = JSON.stringify(await test.deps.db.selectFrom('audit_events').selectAll().execute());
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(newSecret);
  });

  it('records gatehouse keys rotate (the real command, in its own process) with the new key as subject', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', 'keys', 'rotate'], { env: { ...process.env, ...env() } });
    const kid = /^new signing key (\S+) /m.exec(stdout)?.[1];
    expect(kid).toBeDefined();
    const [event] = lines((await audit(['export', '--action', 'key.rotate'])).stdout).map((line) => JSON.parse(line));
    expect(event).toMatchObject({ action: 'key.rotate', outcome: 'success', actor: { type: 'operator', id: null }, subject: { type: 'key', id: kid } });
    expect(event.details).toMatchObject({ algorithm: 'EdDSA', immediately: false, replaces: [expect.any(String)] });
    expect(JSON.stringify(event)).not.toMatch(/"d"|PRIVATE/);
  }, 30_000);

  it('tail prints the latest events oldest first, as text or JSON lines, filtered; export streams JSON lines by pages, filtered by time', async () => {
    expect((await signupUser(test.app, { email: 'ann@example.com' })).statusCode).toBe(201);
    const ann = json(await loginUser(test.app, 'ann@example.com')).data.id as number;
    test.clock.advanceSeconds(3600);
    await signupUser(test.app, { email: 'bob@example.com' });
    await loginUser(test.app, 'bob@example.com', 'not the right password');
    await test.deps.audit.flush();

    const text = lines((await audit(['tail'])).stdout);
    expect(text).toHaveLength(4);
    expect(text[0]).toMatch(/^2026-06-01T12:00:00\.000Z {2}user\.signup {2}success {2}actor=user:\d+ {2}subject=user:\d+ {2}ip=127\.0\.0\.1 {2}request=\S+ {2}agent="lightMyRequest"$/);
    expect(text[3]).toMatch(/^2026-06-01T13:00:00\.000Z {2}user\.login_failed {2}failure\(wrong_password\) {2}actor=anonymous {2}subject=user:\d+ .*\{"email":"bob@example\.com","client_id":"gatehouse"\}$/);
    expect(text.join('\n')).not.toContain('not the right password');

    const jsonLines = lines((await audit(['tail', '--json', '--limit', '2'])).stdout).map((line) => JSON.parse(line));
    expect(jsonLines.map((event) => event.action)).toEqual(['user.signup', 'user.login_failed']);
    expect(lines((await audit(['tail', '--json', '--user', String(ann)])).stdout).map((line) => JSON.parse(line).action)).toEqual(['user.signup', 'user.login']);
    expect(lines((await audit(['tail', '--action', 'user.login'])).stdout)).toHaveLength(1);

    const since = lines((await audit(['export', '--since', '2026-06-01T12:30:00Z'])).stdout).map((line) => JSON.parse(line).action);
    expect(since).toEqual(['user.signup', 'user.login_failed']);
    expect(lines((await audit(['export', '--until', '2026-06-01T12:30:00Z'])).stdout).map((line) => JSON.parse(line).action)).toEqual(['user.signup', 'user.login']);

    // 2 500 more: three keyset pages of at most 1 000, written one page at a time, in id order.
    const rows = Array.from({ length: 2500 }, (_, index) => ({
      occurred_at: Date.parse('2026-06-02T00:00:00Z') + index,
      action: 'client.token',
      outcome: 'success' as const,
      reason: null,
      actor_type: 'client',
      actor_id: `c${index}`,
      subject_type: null,
      subject_id: null,
      ip: null,
      user_agent: null,
      request_id: null,
      details: null,
    }));
    for (let start = 0; start < rows.length; start += 500) await test.deps.db.insertInto('audit_events').values(rows.slice(start, start + 500)).execute();
    const exported = await audit(['export', '--action', 'client.token']);
    expect(exported.code).toBe(0);
    const actors = lines(exported.stdout).map((line) => JSON.parse(line).actor.id);
    expect(actors).toEqual(rows.map((row) => row.actor_id));
    expect(exported.writes).toBe(3);
  });

  it('tail --follow prints events as they are written until stopped', async () => {
    await signupUser(test.app, { email: 'cat@example.com' });
    await test.deps.audit.flush();
    const controller = new AbortController();
    const seen: string[] = [];
    let resolveSeen: () => void;
    const sawLogin = new Promise<void>((resolve) => (resolveSeen = resolve));
    const following = audit(['tail', '--follow', '--json'], {
      signal: controller.signal,
      onWrite: (text) => {
        seen.push(...lines(text).map((line) => JSON.parse(line).action));
        if (seen.includes('user.login')) resolveSeen();
      },
    });
    // Until the first poll has run, the login below could land in the first page: it must be printed once either way.
    expect((await loginUser(test.app, 'cat@example.com', STRONG_PASSWORD)).statusCode).toBe(201);
    await test.deps.audit.flush();
    await sawLogin;
    controller.abort();
    const result = await following;
    expect(result.code).toBe(0);
    expect(seen).toEqual(['user.signup', 'user.login']);
  });

  it('refuses malformed commands with the usage and exit code 2, touching nothing', async () => {
    for (const argv of [[], ['frobnicate'], ['tail', 'extra'], ['tail', '--since', '2026-01-01'], ['export', '--follow'], ['tail', '--limit', 'ten'], ['tail', '--limit', '0'], ['tail', '--limit', '5000'], ['export', '--since', 'yesterday'], ['export', '--user', 'ann@example.com'], ['tail', '--colour']]) {
      const result = await audit(argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr).toContain(USAGE);
      expect(result.stdout).toBe('');
    }
  });
});
