/**
 * What an adversarial review of the admin API found: a login whose password check straddles an admin
 * change (demotion, disable, delete) must not open a session that outlives it; a password typed into
 * the email field stays out of the audit log; a large admin change keeps its before/after; and the
 * probes that held (client tokens, bad filters, ids and cursors) stay held.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { registerConfidentialClient } from './oauth-helpers.ts';
import { expectErrorEnvelope, json, loginUser, signedInAdmin, signupUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

// Slow enough that a login's password check is still running when an admin's change commits.
const SLOW_ARGON2 = { memoryCost: 32 * 1024, timeCost: 3, parallelism: 1 };

function call(test: TestApp, method: 'GET' | 'PATCH' | 'DELETE' | 'POST', url: string, token: string, payload?: unknown) {
  return test.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
}

/** Resolves once the hashing pool is running a job (the login read the user row and is verifying). */
async function hashingStarted(test: TestApp): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (test.deps.hasher.stats().busy > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error('hashing never started');
}

async function promote(test: TestApp, email: string) {
  await test.deps.db.updateTable('users').set({ roles: JSON.stringify(['user', 'admin']) }).where('email_normalized', '=', email).execute();
}

describe.each(testDialects())('a login racing an admin change [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('a login in flight when its admin role is taken away must not hand out a token that still passes the admin guard', async () => {
    test = await startTestApp(dialect, { HASH_POOL_SIZE: '1' }, { ownHasher: SLOW_ARGON2 });
    const root = await signedInAdmin(test, 'root@example.com');
    expect((await signupUser(test.app, { email: 'mallory@example.com' })).statusCode).toBe(201);
    await promote(test, 'mallory@example.com');
    const mallory = (await test.deps.db.selectFrom('users').select('id').where('email_normalized', '=', 'mallory@example.com').executeTakeFirstOrThrow()).id;

    // Mallory (about to be demoted) logs in; while her password is being verified, root demotes her.
    const login = loginUser(test.app, 'mallory@example.com');
    await hashingStarted(test);
    const demote = await call(test, 'PATCH', `/users/${mallory}`, root.token, { roles: ['user'] });
    expect(demote.statusCode, demote.body).toBe(200);
    const loggedIn = await login;
    expect(loggedIn.statusCode).toBe(201);
    const token = json(loggedIn).token as string;

    // The demotion is committed: she is no admin. Her fresh token must not open the admin API.
    const stored = await test.deps.db.selectFrom('users').select('roles').where('id', '=', mallory).executeTakeFirstOrThrow();
    expect(JSON.parse(stored.roles)).toEqual(['user']);
    const adminCall = await call(test, 'GET', '/audit', token);
    expect(adminCall.statusCode, `demoted admin still reaches GET /audit: ${adminCall.body.slice(0, 120)}`).toBe(403);
    // The session opened after the demotion committed: its token carries the roles as they are now.
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).roles).toEqual(['user']);
  });

  it('a login in flight when the account is disabled must not leave a session that comes back when it is enabled again', async () => {
    test = await startTestApp(dialect, { HASH_POOL_SIZE: '1' }, { ownHasher: SLOW_ARGON2 });
    const root = await signedInAdmin(test, 'root@example.com');
    const signup = await signupUser(test.app, { email: 'eve@example.com' });
    const eve = json(signup).data.id as number;

    const login = loginUser(test.app, 'eve@example.com');
    await hashingStarted(test);
    expect((await call(test, 'PATCH', `/users/${eve}`, root.token, { disabled: true })).statusCode).toBe(200);
    const loggedIn = await login;
    // The disable committed while the password was being checked: the session is refused, as for any disabled account.
    expectErrorEnvelope(loggedIn, 403, 'verification failed - incorrect user email or password');
    expect((await call(test, 'PATCH', `/users/${eve}`, root.token, { disabled: false })).statusCode).toBe(200);
    const sessions = await test.deps.db.selectFrom('sessions').select('id').where('user_id', '=', eve).execute();
    expect(sessions, 'no session was opened for the disabled account').toEqual([]);
    await test.deps.audit.flush();
    const failure = await test.deps.db.selectFrom('audit_events').select('reason').where('action', '=', 'user.login_failed').executeTakeFirstOrThrow();
    expect(failure.reason).toBe('changed_during_login');
  });

  it('a login in flight when the account is deleted gets a clean 401, not a 500', async () => {
    test = await startTestApp(dialect, { HASH_POOL_SIZE: '1' }, { ownHasher: SLOW_ARGON2 });
    const root = await signedInAdmin(test, 'root@example.com');
    const eve = json(await signupUser(test.app, { email: 'eve@example.com' })).data.id as number;

    const login = loginUser(test.app, 'eve@example.com');
    await hashingStarted(test);
    expect((await call(test, 'DELETE', `/users/${eve}`, root.token)).statusCode).toBe(200);
    const loggedIn = await login;
    expectErrorEnvelope(loggedIn, 403, 'verification failed - incorrect user email or password');
  });
});

describe.each(testDialects())('secrets in the audit log [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('a password typed into the email field of a login is not stored in the audit log nor served by GET /audit', async () => {
    test = await startTestApp(dialect);
    const root = await signedInAdmin(test, 'root@example.com');
    // The classic slip: the password typed in the username box, then the real attempt.
    const password = 'Tr0ub4dor&3-my-real-password';
    const slip = await loginUser(test.app, password, password);
    expect(slip.statusCode).toBe(403); // the seed's invalid_credentials
    await test.deps.audit.flush();
    const stored = await test.deps.db.selectFrom('audit_events').select(['action', 'details']).where('action', '=', 'user.login_failed').execute();
    expect(stored.length).toBe(1);
    const served = await call(test, 'GET', '/audit?action=user.login_failed', root.token);
    expect(served.statusCode).toBe(200);
    expect(stored[0]!.details ?? '', 'the audit row holds the password').not.toContain(password);
    expect(served.body, 'GET /audit serves the password to every admin').not.toContain(password);
    expect(JSON.parse(stored[0]!.details!)).toEqual({ email_invalid: true, client_id: 'gatehouse' });
    // A real address is kept: the account tried is what an operator reads a failure for.
    await loginUser(test.app, 'nobody@example.com', password);
    await test.deps.audit.flush();
    const typed = await test.deps.db.selectFrom('audit_events').select('details').where('action', '=', 'user.login_failed').orderBy('id', 'desc').executeTakeFirstOrThrow();
    expect(JSON.parse(typed.details!)).toEqual({ email: 'nobody@example.com', client_id: 'gatehouse' });
  });
});

describe.each(testDialects())('admin routes under probing [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('a client_credentials token opens no admin route; bad filters, ids and cursors answer 4xx envelopes', async () => {
    test = await startTestApp(dialect);
    const root = await signedInAdmin(test, 'root@example.com');
    const service = await registerConfidentialClient(test, { id: 'orders-api', scopes: ['orders:read'] });
    const issued = await test.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: 'grant_type=client_credentials',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service.basic },
    });
    expect(issued.statusCode).toBe(200);
    const clientToken = json(issued).access_token as string;
    for (const url of ['/audit', '/users?role=admin', `/users/${root.id}`, '/keys', '/clients']) {
      const response = await call(test, 'GET', url, clientToken);
      expect([401, 403], `${url}: ${response.body.slice(0, 100)}`).toContain(response.statusCode);
    }
    // x-access-token (the seed's header) with a client token: same refusal.
    const seedHeader = await test.app.inject({ method: 'GET', url: '/audit', headers: { 'x-access-token': clientToken } });
    expect([401, 403]).toContain(seedHeader.statusCode);

    for (const url of ['/users?email=%5C', '/users?email=a%5C%25', '/users?email=%E2%80%AE']) {
      const response = await call(test, 'GET', url, root.token);
      expect(response.statusCode, `${url}: ${response.body.slice(0, 100)}`).toBe(200);
    }
    for (const url of [
      '/audit?since=2026-13-45',
      '/audit?until=yesterday',
      '/audit?cursor=zzz',
      `/audit?cursor=${Buffer.from('a:-1').toString('base64url')}`,
      '/audit?user_id=-1',
      '/audit?user_id=1.5',
      '/audit?limit=0',
      '/audit?limit=1000',
      '/users?cursor=%00',
      `/users?cursor=${Buffer.from('u:99999999999999999999').toString('base64url')}`,
      '/users/1/sessions?active=maybe',
      '/sessions/..%2F..',
    ]) {
      const response = await call(test, url.startsWith('/sessions') ? 'DELETE' : 'GET', url, root.token);
      expect([400, 404], `${url}: ${response.body.slice(0, 200)}`).toContain(response.statusCode);
      expectErrorEnvelope(response, response.statusCode);
    }
    for (const body of ['{"__proto__":{"disabled":true}}', '{"constructor":{"prototype":{"x":1}}}', '{"roles":["admin","admin"]}', '{"roles":"admin"}', '{"email":"ROOT@example.com "}', '{}']) {
      const response = await test.app.inject({ method: 'PATCH', url: `/users/${root.id}`, payload: body, headers: { authorization: `Bearer ${root.token}`, 'content-type': 'application/json' } });
      expect(response.statusCode, `${body}: ${response.body.slice(0, 200)}`).toBeLessThan(500);
    }
  });
});

describe.each(testDialects())('audit details of a large change [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('an admin change that PATCH accepts keeps its before/after in the audit log', async () => {
    const roles = Array.from({ length: 126 }, (_, i) => `r${String(i).padStart(2, '0')}${'x'.repeat(60)}`);
    test = await startTestApp(dialect, { ROLES: ['user', 'admin', ...roles].join(',') });
    const root = await signedInAdmin(test, 'root@example.com');
    const user = json(await signupUser(test.app, { email: 'ada@example.com' })).data.id as number;
    const patched = await call(test, 'PATCH', `/users/${user}`, root.token, { roles: ['user', ...roles.slice(0, 63)] });
    expect(patched.statusCode, patched.body.slice(0, 200)).toBe(200);
    const removed = await call(test, 'PATCH', `/users/${user}`, root.token, { roles: ['user', ...roles.slice(63)] });
    expect(removed.statusCode, removed.body.slice(0, 200)).toBe(200);
    await test.deps.audit.flush();
    const events = await test.deps.db.selectFrom('audit_events').select('details').where('action', '=', 'admin.user_update').orderBy('id').execute();
    expect(events.length).toBe(2);
    for (const event of events) expect(JSON.parse(event.details!), 'the audit event lost what changed').toHaveProperty('before.roles');
  });
});
