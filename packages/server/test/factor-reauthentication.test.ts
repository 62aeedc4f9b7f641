/**
 * Adding a way to sign in (a TOTP factor, a passkey) asks for the password unless the session was signed
 * into within REAUTH_MAX_AGE, and every change to how an account signs in is mailed to its owner (a real
 * SMTP server, messages parsed by mailparser). Both dialects, the injected clock, no mocks.
 */
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGES_PER_ADDRESS_PER_HOUR } from '../src/auth/email-common.ts';
import { SECURITY_EVENT_TEXT, SECURITY_NOTICES_PER_ADDRESS_PER_HOUR } from '../src/auth/security-notices.ts';
import { expectErrorEnvelope, json, signedInAdmin, signedInUser, signedInVerifiedUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { SoftAuthenticator } from './soft-authenticator.ts';
import { linkIn, startTestMailbox, type ReceivedMessage, type TestMailbox } from './smtp-helpers.ts';

const ORIGIN = 'https://login.example.test';
const RP_ID = 'login.example.test';
const REAUTH_REQUIRED = 'reauthentication required - send your password (and a code, with two-factor authentication on), or sign in again';
const WRONG_PASSWORD = 'verification failed - incorrect password';
const OTHER_PASSWORD = 'velvet harbor comet 7 quince';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

let emailCounter = 0;
const freshEmail = (label: string) => `${label}-${(emailCounter += 1)}@example.com`;

describe.each(testDialects())('re-authentication for new sign-in factors, and security notices [%s]', (dialect) => {
  let mailbox: TestMailbox;
  let test: TestApp;
  beforeAll(async () => {
    mailbox = await startTestMailbox();
    test = await startTestApp(dialect, {
      SMTP_URL: mailbox.url,
      PUBLIC_URL: ORIGIN,
      WEBAUTHN_RP_ID: RP_ID,
      WEBAUTHN_ORIGINS: ORIGIN,
      LOGIN_MAX_FAILURES: '3',
      // Longer than any wait below: a refusal here is the re-authentication rule, not an expired token.
      ACCESS_TOKEN_TTL: '3600',
    });
  });
  afterAll(async () => {
    await test?.close();
    await mailbox?.close();
  });

  const post = (url: string, token: string, payload?: unknown) =>
    test.app.inject({ method: 'POST', url, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const enrol = (token: string, payload?: unknown) => post('/me/mfa/totp', token, payload);
  const passkeyOptions = (token: string, payload?: unknown) => post('/me/passkeys/register/options', token, payload);
  const codeAt = (secret: string) => TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: test.clock.now().getTime() });
  const totpRows = (userId: number) => test.deps.db.selectFrom('totp_factors').selectAll().where('user_id', '=', userId).execute();
  const challengeRows = (userId: number) => test.deps.db.selectFrom('webauthn_challenges').selectAll().where('user_id', '=', userId).execute();
  async function audit(action: string, userId: number) {
    await test.deps.audit.flush();
    return test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', action).where('subject_id', '=', String(userId)).orderBy('id').execute();
  }
  /** Every message sent so far (deferred work included) has reached the mailbox. */
  const settled = () => test.deps.mailer.idle();
  const notices = (email: string) => mailbox.to(email).filter((message) => message.parsed.subject?.startsWith('Security notice:'));
  /** The next message to the address whose subject matches, skipping others (security notices, say). */
  async function waitForSubject(email: string, subject: RegExp): Promise<ReceivedMessage> {
    for (;;) {
      const message = await mailbox.next(email);
      if (subject.test(message.parsed.subject ?? '')) return message;
    }
  }
  async function nextNotice(email: string): Promise<ReceivedMessage> {
    const message = await mailbox.next(email);
    expect(message.parsed.subject).toMatch(/^Security notice: /);
    return message;
  }

  for (const [label, start] of [
    ['TOTP enrolment', (token: string, payload?: unknown) => enrol(token, payload)],
    ['passkey registration', (token: string, payload?: unknown) => passkeyOptions(token, payload)],
  ] as const) {
    it(`${label}: an access token alone is enough only within 5 minutes of signing in; after that, the password`, async () => {
      const user = await signedInVerifiedUser(test, freshEmail('fresh'));
      // Signed in 300 s ago: still recent (the bound is inclusive).
      test.clock.advanceSeconds(300);
      const recent = await start(user.token);
      expect(recent.statusCode, recent.body).toBe(200);

      test.clock.advanceSeconds(1);
      const stale = expectErrorEnvelope(await start(user.token), 403, REAUTH_REQUIRED);
      expect(stale.data).toEqual({ reauthentication_required: true, max_age: 300, second_factor_required: false });
      // A refreshed session is not a recent sign-in: refreshing proves only that a refresh token was held.
      const refreshed = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: user.refreshToken } });
      expect(refreshed.statusCode, refreshed.body).toBe(201);
      expectErrorEnvelope(await start(json(refreshed).token), 403, REAUTH_REQUIRED);
      expectErrorEnvelope(await start(user.token, {}), 403, REAUTH_REQUIRED);
      expectErrorEnvelope(await start(user.token, { password: 'not the password at all' }), 403, WRONG_PASSWORD);
      expectErrorEnvelope(await start(user.token, { password: STRONG_PASSWORD, extra: 1 }), 400);
      expectErrorEnvelope(await start(user.token, { password: '' }), 400);

      const withPassword = await start(user.token, { password: STRONG_PASSWORD });
      expect(withPassword.statusCode, withPassword.body).toBe(200);

      const refusals = await audit('user.reauthentication_failed', user.id);
      expect(refusals.map((row) => row.reason)).toEqual(['not_recent', 'not_recent', 'not_recent', 'wrong_password']);
      expect(refusals.map((row) => JSON.parse(row.details ?? '{}').purpose)).toEqual(Array(4).fill(label === 'TOTP enrolment' ? 'totp_enrol' : 'passkey_register'));
      expect(JSON.stringify(refusals)).not.toContain('not the password at all');

      // Signing in again (a new session) makes the access token of that session recent.
      const again = await test.app.inject({ method: 'POST', url: '/login', payload: { email: (await test.deps.db.selectFrom('users').select('email').where('id', '=', user.id).executeTakeFirstOrThrow()).email, password: STRONG_PASSWORD } });
      expect((await start(json(again).token)).statusCode).toBe(200);
    });
  }

  it('with TOTP on, adding a passkey asks for the password and a code, or a recent sign-in that used a second factor', async () => {
    const email = freshEmail('totp-pk');
    const user = await signedInVerifiedUser(test, email);
    const secret: string = json(await enrol(user.token)).data.secret;
    const confirmed = await post('/me/mfa/totp/confirm', user.token, { code: codeAt(secret) });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    const recoveryCodes: string[] = json(confirmed).data.recovery_codes;
    test.clock.advanceSeconds(30);

    // The session is recent, but it was opened with the password alone (before TOTP was on): not enough.
    const bare = expectErrorEnvelope(await passkeyOptions(user.token), 403, REAUTH_REQUIRED);
    expect(bare.data).toEqual({ reauthentication_required: true, max_age: 300, second_factor_required: true });
    // The password alone (what a thief with a stolen token and a phished password has) is not enough either,
    // and nothing says whether it was right: the code is asked for before the password is checked.
    expect(expectErrorEnvelope(await passkeyOptions(user.token, { password: STRONG_PASSWORD }), 403, REAUTH_REQUIRED).data.second_factor_required).toBe(true);
    expect(expectErrorEnvelope(await passkeyOptions(user.token, { password: 'not the password at all' }), 403, REAUTH_REQUIRED).data.second_factor_required).toBe(true);
    const wrongCode = codeAt(secret) === '000000' ? '000001' : '000000';
    expectErrorEnvelope(await passkeyOptions(user.token, { password: STRONG_PASSWORD, code: wrongCode }), 403, 'verification failed - incorrect code');
    expectErrorEnvelope(await passkeyOptions(user.token, { password: 'not the password at all', code: codeAt(secret) }), 403, WRONG_PASSWORD);
    expectErrorEnvelope(await passkeyOptions(user.token, { password: STRONG_PASSWORD, code: '12345' }), 400);
    expect(await challengeRows(user.id)).toEqual([]);

    // Password and code: yes; the code is spent (the same code again is refused).
    const code = codeAt(secret);
    expect((await passkeyOptions(user.token, { password: STRONG_PASSWORD, code })).statusCode).toBe(200);
    expectErrorEnvelope(await passkeyOptions(user.token, { password: STRONG_PASSWORD, code }), 403, 'verification failed - incorrect code');
    // A recovery code works too, once.
    expect((await passkeyOptions(user.token, { password: STRONG_PASSWORD, code: recoveryCodes[0] })).statusCode).toBe(200);
    expectErrorEnvelope(await passkeyOptions(user.token, { password: STRONG_PASSWORD, code: recoveryCodes[0] }), 403, 'verification failed - incorrect code');

    // A session opened with password and code (amr mfa) is enough while recent.
    test.clock.advanceSeconds(30);
    const ticket = json(await test.app.inject({ method: 'POST', url: '/login', payload: { email, password: STRONG_PASSWORD } })).data.mfa_ticket;
    const signedIn = await test.app.inject({ method: 'POST', url: '/login/mfa', payload: { mfa_ticket: ticket, code: codeAt(secret) } });
    expect(signedIn.statusCode, signedIn.body).toBe(201);
    expect((await passkeyOptions(json(signedIn).token)).statusCode).toBe(200);
    test.clock.advanceSeconds(301);
    expect(expectErrorEnvelope(await passkeyOptions(json(signedIn).token), 403, REAUTH_REQUIRED).data.second_factor_required).toBe(true);

    const refusals = await audit('user.reauthentication_failed', user.id);
    expect(refusals.map((row) => row.reason)).toEqual([
      'second_factor_missing',
      'second_factor_missing',
      'second_factor_missing',
      'wrong_code',
      'wrong_password',
      'wrong_code',
      'wrong_code',
      'not_recent',
    ]);
  });

  it('a revoked session is not a recent sign-in', async () => {
    const user = await signedInVerifiedUser(test, freshEmail('revoked'));
    // Revoked in the database only (as another instance without Redis would see it before its next sync).
    await test.deps.db.updateTable('sessions').set({ revoked_at: test.clock.nowSeconds(), revoked_reason: 'logout' }).where('user_id', '=', user.id).execute();
    // 403 here, or 401 if this process's revocation sync has seen it already: never a new secret.
    const response = await enrol(user.token);
    expect([401, 403]).toContain(response.statusCode);
    expect(await totpRows(user.id)).toEqual([]);
  });

  it('a refused request changes nothing: no secret stored, no challenge stored', async () => {
    const user = await signedInVerifiedUser(test, freshEmail('nothing'));
    test.clock.advanceSeconds(301);
    expectErrorEnvelope(await enrol(user.token), 403, REAUTH_REQUIRED);
    expectErrorEnvelope(await enrol(user.token, { password: 'wrong wrong wrong wrong' }), 403, WRONG_PASSWORD);
    expectErrorEnvelope(await passkeyOptions(user.token), 403, REAUTH_REQUIRED);
    expect(await totpRows(user.id)).toEqual([]);
    expect(await challengeRows(user.id)).toEqual([]);
    // So a thief cannot confirm a factor of their own either: there is nothing pending to confirm.
    expectErrorEnvelope(await post('/me/mfa/totp/confirm', user.token, { code: '123456' }), 409);
  });

  it('password guesses here share the password-change budget: counted first, 429 past it, and /me/password is locked too', async () => {
    const user = await signedInVerifiedUser(test, freshEmail('guess'));
    test.clock.advanceSeconds(301);
    const guesses = await Promise.all([1, 2, 3, 4, 5].map((n) => enrol(user.token, { password: `wrong guess number ${n}` })));
    const statuses = guesses.map((response) => response.statusCode).sort();
    // LOGIN_MAX_FAILURES=3: concurrent guesses cannot outrun the count.
    expect(statuses.filter((status) => status === 403)).toHaveLength(3);
    expect(statuses.filter((status) => status === 429)).toHaveLength(2);
    // Even the right password waits now, here and at /me/password (one budget).
    const locked = expectErrorEnvelope(await enrol(user.token, { password: STRONG_PASSWORD }), 429);
    expect(locked.message).toMatch(/too many requests/);
    const change = await test.app.inject({ method: 'POST', url: '/me/password', headers: bearer(user.token), payload: { current_password: STRONG_PASSWORD, new_password: OTHER_PASSWORD } });
    expect(change.statusCode).toBe(429);
    expect(await totpRows(user.id)).toEqual([]);
  });

  it('REAUTH_MAX_AGE=0 asks for the password every time', async () => {
    const strict = await startTestApp(dialect, { REAUTH_MAX_AGE: '0', WEBAUTHN_RP_ID: RP_ID, WEBAUTHN_ORIGINS: ORIGIN, PUBLIC_URL: ORIGIN });
    try {
      const user = await signedInVerifiedUser(strict, 'strict@example.com');
      const bare = await strict.app.inject({ method: 'POST', url: '/me/passkeys/register/options', headers: bearer(user.token) });
      expectErrorEnvelope(bare, 403, REAUTH_REQUIRED);
      const withPassword = await strict.app.inject({ method: 'POST', url: '/me/passkeys/register/options', headers: bearer(user.token), payload: { password: STRONG_PASSWORD } });
      expect(withPassword.statusCode, withPassword.body).toBe(200);
    } finally {
      await strict.close();
    }
  });

  it('the owner is mailed when a factor is added or removed, and when the password changes: our words only, no link, no secret', async () => {
    const email = freshEmail('owner');
    const user = await signedInVerifiedUser(test, email);
    await mailbox.next(email); // the verification message of the signup

    // TOTP on.
    const secret: string = json(await enrol(user.token)).data.secret;
    const confirmed = await post('/me/mfa/totp/confirm', user.token, { code: codeAt(secret) });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    const recoveryCodes: string[] = json(confirmed).data.recovery_codes;
    const on = await nextNotice(email);
    expect(on.parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.totp_enabled}`);
    expect(on.parsed.text).toContain(`on the account ${email}, ${SECURITY_EVENT_TEXT.totp_enabled} (2026-06-01T12:`);
    expect(on.parsed.text).toContain('reset your password now');
    // A verified address (only those may add a factor): the name; nothing secret, no link.
    expect(on.parsed.text).toMatch(/^Hello Test User,\n/);
    for (const secretText of [secret, ...recoveryCodes, 'http']) expect(on.raw).not.toContain(secretText);

    // A passkey added, with a hostile name: the name is not in the message.
    const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
    // TOTP is on and this session was opened with the password alone: the password and a code it is
    // (the next step's: the confirming code was spent).
    test.clock.advanceSeconds(30);
    const options = json(await passkeyOptions(user.token, { password: STRONG_PASSWORD, code: codeAt(secret) })).data;
    const registered = await post('/me/passkeys/register/verify', user.token, { response: authenticator.register(options), name: 'Call +1 555 0100 to claim' });
    expect(registered.statusCode, registered.body).toBe(201);
    const added = await nextNotice(email);
    expect(added.parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.passkey_added}`);
    expect(added.raw).not.toContain('555 0100');
    const deleted = await test.app.inject({ method: 'DELETE', url: `/me/passkeys/${json(registered).data.id}`, headers: bearer(user.token) });
    expect(deleted.statusCode).toBe(200);
    expect((await nextNotice(email)).parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.passkey_deleted}`);

    test.clock.advanceSeconds(60);
    const regenerated = await post('/me/mfa/recovery-codes', user.token, { password: STRONG_PASSWORD, code: codeAt(secret) });
    expect(regenerated.statusCode, regenerated.body).toBe(200);
    expect((await nextNotice(email)).parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.recovery_codes_regenerated}`);
    test.clock.advanceSeconds(30);
    const off = await test.app.inject({ method: 'DELETE', url: '/me/mfa/totp', headers: bearer(user.token), payload: { password: STRONG_PASSWORD, code: codeAt(secret) } });
    expect(off.statusCode, off.body).toBe(200);
    expect((await nextNotice(email)).parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.totp_disabled}`);

    // Verified: the owner's name greets them.
    const change = await test.app.inject({ method: 'POST', url: '/me/password', headers: bearer(user.token), payload: { current_password: STRONG_PASSWORD, new_password: OTHER_PASSWORD } });
    expect(change.statusCode, change.body).toBe(200);
    const changed = await nextNotice(email);
    expect(changed.parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.password_changed}`);
    expect(changed.parsed.text).toMatch(/^Hello Test User,\n/);

    // Refused attempts send nothing.
    test.clock.advanceSeconds(301);
    expectErrorEnvelope(await enrol(user.token), 403, REAUTH_REQUIRED);
    await settled();
    expect(notices(email)).toHaveLength(6);
  });

  it('an address not yet proved may not add a way to sign in: a pre-registered account cannot keep a factor through the owner\'s reset', async () => {
    // Someone signs up first with another person's address: the session is fresh, the password theirs.
    const victim = freshEmail('prehijack');
    const squatter = await signedInUser(test.app, victim);
    const verification = await mailbox.next(victim); // reaches the real owner, not the squatter
    for (const start of [enrol, passkeyOptions]) {
      expectErrorEnvelope(await start(squatter.token), 403, 'verification failed - email address not verified');
      // Proving the password changes nothing: it is the squatter's own.
      expectErrorEnvelope(await start(squatter.token, { password: STRONG_PASSWORD }), 403, 'verification failed - email address not verified');
    }
    expect(await totpRows(squatter.id)).toEqual([]);
    expect(await challengeRows(squatter.id)).toEqual([]);
    expect((await audit('user.reauthentication_failed', squatter.id)).map((event) => event.reason)).toEqual(Array(4).fill('email_not_verified'));

    // Once the address is proved by its link, factors may be added.
    const token = linkIn(verification, `${ORIGIN}/account/verify-email?token=`).searchParams.get('token');
    expect((await test.app.inject({ method: 'POST', url: '/email/verify', payload: { token } })).statusCode).toBe(200);
    expect((await enrol(squatter.token)).statusCode).toBe(200);
  });

  /** A verified account with a passkey and TOTP on; the verification message is taken from the mailbox and returned. */
  async function accountWithFactors(label: string) {
    const email = freshEmail(label);
    const user = await signedInVerifiedUser(test, email);
    const verification = await mailbox.next(email);
    const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
    const options = json(await passkeyOptions(user.token)).data;
    expect((await post('/me/passkeys/register/verify', user.token, { response: authenticator.register(options) })).statusCode).toBe(201);
    const secret: string = json(await enrol(user.token)).data.secret;
    expect((await post('/me/mfa/totp/confirm', user.token, { code: codeAt(secret) })).statusCode).toBe(200);
    await settled();
    return { email, user, authenticator, verification, secret };
  }
  /** As migration 0009 leaves an account of an older version: factors on an address never proved, marked. */
  const markAsLegacy = (userId: number) =>
    test.deps.db.updateTable('users').set({ email_verified_at: null, legacy_factors_at: test.clock.nowSeconds() }).where('id', '=', userId).execute();
  /** Forgot password, the link from the mailbox, a new password: as the owner of `email` would. */
  async function resetThroughMailbox(email: string) {
    expect((await test.app.inject({ method: 'POST', url: '/password/forgot', payload: { email } })).statusCode).toBe(200);
    const token = linkIn(await waitForSubject(email, /reset/i), `${ORIGIN}/account/reset-password?token=`).searchParams.get('token');
    const reset = await test.app.inject({ method: 'POST', url: '/password/reset', payload: { token, new_password: OTHER_PASSWORD } });
    expect(reset.statusCode, reset.body).toBe(200);
  }
  const factorCounts = async (userId: number) =>
    Object.fromEntries(
      await Promise.all(
        (['passkeys', 'totp_factors', 'recovery_codes'] as const).map(async (table) => [table, (await test.deps.db.selectFrom(table).select('user_id').where('user_id', '=', userId).execute()).length]),
      ),
    );
  const passkeySignIn = async (authenticator: SoftAuthenticator) => {
    const start = json(await test.app.inject({ method: 'POST', url: '/login/passkey/options' })).data;
    return test.app.inject({ method: 'POST', url: '/login/passkey/verify', payload: { challenge_id: start.challenge_id, response: authenticator.assert(start.options) } });
  };

  it('a reset that proves the address for the first time removes factors added before (accounts from older versions)', async () => {
    const { email, user, authenticator } = await accountWithFactors('legacy');
    await markAsLegacy(user.id);
    await resetThroughMailbox(email);
    expect(await factorCounts(user.id)).toEqual({ passkeys: 0, totp_factors: 0, recovery_codes: 0 });
    expect(await test.deps.db.selectFrom('mfa_tickets').select('user_id').where('user_id', '=', user.id).execute()).toEqual([]);
    // The new password signs in on its own; the old passkey does not.
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email, password: OTHER_PASSWORD } });
    expect(login.statusCode, login.body).toBe(201);
    expectErrorEnvelope(await passkeySignIn(authenticator), 403, 'verification failed - passkey not accepted');
  });

  it("an older version's account proved by its verification link keeps its factors through a later reset", async () => {
    const { email, user, verification } = await accountWithFactors('legacy-verified');
    await markAsLegacy(user.id);
    const token = linkIn(verification, `${ORIGIN}/account/verify-email?token=`).searchParams.get('token');
    expect((await test.app.inject({ method: 'POST', url: '/email/verify', payload: { token } })).statusCode).toBe(200);
    await resetThroughMailbox(email);
    expect(await factorCounts(user.id)).toEqual({ passkeys: 1, totp_factors: 1, recovery_codes: 10 });
  });

  it("an older version's account moved by its owner to a confirmed address keeps its factors through a later reset", async () => {
    const { user, secret } = await accountWithFactors('legacy-moved');
    await markAsLegacy(user.id);
    test.clock.advanceSeconds(30); // a fresh TOTP step: the confirm's code was spent
    const newAddress = freshEmail('legacy-moved-new');
    expect((await post('/me/email', user.token, { new_email: newAddress, password: STRONG_PASSWORD, code: codeAt(secret) })).statusCode).toBe(202);
    const token = linkIn(await mailbox.next(newAddress), `${ORIGIN}/account/confirm-email?token=`).searchParams.get('token');
    const confirmed = await test.app.inject({ method: 'POST', url: '/email/change/confirm', payload: { token } });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    await resetThroughMailbox(newAddress);
    expect(await factorCounts(user.id)).toEqual({ passkeys: 1, totp_factors: 1, recovery_codes: 10 });
  });

  it("an admin's move to a new address keeps the owner's factors through a reset from the new mailbox", async () => {
    // The new address is not proved yet, but the factors were added on a proved one: they are the owner's, and a
    // link to the new mailbox alone must not remove them (review: this reset stripped TOTP and passkeys).
    const admin = await signedInAdmin(test, freshEmail('admin-move'));
    const { user, authenticator } = await accountWithFactors('kept');
    const newAddress = freshEmail('kept-new');
    const patched = await test.app.inject({ method: 'PATCH', url: `/users/${user.id}`, headers: bearer(admin.token), payload: { email: newAddress } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((await test.deps.db.selectFrom('users').select('email_verified_at').where('id', '=', user.id).executeTakeFirstOrThrow()).email_verified_at).toBeNull();

    await resetThroughMailbox(newAddress);
    expect(await factorCounts(user.id)).toEqual({ passkeys: 1, totp_factors: 1, recovery_codes: 10 });
    // The new password alone is not enough: the second step is still asked for.
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: newAddress, password: OTHER_PASSWORD } });
    expect(login.statusCode, login.body).toBe(200);
    expect(json(login).data.mfa_required).toBe(true);
    // And the passkey still signs in.
    const signedIn = await passkeySignIn(authenticator);
    expect(signedIn.statusCode, signedIn.body).toBe(201);
  });

  it('with TOTP on, moving the account to another address asks for a code besides the password', async () => {
    const email = freshEmail('move-totp');
    const user = await signedInVerifiedUser(test, email);
    await mailbox.next(email); // verification
    const secret: string = json(await enrol(user.token)).data.secret;
    expect((await post('/me/mfa/totp/confirm', user.token, { code: codeAt(secret) })).statusCode).toBe(200);
    test.clock.advanceSeconds(30);
    const newAddress = freshEmail('move-totp-new');
    const move = (payload: Record<string, string>) => post('/me/email', user.token, { new_email: newAddress, password: STRONG_PASSWORD, ...payload });

    const bare = expectErrorEnvelope(await move({}), 403, REAUTH_REQUIRED);
    expect(bare.data).toMatchObject({ reauthentication_required: true, second_factor_required: true });
    const wrong = codeAt(secret) === '000000' ? '000001' : '000000';
    expectErrorEnvelope(await move({ code: wrong }), 403, 'verification failed - incorrect code');
    // A wrong password with a right code: the password is judged first, and the code is not spent.
    expectErrorEnvelope(await post('/me/email', user.token, { new_email: newAddress, password: OTHER_PASSWORD, code: codeAt(secret) }), 403, WRONG_PASSWORD);
    await settled();
    expect(mailbox.to(newAddress)).toHaveLength(0);
    expect((await audit('user.reauthentication_failed', user.id)).map((event) => [event.reason, JSON.parse(event.details!).purpose])).toEqual([
      ['second_factor_missing', 'email_change'],
      ['wrong_code', 'email_change'],
      ['wrong_password', 'email_change'],
    ]);

    expect((await move({ code: codeAt(secret) })).statusCode).toBe(202);
    const confirmation = await mailbox.next(newAddress);
    expect(confirmation.parsed.text).toContain('/account/confirm-email');
  });

  it("an admin moving an account to another address tells the old one (no link), as the owner's own change does", async () => {
    const admin = await signedInAdmin(test, freshEmail('admin'));
    const owner = freshEmail('moved');
    const user = await signedInVerifiedUser(test, owner);
    await mailbox.next(owner); // verification
    await test.deps.db.updateTable('users').set({ email_verified_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    const newAddress = freshEmail('moved-new');
    const patched = await test.app.inject({ method: 'PATCH', url: `/users/${user.id}`, headers: bearer(admin.token), payload: { email: newAddress } });
    expect(patched.statusCode, patched.body).toBe(200);
    const told = await mailbox.next(owner);
    expect(told.parsed.subject).toBe('Your email address was changed');
    expect(told.parsed.text).toContain(`now uses ${newAddress}`);
    expect(told.parsed.text).toMatch(/^Hello Test User,\n/);
    expect(told.raw).not.toMatch(/https?:\/\//);
    // A change of name only sends nothing.
    expect((await test.app.inject({ method: 'PATCH', url: `/users/${user.id}`, headers: bearer(admin.token), payload: { name: 'Renamed' } })).statusCode).toBe(200);
    await settled();
    expect(mailbox.to(owner)).toHaveLength(2);
  });

  it('a password reset through the emailed link is notified too', async () => {
    const email = freshEmail('reset');
    await signedInVerifiedUser(test, email);
    await mailbox.next(email); // verification
    expect((await test.app.inject({ method: 'POST', url: '/password/forgot', payload: { email } })).statusCode).toBe(200);
    const resetMessage = await mailbox.next(email);
    const token = linkIn(resetMessage, `${ORIGIN}/account/reset-password?token=`).searchParams.get('token');
    const reset = await test.app.inject({ method: 'POST', url: '/password/reset', payload: { token, new_password: OTHER_PASSWORD } });
    expect(reset.statusCode, reset.body).toBe(200);
    const notice = await nextNotice(email);
    expect(notice.parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.password_reset}`);
    expect(notice.raw).not.toContain(token!);
  });

  it(`at most ${SECURITY_NOTICES_PER_ADDRESS_PER_HOUR} notices per verified address and hour, ${MESSAGES_PER_ADDRESS_PER_HOUR} to an unverified one`, async () => {
    // Unverified: perhaps a stranger's address someone signed up with; no more than any other message.
    const stranger = freshEmail('stranger');
    const squatter = await signedInUser(test.app, stranger);
    const passwords = [OTHER_PASSWORD, STRONG_PASSWORD];
    for (let n = 0; n < 6; n += 1) {
      const change = await test.app.inject({ method: 'POST', url: '/me/password', headers: bearer(squatter.token), payload: { current_password: passwords[(n + 1) % 2], new_password: passwords[n % 2] } });
      expect(change.statusCode, change.body).toBe(200);
    }
    await settled();
    expect(notices(stranger)).toHaveLength(MESSAGES_PER_ADDRESS_PER_HOUR);
    // Nor a name someone else typed: the greeting stays bare until the address is proved.
    for (const notice of notices(stranger)) expect(notice.parsed.text).toMatch(/^Hello,\n/);

    const email = freshEmail('flood');
    const user = await signedInVerifiedUser(test, email);
    await test.deps.db.updateTable('users').set({ email_verified_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
    for (let round = 0; round < 7; round += 1) {
      const options = json(await passkeyOptions(user.token)).data;
      const registered = await post('/me/passkeys/register/verify', user.token, { response: authenticator.register(options) });
      expect(registered.statusCode, registered.body).toBe(201);
      expect((await test.app.inject({ method: 'DELETE', url: `/me/passkeys/${json(registered).data.id}`, headers: bearer(user.token) })).statusCode).toBe(200);
    }
    await settled();
    expect(notices(email)).toHaveLength(SECURITY_NOTICES_PER_ADDRESS_PER_HOUR);
    // The next hour has a fresh budget.
    test.clock.advanceSeconds(3600);
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email, password: STRONG_PASSWORD } });
    const options = json(await passkeyOptions(json(login).token)).data;
    expect((await post('/me/passkeys/register/verify', json(login).token, { response: authenticator.register(options) })).statusCode).toBe(201);
    await settled();
    expect(notices(email)).toHaveLength(SECURITY_NOTICES_PER_ADDRESS_PER_HOUR + 1);
  });
});
