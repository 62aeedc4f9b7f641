import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog } from '../src/audit/audit-log.ts';
import { purgeExpired } from '../src/background/tasks.ts';
import { expectErrorEnvelope, json, signedInAdmin, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { postForm, registerConfidentialClient } from './oauth-helpers.ts';

const AGENT = 'AuditProbe/1.0 (test)';
const ADDRESS = '198.51.100.23';
const NEW_PASSWORD = 'velvet harbor comet seven quince';

describe.each(testDialects())('audit log [%s]', (dialect) => {
  let test: TestApp;
  beforeEach(async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3' });
  });
  afterEach(() => test.close());

  /** A request from a known address and user agent, as the audit log should see it. */
  function send(method: 'GET' | 'POST', url: string, options: { payload?: object; token?: string } = {}): Promise<LightMyRequestResponse> {
    return test.app.inject({
      method,
      url,
      remoteAddress: ADDRESS,
      headers: { 'user-agent': AGENT, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
      ...(options.payload ? { payload: options.payload } : {}),
    });
  }
  const login = (email: string, password: string = STRONG_PASSWORD) => send('POST', '/login', { payload: { email, password } });

  /** Every stored row, oldest first, once the writer has written what it holds. */
  async function storedRows() {
    await test.deps.audit.flush();
    return test.deps.db.selectFrom('audit_events').selectAll().orderBy('id').execute();
  }
  async function stored(action: string) {
    return (await storedRows()).filter((row) => row.action === action);
  }
  function expectFromProbe(row: { ip: string | null; user_agent: string | null; request_id: string | null }) {
    expect(row.ip).toBe(ADDRESS);
    expect(row.user_agent).toBe(AGENT);
    expect(row.request_id).toMatch(/\S/);
  }

  it('records signup, login, refresh, logout and password change with actor, subject, address, agent and request id, and never a password or token', async () => {
    const email = 'ann@example.com';
    const signup = await send('POST', '/signup', { payload: { name: 'Ann', email, password: STRONG_PASSWORD } });
    expect(signup.statusCode).toBe(201);
    const userId = String(json(signup).data.id);
    const first = json(await login(email));
    const refreshed = json(await send('POST', '/token/refresh', { payload: { refresh_token: first.refresh_token } }));
    expect(refreshed.token).toBeDefined();
    const other = json(await login(email));
    expect((await send('POST', '/me/password', { token: refreshed.token, payload: { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD } })).statusCode).toBe(200);
    expect((await send('POST', '/logout', { token: refreshed.token })).statusCode).toBe(200);

    const rows = await storedRows();
    expect(rows.map((row) => row.action)).toEqual(['user.signup', 'user.login', 'session.refresh', 'user.login', 'user.password_change', 'user.logout']);
    for (const row of rows) {
      expectFromProbe(row);
      expect(row).toMatchObject({ outcome: 'success', reason: null, actor_type: 'user', actor_id: userId, subject_type: 'user', subject_id: userId });
    }
    // One request id per request, each event its own.
    expect(new Set(rows.map((row) => row.request_id)).size).toBe(rows.length);
    const details = rows.map((row) => JSON.parse(row.details ?? 'null'));
    const firstSession = details[1].session_id;
    expect(details[1]).toEqual({ session_id: firstSession, client_id: 'gatehouse' });
    expect(details[2]).toEqual({ session_id: firstSession, client_id: 'gatehouse' });
    expect(details[4]).toEqual({ session_id: firstSession, revoked_sessions: 1 });
    expect(details[5]).toEqual({ session_id: firstSession, all: false });
    expect(details[3].session_id).not.toBe(firstSession);

    const everything = JSON.stringify(rows);
    for (const secret of [STRONG_PASSWORD, NEW_PASSWORD, first.token, first.refresh_token, refreshed.token, refreshed.refresh_token, other.token, other.refresh_token]) {
      expect(everything).not.toContain(secret);
    }
    expect(everything).not.toMatch(/\$argon2/);
  });

  it('stores why a login failed (unknown_email, wrong_password, disabled, locked) while every client gets the same answer', async () => {
    const email = 'bob@example.com';
    expect((await send('POST', '/signup', { payload: { name: 'Bob', email, password: STRONG_PASSWORD } })).statusCode).toBe(201);
    const userId = String((await test.deps.db.selectFrom('users').select('id').where('email_normalized', '=', email).executeTakeFirstOrThrow()).id);
    const ghost = 'ghost@example.com';

    const unknown = await login(ghost, 'some guess at a password');
    const wrong = await login(email, 'some guess at a password');
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', Number(userId)).execute();
    const disabled = await login(email);
    // The same answer for all three, but for the email echoed back.
    const sameness = (response: LightMyRequestResponse, typed: string) => ({ status: response.statusCode, body: response.body.replace(typed, '<email>') });
    expectErrorEnvelope(unknown, 403, 'verification failed - incorrect user email or password');
    expect(sameness(wrong, email)).toEqual(sameness(unknown, ghost));
    expect(sameness(disabled, email)).toEqual(sameness(unknown, ghost));
    for (const response of [unknown, wrong, disabled]) expect(response.body).not.toMatch(/unknown_email|wrong_password|disabled/);

    // LOGIN_MAX_FAILURES=3: this network's third failure on the account locks it; the right password then gets the locked answer too.
    expect((await login(email, 'a third guess')).statusCode).toBe(403);
    const locked = await login(email);
    const lockedGhost = await Promise.all([login(ghost, 'guess two'), login(ghost, 'guess three')]).then(() => login(ghost, 'guess four'));
    expect(locked.statusCode).toBe(429);
    expect(sameness(locked, email)).toEqual(sameness(lockedGhost, ghost));

    const failures = await stored('user.login_failed');
    expect(failures.map((row) => [row.reason, row.subject_id])).toEqual([
      ['unknown_email', null],
      ['wrong_password', userId],
      ['disabled', userId],
      ['wrong_password', userId],
      ['locked', null],
      ['unknown_email', null],
      ['unknown_email', null],
      ['locked', null],
    ]);
    for (const row of failures) {
      expectFromProbe(row);
      expect(row).toMatchObject({ outcome: 'failure', actor_type: 'anonymous', actor_id: null });
      expect(row.details).not.toContain('guess');
      expect(row.details).not.toContain(STRONG_PASSWORD);
    }
    expect(JSON.parse(failures[1]!.details!)).toEqual({ email, client_id: 'gatehouse' });

    // One lockout per account crossing the threshold, on the failure that crossed it.
    const lockouts = await stored('user.lockout');
    expect(lockouts.map((row) => [row.subject_id, JSON.parse(row.details!)])).toEqual([
      [userId, { email, scope: 'login', lock_seconds: 60 }],
      [null, { email: ghost, scope: 'login', lock_seconds: 60 }],
    ]);
    expect(lockouts.map((row) => row.reason)).toEqual(['network_limit', 'network_limit']);
    expect(await stored('user.login')).toHaveLength(0);
  });

  it('records refresh-token reuse (the session revoked) against the session’s user, and a retry as a refresh', async () => {
    const email = 'cat@example.com';
    await send('POST', '/signup', { payload: { name: 'Cat', email, password: STRONG_PASSWORD } });
    const first = json(await login(email));
    const refresh = (token: string) => send('POST', '/token/refresh', { payload: { refresh_token: token } });
    expect((await refresh(first.refresh_token)).statusCode).toBe(201);
    expect((await refresh(first.refresh_token)).statusCode).toBe(201); // within REFRESH_REUSE_GRACE: a retry
    test.clock.advanceSeconds(11);
    expect((await refresh(first.refresh_token)).statusCode).toBe(401);

    const refreshes = await stored('session.refresh');
    expect(refreshes.map((row) => JSON.parse(row.details!).retry ?? false)).toEqual([false, true]);
    const [reuse] = await stored('session.refresh_reuse');
    expectFromProbe(reuse!);
    const sessionId = JSON.parse(refreshes[0]!.details!).session_id;
    expect(reuse).toMatchObject({ outcome: 'failure', reason: 'refresh_token_reuse', actor_type: 'anonymous', subject_type: 'user', subject_id: String(json(await login(email)).data.id) });
    expect(JSON.parse(reuse!.details!)).toEqual({ session_id: sessionId, client_id: 'gatehouse' });
    const session = await test.deps.db.selectFrom('sessions').select('revoked_reason').where('id', '=', sessionId).executeTakeFirstOrThrow();
    expect(session.revoked_reason).toBe('refresh_token_reuse');
    expect(JSON.stringify(await storedRows())).not.toContain(first.refresh_token);
  });

  it('records client_credentials tokens and token revocation, without the client secret or the tokens', async () => {
    const service = await registerConfidentialClient(test, { id: 'orders-api', scopes: ['orders:read'] });
    const issued = await test.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: 'grant_type=client_credentials',
      remoteAddress: ADDRESS,
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service.basic, 'user-agent': AGENT },
    });
    expect(issued.statusCode).toBe(200);
    const [token] = await stored('client.token');
    expectFromProbe(token!);
    expect(token).toMatchObject({ actor_type: 'client', actor_id: 'orders-api', subject_type: 'client', subject_id: 'orders-api' });
    expect(JSON.parse(token!.details!)).toEqual({ scopes: ['orders:read'], audience: 'gatehouse' });

    await send('POST', '/signup', { payload: { name: 'Dan', email: 'dan@example.com', password: STRONG_PASSWORD } });
    const signedIn = json(await login('dan@example.com'));
    expect((await postForm(test.app, '/revoke', { token: 'not-a-token-we-issued' })).statusCode).toBe(200);
    const revoke = () =>
      test.app.inject({ method: 'POST', url: '/revoke', payload: { token: signedIn.refresh_token }, remoteAddress: ADDRESS, headers: { 'user-agent': AGENT } });
    expect((await revoke()).statusCode).toBe(200);
    expect((await revoke()).statusCode).toBe(200); // already over: nothing more to record
    const revocations = await stored('token.revoke');
    expect(revocations).toHaveLength(1);
    expectFromProbe(revocations[0]!);
    expect(revocations[0]).toMatchObject({ actor_type: 'anonymous', subject_type: 'user', subject_id: String(signedIn.data.id) });
    expect(JSON.parse(revocations[0]!.details!).client_id).toBe('gatehouse');

    const everything = JSON.stringify(await storedRows());
    for (const secret of [service.secret, json(issued).access_token, signedIn.token, signedIn.refresh_token, STRONG_PASSWORD]) expect(everything).not.toContain(secret);
  });

  it('GET /audit: admins only; newest first; filters by action, user, outcome, subject and time; pages by cursor', async () => {
    const admin = await signedInAdmin(test, 'root@example.com');
    await send('POST', '/signup', { payload: { name: 'Eve', email: 'eve@example.com', password: STRONG_PASSWORD } });
    const eve = json(await login('eve@example.com'));
    test.clock.advanceSeconds(60);
    await login('eve@example.com', 'not the password at all');
    await login('nobody@example.com', 'not the password either');
    await test.deps.audit.flush();
    const get = (query: string, token = admin.token) => test.app.inject({ method: 'GET', url: `/audit${query}`, headers: { authorization: `Bearer ${token}` } });

    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: '/audit' }), 401);
    expectErrorEnvelope(await get('', eve.token), 403, 'forbidden - admin role required');

    const all = json(await get(''));
    expect(all).toMatchObject({ status: true, code: 200, message: 'success' });
    const ids = all.data.events.map((event: { id: number }) => event.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(all.data.events.map((event: { action: string }) => event.action)).toEqual(['user.login_failed', 'user.login_failed', 'user.login', 'user.signup', 'user.login', 'user.signup']);
    expect(all.data.next_cursor).toBeNull();
    const newest = all.data.events[0];
    expect(newest).toEqual({
      id: expect.any(Number),
      occurred_at: '2026-06-01T12:01:00.000Z',
      action: 'user.login_failed',
      outcome: 'failure',
      reason: 'unknown_email',
      actor: { type: 'anonymous', id: null },
      subject: null,
      ip: ADDRESS,
      user_agent: AGENT,
      request_id: expect.any(String),
      details: { email: 'nobody@example.com', client_id: 'gatehouse' },
    });

    const actions = async (query: string) => json(await get(query)).data.events.map((event: { action: string; reason: string | null }) => event.reason ?? event.action);
    expect(await actions(`?user_id=${eve.data.id}`)).toEqual(['wrong_password', 'user.login', 'user.signup']);
    expect(await actions(`?user_id=${eve.data.id}&outcome=success`)).toEqual(['user.login', 'user.signup']);
    expect(await actions('?action=user.login_failed')).toEqual(['unknown_email', 'wrong_password']);
    expect(await actions(`?subject_type=user&subject_id=${admin.id}`)).toEqual(['user.login', 'user.signup']);
    expect(await actions(`?actor_type=user&actor_id=${admin.id}`)).toEqual(['user.login', 'user.signup']);
    expect(await actions('?since=2026-06-01T12:00:30Z')).toEqual(['unknown_email', 'wrong_password']);
    expect(await actions('?until=2026-06-01T12:00:30Z&action=user.login')).toEqual(['user.login', 'user.login']);
    expect(await actions('?since=2026-06-02')).toEqual([]);

    // Pages of two, newest first, each event once.
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { events: Array<{ id: number }>; next_cursor: string | null } = json(await get(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).data;
      expect(page.events.length).toBeLessThanOrEqual(2);
      seen.push(...page.events.map((event) => event.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(ids);

    for (const bad of ['?since=yesterday', '?until=2026-13-45', '?since=2026-02-30', '?until=2026-04-31T10:00:00Z', '?cursor=bm9wZQ', '?limit=0', '?limit=101', '?user_id=abc', '?outcome=maybe', '?subject_type=planet', '?colour=blue', '?action=DROP%20TABLE']) {
      expectErrorEnvelope(await get(bad), 400);
    }
  });

  it('a login still answers when the audit table refuses writes: events wait in memory and are written once it is back', async () => {
    await send('POST', '/signup', { payload: { name: 'Fay', email: 'fay@example.com', password: STRONG_PASSWORD } });
    await test.deps.audit.flush();
    await test.deps.db.schema.alterTable('audit_events').renameTo('audit_events_away').execute();
    try {
      expect((await login('fay@example.com')).statusCode).toBe(201);
      expect((await login('fay@example.com', 'a wrong password here')).statusCode).toBe(403);
      await test.deps.audit.flush();
      expect(test.deps.audit.stats()).toMatchObject({ queued: 2, failing: true, dropped: 0 });
    } finally {
      await test.deps.db.schema.alterTable('audit_events_away').renameTo('audit_events').execute();
    }
    await test.deps.audit.flush();
    expect(test.deps.audit.stats()).toMatchObject({ queued: 0, failing: false });
    expect((await storedRows()).map((row) => row.reason ?? row.action)).toEqual(['user.signup', 'user.login', 'wrong_password']);
  });

  it('the writer returns at once and keeps at most queueMax events while the database is away, counting the dropped ones', async () => {
    const warnings: string[] = [];
    const audit = createAuditLog({ db: test.deps.db, clock: test.clock, log: (_level, _fields, message) => warnings.push(message), queueMax: 5, batchSize: 2, flushIntervalMs: 10_000 });
    await test.deps.db.schema.alterTable('audit_events').renameTo('audit_events_away').execute();
    try {
      for (let index = 0; index < 20; index++) {
        const returned: unknown = audit.record({ action: 'user.signup', actor: { type: 'user', id: String(index) } });
        expect(returned).toBeUndefined(); // not a promise: nothing for a request to wait on
      }
      await audit.flush();
      expect(audit.stats()).toMatchObject({ queued: 5, dropped: 15, failing: true });
      expect(warnings).toContain('audit queue full: oldest events dropped');
    } finally {
      await test.deps.db.schema.alterTable('audit_events_away').renameTo('audit_events').execute();
    }
    await audit.close();
    // The newest five survive, in order; a cycle in details is no reason to throw.
    const rows = await test.deps.db.selectFrom('audit_events').select('actor_id').where('action', '=', 'user.signup').orderBy('id').execute();
    expect(rows.map((row) => row.actor_id)).toEqual(['15', '16', '17', '18', '19']);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => test.deps.audit.record({ action: 'client.create', actor: { type: 'operator' }, details: cyclic })).not.toThrow();
    test.deps.audit.record({ action: 'client.create', actor: { type: 'operator' }, details: { client_secret: 'ghcs_leak', before: { password_hash: '$argon2id$x' }, token: { value: 'eyJ' }, name: 'a\u0000b', unknown_hash_format: 2, with_hashes: true } });
    const [, redacted] = await stored('client.create');
    // Counts and flags under such names stay (an import's unknown_hash_format); strings and objects do not.
    expect(JSON.parse(redacted!.details!)).toEqual({
      client_secret: '[redacted]',
      before: { password_hash: '[redacted]' },
      token: '[redacted]',
      name: 'ab',
      unknown_hash_format: 2,
      with_hashes: true,
    });
  });

  it('purges events older than AUDIT_RETENTION_DAYS (0 keeps them)', async () => {
    await send('POST', '/signup', { payload: { name: 'Gus', email: 'gus@example.com', password: STRONG_PASSWORD } });
    test.clock.advanceSeconds(3 * 86_400);
    await login('gus@example.com');
    await test.deps.audit.flush();
    const purge = (days: number) =>
      purgeExpired({ db: test.deps.db, clock: test.clock, denylist: test.deps.denylist, accessTokenTtlSeconds: 900, config: { auditRetentionDays: days } });
    expect((await purge(0)).auditEventsDeleted).toBe(0);
    expect((await purge(3)).auditEventsDeleted).toBe(0); // exactly three days old: kept
    test.clock.advanceSeconds(1);
    expect((await purge(3)).auditEventsDeleted).toBe(1);
    expect((await storedRows()).map((row) => row.action)).toEqual(['user.login']);
  });
});
