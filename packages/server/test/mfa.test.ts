import { createHash, createHmac } from 'node:crypto';
import { openStoredSecret } from '../src/keys/at-rest.ts';
import { decodeJwt } from 'jose';
import { Secret, TOTP, URI } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENCRYPTION_SCHEME, decryptSecret } from '../src/keys/encryption.ts';
import { purgeExpired } from '../src/background/tasks.ts';
import { reencryptAtRest } from '../src/keys/reencrypt.ts';
import {
  assertNoLeak,
  expectErrorEnvelope,
  json,
  loginUser,
  openTestApp,
  signedInAdmin,
  signedInUser, signedInVerifiedUser,
  startTestApp,
  STRONG_PASSWORD,
  testDialects,
  type TestApp,
} from './helpers.ts';
import { expectOAuthError, postForm, registerPublicClient } from './oauth-helpers.ts';

const KEY_SECRET = 'the-mfa-test-key-encryption-secret-0123456789';
const NEXT_KEY_SECRET = 'the-next-mfa-test-key-encryption-secret-98765';
const ORDERS = 'https://orders.example';

/** The code an authenticator app shows at the app's clock, computed by otpauth itself (not Gatehouse's own loop). */
function codeAt(test: TestApp, secret: string, stepsFromNow = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: test.clock.now().getTime() + stepsFromNow * 30_000 });
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe.each(testDialects())('TOTP second factor [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect, { KEY_ENCRYPTION_SECRET: KEY_SECRET, LOGIN_MAX_FAILURES: '4' });
    await registerPublicClient(test, 'spa', [ORDERS]);
  });
  afterAll(() => test.close());

  const post = (url: string, payload: unknown, token?: string) => test.app.inject({ method: 'POST', url, payload: payload as object, headers: token ? bearer(token) : {} });
  const enrol = (token: string) => test.app.inject({ method: 'POST', url: '/me/mfa/totp', headers: bearer(token) });
  const status = async (token: string) => json(await test.app.inject({ method: 'GET', url: '/me/mfa', headers: bearer(token) })).data;
  const disable = (token: string, payload: unknown) => test.app.inject({ method: 'DELETE', url: '/me/mfa/totp', payload: payload as object, headers: bearer(token) });
  /** The password step: the ticket of an account with TOTP on. */
  async function ticketFor(email: string, extra: Record<string, string> = {}): Promise<string> {
    const response = await test.app.inject({ method: 'POST', url: '/login', payload: { email, password: STRONG_PASSWORD, ...extra } });
    expect(response.statusCode, response.body).toBe(200);
    return json(response).data.mfa_ticket;
  }
  const finish = (ticket: string, code: string, extra: Record<string, string> = {}) => post('/login/mfa', { mfa_ticket: ticket, code, ...extra });
  /** A code is good once per 30 s step: tests move to the next step before using another. */
  const nextStep = () => test.clock.advanceSeconds(30);

  /** A user with TOTP confirmed: their access token, the secret their app holds, and their recovery codes. */
  async function enrolled(email: string) {
    const user = await signedInVerifiedUser(test, email);
    const secret: string = json(await enrol(user.token)).data.secret;
    const confirmed = await post('/me/mfa/totp/confirm', { code: codeAt(test, secret) }, user.token);
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    nextStep();
    return { ...user, secret, recoveryCodes: json(confirmed).data.recovery_codes as string[] };
  }

  it('enrols: an otpauth:// URI and an SVG QR code for a secret stored sealed; login is unchanged until a code confirms it', async () => {
    const user = await signedInVerifiedUser(test, 'enrol@example.com');
    const response = await enrol(user.token);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const { secret, otpauth_uri: uri, qr_svg: svg } = json(response).data;
    expect(secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits
    const parsed = URI.parse(uri) as TOTP;
    expect(parsed).toBeInstanceOf(TOTP);
    expect(parsed).toMatchObject({ issuer: 'Gatehouse', label: 'enrol@example.com', algorithm: 'SHA1', digits: 6, period: 30 });
    expect(parsed.secret.base32).toBe(secret);
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*>.*<path[^>]+d="M/s);

    // Sealed under KEY_ENCRYPTION_SECRET, bound to this user: no base32 in the row, and another user's label does not open it.
    const row = await test.deps.db.selectFrom('totp_factors').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.secret_encryption).toBe(ENCRYPTION_SCHEME);
    expect(row.secret).not.toContain(secret);
    expect(decryptSecret(row.secret, KEY_SECRET, `totp-secret:${user.id}`)).toBe(secret);
    expect(() => decryptSecret(row.secret, KEY_SECRET, `totp-secret:${user.id + 1}`)).toThrow();
    expect(row.confirmed_at).toBeNull();

    expect(await status(user.token)).toEqual({ totp: { enabled: false, pending: true, confirmed_at: null }, recovery_codes_remaining: 0 });
    expect((await loginUser(test.app, 'enrol@example.com')).statusCode).toBe(201);

    // Enrolling again replaces the unconfirmed secret: the first one's codes no longer confirm.
    const again = json(await enrol(user.token)).data.secret;
    expect(again).not.toBe(secret);
    expectErrorEnvelope(await post('/me/mfa/totp/confirm', { code: codeAt(test, secret) }, user.token), 403, 'verification failed - incorrect code');
    expect((await post('/me/mfa/totp/confirm', { code: codeAt(test, again) }, user.token)).statusCode).toBe(200);
  });

  it('confirms with a first code: ten single-use recovery codes, stored hashed; a wrong or malformed code changes nothing', async () => {
    const user = await signedInVerifiedUser(test, 'confirm@example.com');
    expectErrorEnvelope(await post('/me/mfa/totp/confirm', { code: '123456' }, user.token), 409); // nothing enrolled
    const secret = json(await enrol(user.token)).data.secret;
    const good = codeAt(test, secret);
    const wrong = good === '000000' ? '000001' : '000000';
    expectErrorEnvelope(await post('/me/mfa/totp/confirm', { code: wrong }, user.token), 403, 'verification failed - incorrect code', [secret]);
    for (const malformed of ['12345', '1234567', 'abcdef', good.slice(0, 5) + 'x', ' ']) {
      const body = expectErrorEnvelope(await post('/me/mfa/totp/confirm', { code: malformed }, user.token), 400);
      expect(body.message).toContain('code must be a 6-digit code');
    }
    expect((await status(user.token)).totp.enabled).toBe(false);

    // As apps show it, "123 456": the space is ignored.
    const response = await post('/me/mfa/totp/confirm', { code: `${good.slice(0, 3)} ${good.slice(3)}` }, user.token);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const codes: string[] = json(response).data.recovery_codes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) expect(code).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
    const stored = await test.deps.db.selectFrom('recovery_codes').selectAll().where('user_id', '=', user.id).execute();
    // Keyed under a server secret and the user id: a copy of the database alone is no list of candidates to hash.
    // The key itself is sealed under KEY_ENCRYPTION_SECRET, as every server secret is: the copy would need that too.
    const sealedKey = await test.deps.db.selectFrom('server_secrets').selectAll().where('name', '=', 'recovery_code_hmac').executeTakeFirstOrThrow();
    expect(sealedKey.encryption).not.toBeNull();
    const key = Buffer.from(openStoredSecret(sealedKey, { keyEncryptionSecret: KEY_SECRET, keyEncryptionSecretPrevious: undefined }, 'recovery_code_hmac', 'test').plaintext, 'base64url');
    const keyed = (code: string) => `k1:${createHmac('sha256', key).update(`recovery-code:${user.id}:${code.replace('-', '')}`).digest('hex')}`;
    expect(stored.map((row) => row.code_hash).sort()).toEqual(codes.map(keyed).sort());
    for (const row of stored) expect(codes.map((code) => sha256(code.replace('-', '')))).not.toContain(row.code_hash);
    expect(JSON.stringify(stored)).not.toMatch(new RegExp(codes.map((code) => code.slice(0, 5)).join('|')));

    const enabled = await status(user.token);
    expect(enabled).toMatchObject({ totp: { enabled: true, pending: false }, recovery_codes_remaining: 10 });
    expect(Date.parse(enabled.totp.confirmed_at)).toBe(test.clock.now().getTime() - (test.clock.now().getTime() % 1000));
    expectErrorEnvelope(await post('/me/mfa/totp/confirm', { code: good }, user.token), 409);
    expectErrorEnvelope(await enrol(user.token), 409, 'conflict - two-factor authentication is not in a state that allows this');

    // The audit log says it happened, with no secret and no code in it.
    await test.deps.audit.flush();
    const events = await test.deps.db.selectFrom('audit_events').selectAll().where('subject_id', '=', String(user.id)).execute();
    expect(events.map((event) => `${event.action}:${event.outcome}`)).toEqual(expect.arrayContaining(['user.mfa_failed:failure', 'user.mfa_enable:success']));
    const dump = JSON.stringify(events);
    for (const secretText of [secret, ...codes, ...codes.map((code) => code.replace('-', ''))]) expect(dump).not.toContain(secretText);
    // The 6 digits could turn up inside a timestamp by chance: looked for in the details only.
    for (const event of events) expect(event.details ?? '').not.toContain(good);
  });

  it('logs in in two steps: a hashed ticket instead of tokens, then a code for tokens carrying amr, kept through refresh', async () => {
    const user = await enrolled('twostep@example.com');
    const first = await loginUser(test.app, 'twostep@example.com');
    expect(first.statusCode, first.body).toBe(200);
    expect(first.headers['cache-control']).toBe('no-store');
    const body = json(first);
    expect(Object.keys(body).sort()).toEqual(['code', 'data', 'message', 'status']);
    expect(body).toMatchObject({ status: true, code: 200, message: 'mfa required', data: { mfa_required: true, expires_in: 300 } });
    const ticket: string = body.data.mfa_ticket;
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await test.deps.db.selectFrom('mfa_tickets').selectAll().where('ticket_hash', '=', sha256(ticket)).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ user_id: user.id, client_id: 'gatehouse', audience: null, attempts: 0, used_at: null });
    expect(JSON.stringify(await test.deps.db.selectFrom('mfa_tickets').selectAll().execute())).not.toContain(ticket);

    const code = codeAt(test, user.secret);
    const done = await finish(ticket, code);
    expect(done.statusCode, done.body).toBe(201);
    expect(done.headers['cache-control']).toBe('no-store');
    const tokens = json(done);
    expect(tokens).toMatchObject({ message: 'verification success', data: { id: user.id, email: 'twostep@example.com' }, token_type: 'Bearer' });
    expect(decodeJwt(tokens.token).amr).toEqual(['pwd', 'otp', 'mfa']);
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: bearer(tokens.token) })).statusCode).toBe(200);
    const refreshed = await post('/token/refresh', { refresh_token: tokens.refresh_token });
    expect(refreshed.statusCode).toBe(201);
    expect(decodeJwt(json(refreshed).token).amr).toEqual(['pwd', 'otp', 'mfa']);

    // The ticket works once; the code works once, even on a new ticket (replay), and so does any older code.
    expectErrorEnvelope(await finish(ticket, codeAt(test, user.secret, 1)), 401, 'auth failed - the MFA ticket is invalid or expired');
    const second = await ticketFor('twostep@example.com');
    expectErrorEnvelope(await finish(second, code), 403, 'verification failed - incorrect code');
    expectErrorEnvelope(await finish(second, codeAt(test, user.secret, -1)), 403);
    // The next step's code (a clock a little ahead) is within the window and not spent.
    expect((await finish(second, codeAt(test, user.secret, 1))).statusCode).toBe(201);
    // Two steps ahead is outside the window.
    nextStep();
    nextStep();
    expectErrorEnvelope(await finish(await ticketFor('twostep@example.com'), codeAt(test, user.secret, 2)), 403);
  });

  it('accepts a code one 30 s step either side of now, not two', async () => {
    const user = await enrolled('window@example.com');
    test.clock.advanceSeconds(5 * 30); // every step below is after the one the confirmation spent
    const ticket = await ticketFor('window@example.com');
    expectErrorEnvelope(await finish(ticket, codeAt(test, user.secret, -2)), 403);
    expectErrorEnvelope(await finish(ticket, codeAt(test, user.secret, 2)), 403);
    expect((await finish(ticket, codeAt(test, user.secret, -1))).statusCode).toBe(201);
  });

  // A real race on PostgreSQL (a connection pool); SQLite's one connection serialises the requests.
  it('lets one of several requests racing with the same code win', async () => {
    const user = await enrolled('race@example.com');
    const tickets: string[] = [];
    for (let i = 0; i < 3; i += 1) tickets.push(await ticketFor('race@example.com'));
    const code = codeAt(test, user.secret);
    const answers = await Promise.all(tickets.map((ticket) => finish(ticket, code)));
    expect(answers.map((answer) => answer.statusCode).sort()).toEqual([201, 403, 403]);
  });

  // Review: the code was spent before the ticket was claimed, so the request that lost the ticket had used up a recovery code.
  it('one ticket finished at once with a TOTP code and a recovery code: one login, and the recovery code of a loser is not spent', async () => {
    const user = await enrolled('both@example.com');
    const unused = async () => (await test.deps.db.selectFrom('recovery_codes').select('code_hash').where('user_id', '=', user.id).where('used_at', 'is', null).execute()).length;
    for (let trial = 0; trial < 6; trial += 1) {
      nextStep();
      const before = await unused();
      const ticket = await ticketFor('both@example.com');
      const [byTotp, byRecovery] = await Promise.all([finish(ticket, codeAt(test, user.secret)), finish(ticket, user.recoveryCodes[trial]!)]);
      expect([byTotp.statusCode, byRecovery.statusCode].sort()).toEqual([201, 401]);
      // The recovery code is spent exactly when it won.
      expect(await unused()).toBe(byRecovery.statusCode === 201 ? before - 1 : before);
    }
  });

  it('a wrong code leaves the ticket usable for the right one', async () => {
    const user = await enrolled('retry@example.com');
    const ticket = await ticketFor('retry@example.com');
    expectErrorEnvelope(await finish(ticket, '000000' === codeAt(test, user.secret) ? '111111' : '000000'), 403);
    expect((await finish(ticket, codeAt(test, user.secret))).statusCode).toBe(201);
  });

  it('takes a recovery code once (any case, with or without the dash): amr without otp', async () => {
    const user = await enrolled('recover@example.com');
    const [code] = user.recoveryCodes;
    const typed = code!.replace('-', '').toUpperCase();
    const done = await finish(await ticketFor('recover@example.com'), typed);
    expect(done.statusCode, done.body).toBe(201);
    expect(decodeJwt(json(done).token).amr).toEqual(['pwd', 'mfa']);
    expectErrorEnvelope(await finish(await ticketFor('recover@example.com'), code!), 403);
    expect((await status(user.token)).recovery_codes_remaining).toBe(9);
    // Another user's recovery code is no code of this user's.
    const other = await enrolled('recover-other@example.com');
    expectErrorEnvelope(await finish(await ticketFor('recover@example.com'), other.recoveryCodes[0]!), 403);
    expect((await finish(await ticketFor('recover-other@example.com'), other.recoveryCodes[0]!)).statusCode).toBe(201);
  });

  it('still takes a recovery code stored by an older version (plain SHA-256), once', async () => {
    const user = await enrolled('recover-legacy@example.com');
    const legacy = 'abcde-fghjk';
    await test.deps.db
      .insertInto('recovery_codes')
      .values({ code_hash: sha256(legacy.replace('-', '')), user_id: user.id, created_at: test.clock.nowSeconds(), used_at: null })
      .execute();
    const done = await finish(await ticketFor('recover-legacy@example.com'), legacy);
    expect(done.statusCode, done.body).toBe(201);
    expectErrorEnvelope(await finish(await ticketFor('recover-legacy@example.com'), legacy), 403);
  });

  it('refuses expired, altered, malformed and worn-out tickets, and codes of the wrong shape, with clear 4xx envelopes', async () => {
    const user = await enrolled('tickets@example.com');
    const ticket = await ticketFor('tickets@example.com');
    const altered = ticket.slice(0, -1) + (ticket.endsWith('A') ? 'B' : 'A');
    expectErrorEnvelope(await finish(altered, codeAt(test, user.secret)), 401, 'auth failed - the MFA ticket is invalid or expired', [user.secret]);
    for (const code of ['12345', '1234567', 'abc', '12345678901', '']) {
      expectErrorEnvelope(await finish(ticket, code), 400);
    }
    expectErrorEnvelope(await finish('x'.repeat(129), codeAt(test, user.secret)), 400);
    expectErrorEnvelope(await post('/login/mfa', { mfa_ticket: ticket }), 400);
    expectErrorEnvelope(await post('/login/mfa', { mfa_ticket: ticket, code: codeAt(test, user.secret), extra: 1 }), 400);
    // Malformed codes were not counted: the ticket still has every try, and the code still works.
    expect((await test.deps.db.selectFrom('mfa_tickets').select('attempts').where('ticket_hash', '=', sha256(ticket)).executeTakeFirstOrThrow()).attempts).toBe(0);

    // Five minutes, then gone.
    test.clock.advanceSeconds(301);
    expectErrorEnvelope(await finish(ticket, codeAt(test, user.secret)), 401);

    // Five tries per ticket; the sixth, even right, is refused.
    nextStep();
    const worn = await ticketFor('tickets@example.com');
    const right = codeAt(test, user.secret);
    const wrong = right === '999999' ? '999998' : '999999';
    for (let i = 0; i < 4; i += 1) expectErrorEnvelope(await finish(worn, wrong), 403);
    // LOGIN_MAX_FAILURES=4 wrong codes: locked (for this network), right code or not; the try still counted on the ticket.
    expectErrorEnvelope(await finish(worn, right), 429);
    expectErrorEnvelope(await loginUser(test.app, 'tickets@example.com'), 429); // counted as failed logins too
    // The lock over (1 minute), the worn ticket stays dead even with the right code; a new login works.
    test.clock.advanceSeconds(61);
    expectErrorEnvelope(await finish(worn, codeAt(test, user.secret)), 401);
    expect((await finish(await ticketFor('tickets@example.com'), codeAt(test, user.secret))).statusCode).toBe(201);
    await test.deps.audit.flush();
    const events = await test.deps.db.selectFrom('audit_events').select(['action', 'reason']).where('subject_id', '=', String(user.id)).execute();
    expect(events).toEqual(expect.arrayContaining([{ action: 'user.mfa_failed', reason: 'wrong_code' }, { action: 'user.lockout', reason: 'network_limit' }]));
  });

  it('counts wrong codes toward the lockout; the password alone never resets the count, a completed login does; no lock spiral', async () => {
    const user = await enrolled('lockout@example.com');
    const wrongCode = () => (codeAt(test, user.secret) === '111111' ? '111112' : '111111');
    for (let i = 0; i < 3; i += 1) expectErrorEnvelope(await finish(await ticketFor('lockout@example.com'), wrongCode()), 403);
    // A completed login resets the count: three more wrong codes do not lock.
    expect((await finish(await ticketFor('lockout@example.com'), codeAt(test, user.secret))).statusCode).toBe(201);
    nextStep();
    for (let i = 0; i < 3; i += 1) expectErrorEnvelope(await finish(await ticketFor('lockout@example.com'), wrongCode()), 403);
    // The right password again does not: one more wrong code reaches LOGIN_MAX_FAILURES=4, and the second step is locked.
    const ticket = await ticketFor('lockout@example.com');
    expectErrorEnvelope(await finish(ticket, wrongCode()), 403);
    const another = await ticketFor('lockout@example.com');
    const locked = expectErrorEnvelope(await finish(another, codeAt(test, user.secret)), 429, 'too many requests - try again later');
    expect(locked.data).toBeNull();
    // Past the lock, the owner gets in with the right code (a right password does not re-lock them), and the count is clear.
    test.clock.advanceSeconds(61);
    expect((await finish(await ticketFor('lockout@example.com'), codeAt(test, user.secret))).statusCode).toBe(201);
    nextStep();
    for (let i = 0; i < 3; i += 1) expectErrorEnvelope(await finish(await ticketFor('lockout@example.com'), wrongCode()), 403);
    expect((await finish(await ticketFor('lockout@example.com'), codeAt(test, user.secret))).statusCode).toBe(201);
  });

  it('purges spent and expired tickets, keeps live ones', async () => {
    const user = await enrolled('purge@example.com');
    const purge = () => purgeExpired({ db: test.deps.db, clock: test.clock, denylist: test.deps.denylist, accessTokenTtlSeconds: 900 });
    await purge();
    // The live one first: a new ticket clears its user's dead ones by itself.
    const live = await ticketFor('purge@example.com');
    const spent = await ticketFor('purge@example.com');
    expect((await finish(spent, codeAt(test, user.secret))).statusCode).toBe(201);
    const hashes = async () => (await test.deps.db.selectFrom('mfa_tickets').select('ticket_hash').where('user_id', '=', user.id).execute()).map((row) => row.ticket_hash);
    expect((await purge()).mfaTicketsDeleted).toBe(1);
    expect(await hashes()).toEqual([sha256(live)]);
    // Other tests' tickets expire along the way: this user's are looked at.
    test.clock.advanceSeconds(299);
    await purge();
    expect(await hashes()).toEqual([sha256(live)]);
    test.clock.advanceSeconds(1);
    expect((await purge()).mfaTicketsDeleted).toBeGreaterThanOrEqual(1);
    expect(await hashes()).toEqual([]);
  });

  it('binds the ticket to the client and audience of the login', async () => {
    const user = await enrolled('client@example.com');
    const ticket = await ticketFor('client@example.com', { client_id: 'spa', resource: ORDERS });
    expectErrorEnvelope(await finish(ticket, codeAt(test, user.secret), { client_id: 'gatehouse' }), 401);
    const done = await finish(ticket, codeAt(test, user.secret), { client_id: 'spa' });
    expect(done.statusCode, done.body).toBe(201);
    expect(decodeJwt(json(done).token)).toMatchObject({ client_id: 'spa', aud: ORDERS, amr: ['pwd', 'otp', 'mfa'] });
  });

  it('voids a ticket when the password changes between the two steps, and when the account is disabled', async () => {
    const user = await enrolled('changed@example.com');
    const ticket = await ticketFor('changed@example.com');
    const changed = await post('/me/password', { current_password: STRONG_PASSWORD, new_password: 'a different long passphrase 42' }, user.token);
    expect(changed.statusCode, changed.body).toBe(200);
    expectErrorEnvelope(await finish(ticket, codeAt(test, user.secret)), 401);

    const other = await enrolled('disabled@example.com');
    const pending = await ticketFor('disabled@example.com');
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', other.id).execute();
    expectErrorEnvelope(await finish(pending, codeAt(test, other.secret)), 401);

    // Disabled by an admin and enabled again before the ticket's 5 minutes are up: the ticket stays void.
    const admin = await signedInAdmin(test, 'ticket-admin@example.com');
    const third = await enrolled('reenabled@example.com');
    const halfway = await ticketFor('reenabled@example.com');
    for (const disabled of [true, false]) {
      const patched = await test.app.inject({ method: 'PATCH', url: `/users/${third.id}`, headers: bearer(admin.token), payload: { disabled } });
      expect(patched.statusCode, patched.body).toBe(200);
    }
    expectErrorEnvelope(await finish(halfway, codeAt(test, third.secret)), 401);
  });

  it('refuses the OAuth password grant for an MFA account, only after the right password', async () => {
    await enrolled('grant@example.com');
    const before = await test.deps.db.selectFrom('mfa_tickets').select('ticket_hash').execute();
    const refused = expectOAuthError(await postForm(test.app, '/oauth/token', { grant_type: 'password', username: 'grant@example.com', password: STRONG_PASSWORD }), 400, 'invalid_grant');
    expect(refused.error_description).toBe('mfa required - use POST /login');
    const wrong = expectOAuthError(await postForm(test.app, '/oauth/token', { grant_type: 'password', username: 'grant@example.com', password: 'not the password at all' }), 400, 'invalid_grant');
    expect(wrong.error_description).toBe('incorrect username or password');
    expect(await test.deps.db.selectFrom('mfa_tickets').select('ticket_hash').execute()).toHaveLength(before.length);
  });

  it('disables with the password and a code: login gives tokens again, and earlier tickets and codes are void', async () => {
    const user = await enrolled('disable@example.com');
    const pendingTicket = await ticketFor('disable@example.com');
    const code = codeAt(test, user.secret);
    expectErrorEnvelope(await disable(user.token, { password: 'not the password at all', code }), 403, 'verification failed - incorrect password', [user.secret]);
    expectErrorEnvelope(await disable(user.token, { password: STRONG_PASSWORD, code: code === '222222' ? '222223' : '222222' }), 403, 'verification failed - incorrect code');
    expectErrorEnvelope(await disable(user.token, { password: STRONG_PASSWORD, code: '12345' }), 400);
    expectErrorEnvelope(await disable(user.token, { password: STRONG_PASSWORD }), 400);
    expect((await status(user.token)).totp.enabled).toBe(true);

    const done = await disable(user.token, { password: STRONG_PASSWORD, code });
    expect(done.statusCode, done.body).toBe(200);
    expect(json(done)).toEqual({ status: true, code: 200, message: 'two-factor authentication disabled', data: null });
    expect(await status(user.token)).toEqual({ totp: { enabled: false, pending: false, confirmed_at: null }, recovery_codes_remaining: 0 });
    expect(await test.deps.db.selectFrom('recovery_codes').selectAll().where('user_id', '=', user.id).execute()).toEqual([]);

    const login = await loginUser(test.app, 'disable@example.com');
    expect(login.statusCode).toBe(201);
    expect(decodeJwt(json(login).token).amr).toEqual(['pwd']);
    // Codes after disable: the old ticket, the next TOTP code and the recovery codes do nothing.
    nextStep();
    expectErrorEnvelope(await finish(pendingTicket, codeAt(test, user.secret)), 401);
    expectErrorEnvelope(await finish(pendingTicket, user.recoveryCodes[0]!), 401);
    expectErrorEnvelope(await disable(user.token, { password: STRONG_PASSWORD, code: codeAt(test, user.secret) }), 409);
    expectErrorEnvelope(await post('/me/mfa/recovery-codes', { password: STRONG_PASSWORD, code: user.recoveryCodes[1] }, user.token), 409);
    expectErrorEnvelope(await post('/me/mfa/totp/confirm', { code: codeAt(test, user.secret) }, user.token), 409);
  });

  it('disables with a recovery code (a lost phone)', async () => {
    const user = await enrolled('lostphone@example.com');
    expect((await disable(user.token, { password: STRONG_PASSWORD, code: user.recoveryCodes[3] })).statusCode).toBe(200);
    expect((await loginUser(test.app, 'lostphone@example.com')).statusCode).toBe(201);
  });

  it('regenerates recovery codes with the password and a code: the old ones stop working', async () => {
    const user = await enrolled('regen@example.com');
    expectErrorEnvelope(await post('/me/mfa/recovery-codes', { password: 'not the password at all', code: codeAt(test, user.secret) }, user.token), 403);
    const response = await post('/me/mfa/recovery-codes', { password: STRONG_PASSWORD, code: codeAt(test, user.secret) }, user.token);
    expect(response.statusCode, response.body).toBe(200);
    const fresh: string[] = json(response).data.recovery_codes;
    expect(fresh).toHaveLength(10);
    expect(fresh.some((code) => user.recoveryCodes.includes(code))).toBe(false);
    expectErrorEnvelope(await finish(await ticketFor('regen@example.com'), user.recoveryCodes[0]!), 403);
    expect((await finish(await ticketFor('regen@example.com'), fresh[0]!)).statusCode).toBe(201);
    await test.deps.audit.flush();
    const actions = (await test.deps.db.selectFrom('audit_events').select('action').where('subject_id', '=', String(user.id)).execute()).map((row) => row.action);
    expect(actions).toEqual(expect.arrayContaining(['user.recovery_codes_regenerate', 'user.recovery_code_used', 'user.login']));
  });

  it('asks for a signed-in user on every /me/mfa route', async () => {
    for (const [method, url] of [['GET', '/me/mfa'], ['POST', '/me/mfa/totp'], ['POST', '/me/mfa/totp/confirm'], ['DELETE', '/me/mfa/totp'], ['POST', '/me/mfa/recovery-codes']] as const) {
      const response = await test.app.inject({ method, url, payload: { code: '123456', password: STRONG_PASSWORD } });
      expectErrorEnvelope(response, 401);
    }
  });

  it('measures time per flow (median of N)', async () => {
    const N = 15;
    const times: Record<string, number[]> = { enrol: [], confirm: [], login_password_step: [], login_mfa_step: [], disable: [] };
    const timed = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      const start = process.hrtime.bigint();
      const result = await run();
      times[name]!.push(Number(process.hrtime.bigint() - start) / 1e6);
      return result;
    };
    for (let i = 0; i < N; i += 1) {
      const email = `timed${i}@example.com`;
      const user = await signedInVerifiedUser(test, email);
      const secret = json(await timed('enrol', () => enrol(user.token))).data.secret;
      expect((await timed('confirm', () => post('/me/mfa/totp/confirm', { code: codeAt(test, secret) }, user.token))).statusCode).toBe(200);
      nextStep();
      const ticket = json(await timed('login_password_step', () => loginUser(test.app, email))).data.mfa_ticket;
      expect((await timed('login_mfa_step', () => finish(ticket, codeAt(test, secret)))).statusCode).toBe(201);
      nextStep();
      expect((await timed('disable', () => disable(user.token, { password: STRONG_PASSWORD, code: codeAt(test, secret) }))).statusCode).toBe(200);
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const report = Object.entries(times).map(([name, values]) => `${name} ${median(values).toFixed(1)} ms`).join(', ');
    console.log(`[mfa timing ${dialect}] median of ${N}: ${report}`);
  });
});

describe.each(testDialects())('`keys reencrypt` and TOTP secrets [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect, { KEY_ENCRYPTION_SECRET: KEY_SECRET });
  });
  afterAll(() => test.close());

  it('re-seals TOTP secrets (plaintext ones too) under the new KEY_ENCRYPTION_SECRET; logins with codes keep working', async () => {
    const user = await signedInVerifiedUser(test, 'rotate@example.com');
    const secret = json(await test.app.inject({ method: 'POST', url: '/me/mfa/totp', headers: bearer(user.token) })).data.secret;
    const confirmed = await test.app.inject({ method: 'POST', url: '/me/mfa/totp/confirm', headers: bearer(user.token), payload: { code: codeAt(test, secret) } });
    expect(confirmed.statusCode).toBe(200);
    // A factor from before KEY_ENCRYPTION_SECRET was set: plaintext.
    const plain = await signedInVerifiedUser(test, 'plain@example.com');
    await test.deps.db
      .insertInto('totp_factors')
      .values({ user_id: plain.id, secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', secret_encryption: null, created_at: 0, confirmed_at: 0, last_used_step: null })
      .execute();

    const report = await reencryptAtRest(test.deps.db, { keyEncryptionSecret: NEXT_KEY_SECRET, keyEncryptionSecretPrevious: KEY_SECRET });
    expect(report.totpSecrets).toBe(2);
    const rows = await test.deps.db.selectFrom('totp_factors').selectAll().orderBy('user_id').execute();
    expect(rows.map((row) => decryptSecret(row.secret, NEXT_KEY_SECRET, `totp-secret:${row.user_id}`))).toEqual([secret, 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP']);
    for (const row of rows) expect(() => decryptSecret(row.secret, KEY_SECRET, `totp-secret:${row.user_id}`)).toThrow();

    // Another instance with only the new secret: both users complete an MFA login.
    const next = await openTestApp(test.database, { KEY_ENCRYPTION_SECRET: NEXT_KEY_SECRET }, test.clock);
    try {
      test.clock.advanceSeconds(30);
      for (const [email, base32] of [['rotate@example.com', secret], ['plain@example.com', 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP']] as const) {
        const ticket = json(await loginUser(next.app, email)).data.mfa_ticket;
        const done = await next.app.inject({ method: 'POST', url: '/login/mfa', payload: { mfa_ticket: ticket, code: codeAt(next, base32) } });
        expect(done.statusCode, done.body).toBe(201);
        assertNoLeak(done.body, [base32]);
      }
    } finally {
      await next.app.close();
      await next.deps.close();
    }
  });
});
