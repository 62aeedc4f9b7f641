/**
 * The second step of a login is reached only with the password, so its guesses get a budget the hourly
 * one does not give: wrong codes in a row, from every network together, lock it (SECOND_STEP_STREAK);
 * only a right code or a new password clears the run, and the owner is mailed (real SMTP server).
 */
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND_STEP_STREAK } from '../src/abuse/login-lockout.ts';
import { SECURITY_EVENT_TEXT } from '../src/auth/security-notices.ts';
import { expectErrorEnvelope, json, signedInUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { linkIn, startTestMailbox, type TestMailbox } from './smtp-helpers.ts';

const NEW_PASSWORD = 'velvet harbor comet 7 quince';
const THIRD_PASSWORD = 'amber glacier pylon 9 wren';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

let networkCounter = 0;
/** A client network never used before: no per-network budget is what stops these guesses. */
const freshNetwork = () => `203.0.113.${(networkCounter += 1) % 250}`;

describe.each(testDialects())('second step: consecutive wrong codes [%s]', (dialect) => {
  let mailbox: TestMailbox;
  let test: TestApp;
  beforeAll(async () => {
    mailbox = await startTestMailbox();
    test = await startTestApp(dialect, { SMTP_URL: mailbox.url, ACCESS_TOKEN_TTL: '86400' });
  });
  afterAll(async () => {
    await test?.close();
    await mailbox?.close();
  });

  const code = (secret: string, stepsFromNow = 0) => TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: test.clock.now().getTime() + stepsFromNow * 30_000 });
  /** Six digits no step within the accepted window (±1) shows. */
  function wrongCode(secret: string): string {
    const valid = new Set([-1, 0, 1].map((steps) => code(secret, steps)));
    for (let n = 0; ; n += 1) {
      const candidate = String(n).padStart(6, '0');
      if (!valid.has(candidate)) return candidate;
    }
  }
  async function enrolled(email: string) {
    const user = await signedInUser(test.app, email);
    await mailbox.next(email); // verification
    // Verified, so every notice below is within the address's hourly budget (unverified ones get 3).
    await test.deps.db.updateTable('users').set({ email_verified_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    const secret: string = json(await test.app.inject({ method: 'POST', url: '/me/mfa/totp', headers: bearer(user.token) })).data.secret;
    const confirmed = await test.app.inject({ method: 'POST', url: '/me/mfa/totp/confirm', headers: bearer(user.token), payload: { code: code(secret) } });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    await mailbox.next(email); // the notice that TOTP is on
    test.clock.advanceSeconds(30);
    return { ...user, secret };
  }
  async function ticket(email: string, password = STRONG_PASSWORD, network = freshNetwork()): Promise<string> {
    const response = await test.app.inject({ method: 'POST', url: '/login', payload: { email, password }, remoteAddress: network });
    expect(response.statusCode, response.body).toBe(200);
    return json(response).data.mfa_ticket;
  }
  const finish = (mfaTicket: string, guess: string, network = freshNetwork()) =>
    test.app.inject({ method: 'POST', url: '/login/mfa', payload: { mfa_ticket: mfaTicket, code: guess }, remoteAddress: network });
  /** `count` wrong codes, each from a network of its own, a fresh ticket (from yet another network) every 5. */
  async function guessWrong(email: string, secret: string, count: number) {
    const statuses: number[] = [];
    let current = '';
    for (let n = 0; n < count; n += 1) {
      if (n % 5 === 0) current = await ticket(email);
      statuses.push((await finish(current, wrongCode(secret))).statusCode);
    }
    return statuses;
  }
  async function lockouts(userId: number) {
    await test.deps.audit.flush();
    return test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.lockout').where('subject_id', '=', String(userId)).orderBy('id').execute();
  }

  it(`${SECOND_STEP_STREAK.maxFailures} wrong codes in a row from as many networks lock the step; the lock doubles; only a right code ends the run`, async () => {
    const email = 'streak@example.com';
    const user = await enrolled(email);
    expect(await guessWrong(email, user.secret, SECOND_STEP_STREAK.maxFailures)).toEqual(Array(SECOND_STEP_STREAK.maxFailures).fill(403));

    // Locked for 15 minutes for everyone: even the right code, from a network never seen, waits.
    const locked = await finish(await ticket(email), code(user.secret));
    expectErrorEnvelope(locked, 429);
    expect(Number(locked.headers['retry-after'])).toBe(SECOND_STEP_STREAK.firstLockSeconds);
    const events = await lockouts(user.id);
    expect(events.map((event) => [event.reason, JSON.parse(event.details!).scope, JSON.parse(event.details!).lock_seconds])).toEqual([
      ['streak_limit', 'mfa_login', SECOND_STEP_STREAK.firstLockSeconds],
    ]);

    // The owner is told: someone has the password.
    const notice = await mailbox.next(email);
    expect(notice.parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.mfa_login_locked}`);

    // After the lock, one more wrong code locks again, for twice as long.
    test.clock.advanceSeconds(SECOND_STEP_STREAK.firstLockSeconds);
    expect(await guessWrong(email, user.secret, 1)).toEqual([403]);
    const again = await finish(await ticket(email), code(user.secret));
    expect(again.statusCode).toBe(429);
    expect(Number(again.headers['retry-after'])).toBe(2 * SECOND_STEP_STREAK.firstLockSeconds);

    // A day without guesses does not end the run (the hourly budget would have): the next wrong code locks again.
    test.clock.advanceSeconds(86_400);
    expect(await guessWrong(email, user.secret, 1)).toEqual([403]);
    expect((await finish(await ticket(email), code(user.secret))).statusCode).toBe(429);

    // Once the lock ends, the right code signs in and ends the run: wrong codes count from zero again.
    test.clock.advanceSeconds(4 * SECOND_STEP_STREAK.firstLockSeconds);
    const success = await finish(await ticket(email), code(user.secret));
    expect(success.statusCode, success.body).toBe(201);
    test.clock.advanceSeconds(30);
    expect(await guessWrong(email, user.secret, SECOND_STEP_STREAK.maxFailures - 1)).toEqual(Array(SECOND_STEP_STREAK.maxFailures - 1).fill(403));
    const stillOpen = await finish(await ticket(email), code(user.secret));
    expect(stillOpen.statusCode, stillOpen.body).toBe(201);
  });

  it('a password change ends the run only from a session opened with a second factor (the owner signs in at once)', async () => {
    const email = 'streak-change@example.com';
    const user = await enrolled(email);
    // The owner's session opened with the password and a code (amr mfa), before anyone guessed.
    const strong = await finish(await ticket(email), code(user.secret));
    expect(strong.statusCode, strong.body).toBe(201);
    expect(JSON.parse(Buffer.from(json(strong).token.split('.')[1], 'base64url').toString()).amr).toContain('mfa');
    test.clock.advanceSeconds(30);
    await guessWrong(email, user.secret, SECOND_STEP_STREAK.maxFailures);
    expect((await finish(await ticket(email), code(user.secret))).statusCode).toBe(429);
    await mailbox.next(email); // the lock notice

    // The owner changes the password from that session: the guesser's password is gone, and so is the run.
    const change = await test.app.inject({ method: 'POST', url: '/me/password', headers: bearer(json(strong).token), payload: { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD } });
    expect(change.statusCode, change.body).toBe(200);
    const signedIn = await finish(await ticket(email, NEW_PASSWORD), code(user.secret));
    expect(signedIn.statusCode, signedIn.body).toBe(201);
    await mailbox.next(email); // the password-changed notice
  });

  it('a password change from a password-only session, and a reset by email, leave the run: neither proves a second factor', async () => {
    const email = 'streak-reset@example.com';
    // Its session was opened with the password alone (before TOTP was on): a guesser holding the password may hold one too.
    const user = await enrolled(email);
    await guessWrong(email, user.secret, SECOND_STEP_STREAK.maxFailures);
    expect((await finish(await ticket(email), code(user.secret))).statusCode).toBe(429);
    await mailbox.next(email); // the lock notice

    // Were it to end the run, such a session could guess ten codes, change the password, guess ten more…
    const change = await test.app.inject({ method: 'POST', url: '/me/password', headers: bearer(user.token), payload: { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD } });
    expect(change.statusCode, change.body).toBe(200);
    await mailbox.next(email); // the password-changed notice
    expect((await finish(await ticket(email, NEW_PASSWORD), code(user.secret))).statusCode).toBe(429);

    // A reset proves only the mailbox: were it to end the run, whoever reads the mailbox could reset, guess
    // ten codes, reset again… (30 guesses an hour instead of one a day). The lock stays until it runs out.
    expect((await test.app.inject({ method: 'POST', url: '/password/forgot', payload: { email } })).statusCode).toBe(200);
    const link = linkIn(await mailbox.next(email), 'http');
    const reset = await test.app.inject({ method: 'POST', url: '/password/reset', payload: { token: link.searchParams.get('token'), new_password: THIRD_PASSWORD } });
    expect(reset.statusCode, reset.body).toBe(200);
    expect((await finish(await ticket(email, THIRD_PASSWORD), code(user.secret))).statusCode).toBe(429);
    test.clock.advanceSeconds(SECOND_STEP_STREAK.firstLockSeconds);
    const afterLock = await finish(await ticket(email, THIRD_PASSWORD), code(user.secret));
    expect(afterLock.statusCode, afterLock.body).toBe(201);
  });

  it('codes checked behind a session are on the same run: a session is no way around the lock', async () => {
    const email = 'streak-session@example.com';
    const user = await enrolled(email);
    test.clock.advanceSeconds(400); // the session is no longer a recent sign-in: adding a passkey asks for password and code
    const addPasskey = (guess: string, network = freshNetwork()) =>
      test.app.inject({ method: 'POST', url: '/me/passkeys/register/options', headers: bearer(user.token), payload: { password: STRONG_PASSWORD, code: guess }, remoteAddress: network });
    // Half the run at the login's second step, half behind the session: together they lock both.
    expect(await guessWrong(email, user.secret, 5)).toEqual(Array(5).fill(403));
    for (let n = 0; n < SECOND_STEP_STREAK.maxFailures - 5; n += 1) expectErrorEnvelope(await addPasskey(wrongCode(user.secret)), 403, 'verification failed - incorrect code');
    expectErrorEnvelope(await addPasskey(code(user.secret)), 429);
    expect((await finish(await ticket(email), code(user.secret))).statusCode).toBe(429);
    const disable = await test.app.inject({ method: 'DELETE', url: '/me/mfa/totp', headers: bearer(user.token), payload: { password: STRONG_PASSWORD, code: code(user.secret) }, remoteAddress: freshNetwork() });
    expectErrorEnvelope(disable, 429);
    const events = await lockouts(user.id);
    expect(events.map((event) => [event.reason, JSON.parse(event.details!).scope])).toEqual([['streak_limit', 'mfa']]);
    // The owner is told, as when the login's second step locks.
    expect((await mailbox.next(email)).parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.mfa_login_locked}`);

    // Once it ends, a right code behind the session ends the run for the login step too.
    test.clock.advanceSeconds(SECOND_STEP_STREAK.firstLockSeconds);
    expect((await addPasskey(code(user.secret))).statusCode).toBe(200);
    test.clock.advanceSeconds(30);
    expect(await guessWrong(email, user.secret, SECOND_STEP_STREAK.maxFailures - 1)).toEqual(Array(SECOND_STEP_STREAK.maxFailures - 1).fill(403));
    expect((await finish(await ticket(email), code(user.secret))).statusCode).toBe(201);
  });

  it('wrong codes confirming an enrolment are not on the run (no password guards that route): a stolen token cannot lock the owner out from there', async () => {
    const email = 'streak-enrol@example.com';
    const user = await signedInUser(test.app, email);
    await mailbox.next(email); // verification
    await test.deps.db.updateTable('users').set({ email_verified_at: test.clock.nowSeconds() }).where('id', '=', user.id).execute();
    const secret: string = json(await test.app.inject({ method: 'POST', url: '/me/mfa/totp', headers: bearer(user.token) })).data.secret;
    const confirm = (guess: string) =>
      test.app.inject({ method: 'POST', url: '/me/mfa/totp/confirm', headers: bearer(user.token), payload: { code: guess }, remoteAddress: freshNetwork() });
    for (let n = 0; n < SECOND_STEP_STREAK.maxFailures + 2; n += 1) expectErrorEnvelope(await confirm(wrongCode(secret)), 403, 'verification failed - incorrect code');
    expect((await confirm(code(secret))).statusCode).toBe(200);
    // The next message is the notice that TOTP is on: no lock notice came before it.
    expect((await mailbox.next(email)).parsed.subject).toBe(`Security notice: ${SECURITY_EVENT_TEXT.totp_enabled}`);
    expect(await lockouts(user.id)).toEqual([]);
    test.clock.advanceSeconds(30);
    expect(await guessWrong(email, secret, SECOND_STEP_STREAK.maxFailures - 1)).toEqual(Array(SECOND_STEP_STREAK.maxFailures - 1).fill(403));
    const signIn = await finish(await ticket(email), code(secret));
    expect(signIn.statusCode, signIn.body).toBe(201);
  });

  it('wrong passwords behind a session never reach the run of wrong codes: a stolen token cannot lock the owner out', async () => {
    const email = 'streak-token@example.com';
    const user = await enrolled(email);
    for (let n = 0; n < 2 * SECOND_STEP_STREAK.maxFailures; n += 1) {
      const response = await test.app.inject({
        method: 'DELETE',
        url: '/me/mfa/totp',
        headers: bearer(user.token),
        payload: { password: 'not the password at all 1', code: wrongCode(user.secret) },
        remoteAddress: freshNetwork(),
      });
      expect([403, 429]).toContain(response.statusCode);
      expect(json(response).message).not.toBe('verification failed - incorrect code');
    }
    const signIn = await finish(await ticket(email), code(user.secret));
    expect(signIn.statusCode, signIn.body).toBe(201);
  });
});
