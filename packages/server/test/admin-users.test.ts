import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  assertNoLeak,
  createTestDatabase,
  expectErrorEnvelope,
  json,
  loginUser,
  openTestApp,
  signedInAdmin,
  signedInUser,
  signupUser,
  startTestApp,
  testDialects,
  testRedis,
  type TestApp,
} from './helpers.ts';

const ADMIN_USER_FIELDS = ['created_at', 'disabled', 'disabled_at', 'email', 'id', 'name', 'roles', 'updated_at'];

function call(test: TestApp, method: 'GET' | 'PATCH' | 'DELETE' | 'POST', url: string, token: string, payload?: unknown) {
  return test.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
}

async function auditRows(test: TestApp, action: string) {
  await test.deps.audit.flush();
  const rows = await test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('id').execute();
  return rows.map((row) => ({ ...row, details: row.details === null ? null : JSON.parse(row.details) }));
}

async function userRow(test: TestApp, id: number) {
  return test.deps.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

describe.each(testDialects())('admin API: users [%s]', (dialect) => {
  let test: TestApp;
  let admin: { id: number; token: string };
  beforeEach(async () => {
    test = await startTestApp(dialect);
    admin = await signedInAdmin(test, 'root@example.com');
  });
  afterEach(() => test.close());

  it('refuses non-admins with 403 and no token with 401, on every admin route', async () => {
    const user = await signedInUser(test.app, 'plain@example.com');
    const routes: Array<['GET' | 'PATCH' | 'DELETE' | 'POST', string, unknown?]> = [
      ['GET', `/users/${admin.id}`],
      ['PATCH', `/users/${user.id}`, { roles: ['user', 'admin'] }],
      ['DELETE', `/users/${admin.id}`],
      ['GET', `/users/${admin.id}/sessions`],
      ['POST', `/users/${admin.id}/sessions/revoke`],
      ['DELETE', '/sessions/abc'],
      ['GET', '/users?email=root'],
      ['GET', '/users?disabled=false'],
      ['GET', '/users?role=admin'],
    ];
    for (const [method, url, payload] of routes) {
      expectErrorEnvelope(await call(test, method, url, user.token, payload), 403, 'forbidden - admin role required');
      expectErrorEnvelope(await test.app.inject({ method, url, ...(payload ? { payload: payload as object } : {}) }), 401, 'auth failed - token is missing');
    }
    // Nothing changed: the plain user did not make themselves an admin, the admin still exists with a live session.
    expect(JSON.parse((await userRow(test, user.id))!.roles)).toEqual(['user']);
    expect((await call(test, 'GET', `/users/${admin.id}`, admin.token)).statusCode).toBe(200);
    // The seed's list is unchanged for a non-admin.
    expect(json(await call(test, 'GET', '/users', user.token))).toEqual({ users: [{ id: user.id, email: 'plain@example.com' }], next_cursor: null });
  });

  it('GET /users/:id answers the AdminUser; 404 for an unknown id; 400 for an id that is not a positive integer', async () => {
    const response = await call(test, 'GET', `/users/${admin.id}`, admin.token);
    expect(response.statusCode).toBe(200);
    assertNoLeak(response.body);
    const body = json(response);
    expect(body).toMatchObject({ status: true, code: 200, message: 'success' });
    expect(Object.keys(body.data).sort()).toEqual(ADMIN_USER_FIELDS);
    expect(body.data).toEqual({
      id: admin.id,
      email: 'root@example.com',
      name: 'Test User',
      roles: ['user', 'admin'],
      disabled: false,
      disabled_at: null,
      created_at: '2026-06-01T12:00:00.000Z',
      updated_at: '2026-06-01T12:00:00.000Z',
    });
    expectErrorEnvelope(await call(test, 'GET', `/users/${admin.id + 1000}`, admin.token), 404, 'user not found');
    for (const id of ['abc', '0', '-1', '1.5', '99999999999999999999', '1e3x', '%20']) {
      expectErrorEnvelope(await call(test, 'GET', `/users/${id}`, admin.token), 400, /^invalid request/);
    }
  });

  it('GET /users searches by email prefix (any case, % and _ literal), role and disabled, by cursor, with full records for an admin', async () => {
    const ids: Record<string, number> = {};
    for (const email of ['ada@example.com', 'Ada.Byron@example.com', 'adam@example.com', 'a_b@example.com', 'axb@example.com', 'a%c@example.com', 'bob@example.com']) {
      ids[email] = json(await signupUser(test.app, { email })).data.id;
    }
    await test.deps.db.updateTable('users').set({ roles: JSON.stringify(['user', 'support']) }).where('id', '=', ids['adam@example.com']!).execute();
    await test.deps.db.updateTable('users').set({ disabled_at: 1_780_000_000 }).where('id', 'in', [ids['ada@example.com']!, ids['bob@example.com']!]).execute();

    const emails = async (query: string) => {
      const response = await call(test, 'GET', `/users${query}`, admin.token);
      expect(response.statusCode, response.body).toBe(200);
      return json(response).users.map((user: { email: string }) => user.email);
    };
    expect(await emails('?email=ADA')).toEqual(['ada@example.com', 'Ada.Byron@example.com', 'adam@example.com']);
    expect(await emails('?email=a_')).toEqual(['a_b@example.com']);
    expect(await emails(`?email=${encodeURIComponent('a%')}`)).toEqual(['a%c@example.com']);
    expect(await emails('?role=support')).toEqual(['adam@example.com']);
    expect(await emails('?role=admin')).toEqual(['root@example.com']);
    expect(await emails('?disabled=true')).toEqual(['ada@example.com', 'bob@example.com']);
    expect(await emails('?disabled=false&email=ada')).toEqual(['Ada.Byron@example.com', 'adam@example.com']);
    expect(await emails('?role=user&disabled=false&email=b')).toEqual([]);

    // Pagination walks the filtered set exactly once.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { users: Array<Record<string, unknown>>; next_cursor: string | null } = json(
        await call(test, 'GET', `/users?email=a&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, admin.token),
      );
      expect(page.users.length).toBeLessThanOrEqual(2);
      for (const user of page.users) expect(Object.keys(user).sort()).toEqual(ADMIN_USER_FIELDS);
      seen.push(...page.users.map((user) => user.email as string));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(['ada@example.com', 'Ada.Byron@example.com', 'adam@example.com', 'a_b@example.com', 'axb@example.com', 'a%c@example.com']);

    const full = json(await call(test, 'GET', '/users?disabled=true&limit=1', admin.token));
    expect(full.users[0]).toMatchObject({ email: 'ada@example.com', disabled: true, disabled_at: new Date(1_780_000_000_000).toISOString() });
    for (const bad of ['?disabled=maybe', '?role=Not%20A%20Role', '?email=', '?unknown=1']) {
      expectErrorEnvelope(await call(test, 'GET', `/users${bad}`, admin.token), 400, /^invalid request/);
    }
  });

  it('PATCH changes the name without ending sessions, audits only what changed, and refuses bad input without storing anything', async () => {
    const user = await signedInUser(test.app, 'ada@example.com');
    test.clock.advanceSeconds(60);
    const response = await call(test, 'PATCH', `/users/${user.id}`, admin.token, { name: '  Ada Lovelace ' });
    expect(response.statusCode, response.body).toBe(200);
    expect(json(response)).toMatchObject({ message: 'user updated', data: { name: 'Ada Lovelace', updated_at: '2026-06-01T12:01:00.000Z', created_at: '2026-06-01T12:00:00.000Z' } });
    expect((await call(test, 'GET', '/me', user.token)).statusCode).toBe(200);

    const [event] = await auditRows(test, 'admin.user_update');
    expect(event).toMatchObject({
      outcome: 'success',
      actor_type: 'user',
      actor_id: String(admin.id),
      subject_type: 'user',
      subject_id: String(user.id),
      ip: '127.0.0.1',
      details: { before: { name: 'Test User' }, after: { name: 'Ada Lovelace' }, revoked_sessions: 0 },
    });
    expect(event!.request_id).toEqual(expect.any(String));

    const before = await userRow(test, user.id);
    const refusals: Array<[unknown, RegExp]> = [
      [{ nickname: 'x' }, /nickname/],
      [{}, /invalid request/],
      [{ roles: ['user', 'superuser'] }, /superuser.*not in ROLES/],
      [{ roles: ['User'] }, /roles/],
      [{ roles: ['user', 'user'] }, /roles/],
      [{ roles: 'admin' }, /roles/],
      [{ disabled: 'yes' }, /disabled/],
      [{ email: 'not-an-email' }, /email/],
      [{ name: ' ' }, /name must not be blank/],
      [{ name: 'a\u0000b' }, /name/],
      [{ name: 'Fine', roles: ['nope'] }, /nope/],
    ];
    for (const [payload, message] of refusals) {
      const refused = expectErrorEnvelope(await call(test, 'PATCH', `/users/${user.id}`, admin.token, payload), 400, message);
      expect(refused.data.errors.length).toBeGreaterThan(0);
    }
    expect(await userRow(test, user.id)).toEqual(before);
    expectErrorEnvelope(await call(test, 'PATCH', `/users/${user.id + 1000}`, admin.token, { name: 'Ghost' }), 404, 'user not found');
    expect(await auditRows(test, 'admin.user_update')).toHaveLength(1);
  });

  it('PATCH refuses an email another user has (any case) with 409, and a new email ends the sessions', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    await signupUser(test.app, { email: 'bob@example.com' });
    expectErrorEnvelope(await call(test, 'PATCH', `/users/${ada.id}`, admin.token, { email: 'BOB@example.com' }), 409, 'email already registered');
    expect((await userRow(test, ada.id))!.email).toBe('ada@example.com');
    expect((await call(test, 'GET', '/me', ada.token)).statusCode).toBe(200);

    await test.deps.db.updateTable('users').set({ email_verified_at: 1 }).where('id', '=', ada.id).execute();
    const changed = await call(test, 'PATCH', `/users/${ada.id}`, admin.token, { email: 'Ada.Lovelace@example.com' });
    expect(json(changed).data.email).toBe('Ada.Lovelace@example.com');
    // The old address was verified; nobody has shown they read mail at the new one.
    expect((await userRow(test, ada.id))!.email_verified_at).toBeNull();
    expectErrorEnvelope(await call(test, 'GET', '/me', ada.token), 401, 'auth failed - token has been revoked');
    expect((await loginUser(test.app, 'ada.lovelace@EXAMPLE.com')).statusCode).toBe(201);
    const [session] = await test.deps.db.selectFrom('sessions').select('revoked_reason').where('user_id', '=', ada.id).orderBy('created_at').execute();
    expect(session!.revoked_reason).toBe('email_changed');
  });

  it('disabling ends every session for good: enabling again does not bring old tokens back', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    const disabled = await call(test, 'PATCH', `/users/${ada.id}`, admin.token, { disabled: true });
    expect(json(disabled).data).toMatchObject({ disabled: true, disabled_at: '2026-06-01T12:00:00.000Z' });
    expectErrorEnvelope(await call(test, 'GET', '/me', ada.token), 401, 'auth failed - token has been revoked');
    expect((await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: ada.refreshToken } })).statusCode).toBe(401);
    expect((await loginUser(test.app, 'ada@example.com')).statusCode).toBe(403);

    const enabled = await call(test, 'PATCH', `/users/${ada.id}`, admin.token, { disabled: false });
    expect(json(enabled).data).toMatchObject({ disabled: false, disabled_at: null });
    // Past the status cache's second: the account is enabled, the old session is not.
    test.clock.advanceSeconds(2);
    expectErrorEnvelope(await call(test, 'GET', '/me', ada.token), 401, 'auth failed - token has been revoked');
    expect((await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: ada.refreshToken } })).statusCode).toBe(401);
    const again = json(await loginUser(test.app, 'ada@example.com'));
    expect((await call(test, 'GET', '/me', again.token)).statusCode).toBe(200);

    const events = await auditRows(test, 'admin.user_update');
    expect(events.map((event) => event.details)).toEqual([
      { before: { disabled: false }, after: { disabled: true }, revoked_sessions: 1 },
      { before: { disabled: true }, after: { disabled: false }, revoked_sessions: 0 },
    ]);
  });

  it('taking a role away ends the sessions; adding one does not', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    const granted = await call(test, 'PATCH', `/users/${ada.id}`, admin.token, { roles: ['user', 'admin'] });
    expect(json(granted).data.roles).toEqual(['user', 'admin']);
    expect((await call(test, 'GET', '/me', ada.token)).statusCode).toBe(200);
    const promoted = json(await loginUser(test.app, 'ada@example.com')).token;
    expect((await call(test, 'GET', `/users/${admin.id}`, promoted)).statusCode).toBe(200);

    expect(json(await call(test, 'PATCH', `/users/${ada.id}`, admin.token, { roles: ['user'] })).data.roles).toEqual(['user']);
    expectErrorEnvelope(await call(test, 'GET', `/users/${admin.id}`, promoted), 401, 'auth failed - token has been revoked');
    expectErrorEnvelope(await call(test, 'GET', '/me', ada.token), 401, 'auth failed - token has been revoked');
    const reasons = await test.deps.db.selectFrom('sessions').select('revoked_reason').where('user_id', '=', ada.id).execute();
    expect(reasons.map((row) => row.revoked_reason)).toEqual(['roles_changed', 'roles_changed']);
  });

  it('keeps the last enabled admin: no demotion, disable or delete of the only one (409); allowed once another admin exists', async () => {
    const before = await userRow(test, admin.id);
    for (const [method, payload] of [
      ['PATCH', { roles: ['user'] }],
      ['PATCH', { disabled: true }],
      ['PATCH', { name: 'Still Root', roles: [] }],
      ['DELETE', undefined],
    ] as const) {
      expectErrorEnvelope(await call(test, method, `/users/${admin.id}`, admin.token, payload), 409, /^conflict - the last admin/);
    }
    expect(await userRow(test, admin.id)).toEqual(before);
    expect((await call(test, 'GET', '/me', admin.token)).statusCode).toBe(200);
    const refusals = [...(await auditRows(test, 'admin.user_update')), ...(await auditRows(test, 'admin.user_delete'))];
    expect(refusals.map((event) => [event.outcome, event.reason])).toEqual([...Array(3).fill(['failure', 'last_admin']), ['failure', 'last_admin']]);

    // A disabled admin does not count.
    const other = await signedInAdmin(test, 'second@example.com');
    await test.deps.db.updateTable('users').set({ disabled_at: 1 }).where('id', '=', other.id).execute();
    expectErrorEnvelope(await call(test, 'PATCH', `/users/${admin.id}`, admin.token, { roles: ['user'] }), 409, /last admin/);
    await test.deps.db.updateTable('users').set({ disabled_at: null }).where('id', '=', other.id).execute();

    // Other changes of the last admin go through.
    expect((await call(test, 'PATCH', `/users/${other.id}`, other.token, { name: 'Second' })).statusCode).toBe(200);
    const demoted = await call(test, 'PATCH', `/users/${admin.id}`, admin.token, { roles: ['user'] });
    expect(json(demoted).data.roles).toEqual(['user']);
    expectErrorEnvelope(await call(test, 'DELETE', `/users/${other.id}`, other.token), 409, /last admin/);
  });

  it('two admins demoting each other at once leave exactly one admin (10 rounds)', async () => {
    const other = await signedInAdmin(test, 'second@example.com');
    for (let round = 0; round < 10; round += 1) {
      await test.deps.db.updateTable('users').set({ roles: JSON.stringify(['user', 'admin']), disabled_at: null }).where('id', 'in', [admin.id, other.id]).execute();
      // Fresh tokens: each demotion revokes the demoted admin's sessions.
      const [first, second] = await Promise.all([loginUser(test.app, 'root@example.com'), loginUser(test.app, 'second@example.com')]);
      const change = round % 2 === 0 ? { roles: ['user'] } : { disabled: true };
      const answers = await Promise.all([
        call(test, 'PATCH', `/users/${other.id}`, json(first!).token, change),
        call(test, 'PATCH', `/users/${admin.id}`, json(second!).token, change),
      ]);
      const statuses = answers.map((answer) => answer.statusCode).sort();
      // The loser either hits the rule (409) or finds its own token revoked by the winner's demotion first (401).
      expect([statuses, answers.map((answer) => answer.body)]).toEqual([expect.arrayContaining([200]), expect.anything()]);
      expect(statuses.filter((status) => status === 200)).toHaveLength(1);
      const admins = await test.deps.db.selectFrom('users').select('id').where('disabled_at', 'is', null).where('roles', 'like', '%"admin"%').execute();
      expect(admins).toHaveLength(1);
    }
  });

  it('DELETE ends the sessions, deletes the user (a second time: 404) and audits what was there', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    const sid = (await test.deps.db.selectFrom('sessions').select('id').where('user_id', '=', ada.id).executeTakeFirstOrThrow()).id;
    const deleted = await call(test, 'DELETE', `/users/${ada.id}`, admin.token);
    expect(json(deleted)).toEqual({ status: true, code: 200, message: 'user deleted', data: null });
    expectErrorEnvelope(await call(test, 'DELETE', `/users/${ada.id}`, admin.token), 404, 'user not found');
    expectErrorEnvelope(await call(test, 'GET', `/users/${ada.id}`, admin.token), 404, 'user not found');
    expect(await userRow(test, ada.id)).toBeUndefined();
    expect(await test.deps.db.selectFrom('sessions').select('id').where('user_id', '=', ada.id).execute()).toEqual([]);
    // Refused as revoked (the denylist heard of the session before its row went), and its refresh token is dead.
    expect(test.deps.denylist.isRevoked(sid)).toBe(true);
    expectErrorEnvelope(await call(test, 'GET', '/me', ada.token), 401, /^auth failed - token (has been revoked|is invalid)$/);
    expect((await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: ada.refreshToken } })).statusCode).toBe(401);
    expect((await loginUser(test.app, 'ada@example.com')).statusCode).toBe(403);
    // The email is free again.
    expect((await signupUser(test.app, { email: 'ada@example.com' })).statusCode).toBe(201);

    const [event] = await auditRows(test, 'admin.user_delete');
    expect(event).toMatchObject({
      outcome: 'success',
      actor_id: String(admin.id),
      subject_type: 'user',
      subject_id: String(ada.id),
      details: { before: { email: 'ada@example.com', name: 'Test User', roles: ['user'], disabled: false }, after: null, revoked_sessions: 1 },
    });
    expect(JSON.stringify(event)).not.toMatch(/argon2|password/i);
  });
});

describe.each(testDialects())('admin API: sessions [%s]', (dialect) => {
  let test: TestApp;
  let admin: { id: number; token: string };
  beforeEach(async () => {
    test = await startTestApp(dialect);
    admin = await signedInAdmin(test, 'root@example.com');
  });
  afterEach(() => test.close());

  it("lists a user's sessions newest first, filters live and ended ones, and ends one by id", async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    test.clock.advanceSeconds(1);
    const second = json(await loginUser(test.app, 'ada@example.com'));
    const sessions = json(await call(test, 'GET', `/users/${ada.id}/sessions`, admin.token)).data.sessions;
    expect(sessions).toHaveLength(2);
    expect(sessions[0]).toEqual({
      id: expect.any(String),
      client_id: 'gatehouse',
      audience: null,
      created_at: '2026-06-01T12:00:01.000Z',
      last_refreshed_at: '2026-06-01T12:00:01.000Z',
      expires_at: expect.any(String),
      revoked_at: null,
      revoked_reason: null,
    });
    expect(sessions[1].created_at).toBe('2026-06-01T12:00:00.000Z');
    const [newest, oldest] = sessions;

    const revoked = await call(test, 'DELETE', `/sessions/${oldest.id}`, admin.token);
    expect(json(revoked)).toEqual({ status: true, code: 200, message: 'session revoked', data: null });
    expectErrorEnvelope(await call(test, 'GET', '/me', ada.token), 401, 'auth failed - token has been revoked');
    expect((await call(test, 'GET', '/me', second.token)).statusCode).toBe(200);
    // Again: still 200, nothing changes.
    expect((await call(test, 'DELETE', `/sessions/${oldest.id}`, admin.token)).statusCode).toBe(200);

    const live = json(await call(test, 'GET', `/users/${ada.id}/sessions?active=true`, admin.token)).data.sessions;
    expect(live.map((session: { id: string }) => session.id)).toEqual([newest.id]);
    const ended = json(await call(test, 'GET', `/users/${ada.id}/sessions?active=false`, admin.token)).data.sessions;
    expect(ended).toEqual([{ ...oldest, revoked_at: '2026-06-01T12:00:01.000Z', revoked_reason: 'admin_revoked' }]);

    expectErrorEnvelope(await call(test, 'DELETE', '/sessions/no-such-session', admin.token), 404, 'session not found');
    expectErrorEnvelope(await call(test, 'DELETE', `/sessions/${'x'.repeat(65)}`, admin.token), 400, /^invalid request/);
    expectErrorEnvelope(await call(test, 'DELETE', '/sessions/a%27%3B--', admin.token), 400, /^invalid request/);
    expectErrorEnvelope(await call(test, 'GET', `/users/${ada.id + 1000}/sessions`, admin.token), 404, 'user not found');
    expectErrorEnvelope(await call(test, 'GET', `/users/${ada.id}/sessions?active=yes`, admin.token), 400, /active/);

    const events = await auditRows(test, 'admin.session_revoke');
    expect(events.map((event) => [event.subject_type, event.subject_id, event.actor_id, event.details])).toEqual([
      ['session', oldest.id, String(admin.id), { user_id: ada.id, before: { revoked_at: null }, after: { revoked_at: '2026-06-01T12:00:01.000Z', revoked_reason: 'admin_revoked' } }],
      ['session', oldest.id, String(admin.id), { user_id: ada.id, already_revoked: true }],
    ]);
  });

  it('POST /users/:id/sessions/revoke ends every live session and says how many', async () => {
    const ada = await signedInUser(test.app, 'ada@example.com');
    const second = json(await loginUser(test.app, 'ada@example.com'));
    const bob = await signedInUser(test.app, 'bob@example.com');
    const answer = await call(test, 'POST', `/users/${ada.id}/sessions/revoke`, admin.token);
    expect(json(answer)).toEqual({ status: true, code: 200, message: 'sessions revoked', data: { revoked: 2 } });
    for (const token of [ada.token, second.token]) expectErrorEnvelope(await call(test, 'GET', '/me', token), 401, 'auth failed - token has been revoked');
    expect((await call(test, 'GET', '/me', bob.token)).statusCode).toBe(200);
    expect(json(await call(test, 'POST', `/users/${ada.id}/sessions/revoke`, admin.token)).data).toEqual({ revoked: 0 });
    expectErrorEnvelope(await call(test, 'POST', `/users/${bob.id + 1000}/sessions/revoke`, admin.token), 404, 'user not found');
    const events = await auditRows(test, 'admin.user_sessions_revoke');
    expect(events.map((event) => [event.subject_id, event.details])).toEqual([
      [String(ada.id), { revoked_sessions: 2 }],
      [String(ada.id), { revoked_sessions: 0 }],
    ]);
  });
});

const redisUnderTest = testRedis();

describe.skipIf(!redisUnderTest).each(testDialects())('admin API across two instances sharing Redis [redis] [%s]', (dialect) => {
  it("a deleted user's sessions reach the other instance's denylist and revocation feed, though their rows are gone", async () => {
    const database = await createTestDatabase(dialect);
    const env = { REDIS_URL: redisUnderTest!.url, REDIS_KEY_PREFIX: redisUnderTest!.keyPrefix };
    const a = await openTestApp(database, env);
    const b = await openTestApp(database, env);
    try {
      const admin = await signedInAdmin(a, 'root@example.com');
      const ada = await signedInUser(a.app, 'ada@example.com');
      const sid = (await a.deps.db.selectFrom('sessions').select('id').where('user_id', '=', ada.id).executeTakeFirstOrThrow()).id;
      expect((await b.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': ada.token } })).statusCode).toBe(200);

      expect((await call(a, 'DELETE', `/users/${ada.id}`, admin.token)).statusCode).toBe(200);
      // The rows are gone, so B's database sync cannot tell it: only the published revocation can.
      await b.deps.denylist.sync();
      await vi.waitFor(() => expect(b.deps.denylist.isRevoked(sid)).toBe(true), { timeout: 2000, interval: 10 });
      expect([...b.deps.denylist.entries()].map(([id]) => id)).toContain(sid);
      expectErrorEnvelope(await b.app.inject({ method: 'GET', url: '/me', headers: { 'x-access-token': ada.token } }), 401, 'auth failed - token has been revoked');
    } finally {
      await a.close();
      await b.close();
      await database.drop();
      const raw = new Redis(redisUnderTest!.url);
      raw.on('error', () => {});
      for await (const keys of raw.scanStream({ match: `${redisUnderTest!.keyPrefix}*`, count: 500 })) if ((keys as string[]).length > 0) await raw.del(...(keys as string[]));
      await raw.quit();
    }
  });
});

