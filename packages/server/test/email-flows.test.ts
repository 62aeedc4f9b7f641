import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeExpired } from '../src/background/tasks.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createMailer } from '../src/mail/mailer.ts';
import { loadTemplates } from '../src/mail/templates.ts';
import { FORGOT_ANSWER, LINK_PAGE_CSP, RESEND_ANSWER } from '../src/http/routes/account-email.ts';
import {
  expectErrorEnvelope,
  json,
  loginUser,
  openTestApp,
  signedInAdmin,
  signedInUser,
  signupUser,
  startListeningTestApp,
  startTestApp,
  STRONG_PASSWORD,
  testDialects,
  testRedis,
  type TestApp,
} from './helpers.ts';
import { linkIn, startTestMailbox, type ReceivedMessage, type TestMailbox } from './smtp-helpers.ts';

const PUBLIC_URL = 'https://auth.example.test';
const NEW_PASSWORD = 'velvet harbor comet 7 quince';
const LINK_INVALID = 'invalid request - the token is invalid, expired or already used';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

let ipCounter = 0;
/** A client network of its own per call site, so the per-client hourly budgets of one test do not spill into another. */
const freshIp = () => `198.51.100.${(ipCounter += 1) % 250}`;
let emailCounter = 0;
const freshEmail = (label: string) => `${label}-${(emailCounter += 1)}@example.com`;

describe.each(testDialects())('email flows over SMTP [%s]', (dialect) => {
  let mailbox: TestMailbox;
  let test: TestApp;
  beforeAll(async () => {
    mailbox = await startTestMailbox();
    test = await startTestApp(dialect, { SMTP_URL: mailbox.url, PUBLIC_URL, MAIL_FROM: 'Gatehouse <no-reply@auth.example.test>' });
  });
  afterAll(async () => {
    await test?.close();
    await mailbox?.close();
  });

  const post = (url: string, payload: unknown, options: { token?: string; ip?: string } = {}) =>
    test.app.inject({
      method: 'POST',
      url,
      payload: payload as object,
      ...(options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {}),
      remoteAddress: options.ip ?? freshIp(),
    });
  const forgot = (email: string, ip?: string) => post('/password/forgot', { email }, { ip });
  /** Everything deferred past the answers (lookups, tokens, messages) has run and been delivered. */
  const settled = () => test.deps.mailer.idle();
  /** Opens the link as a user would: the page, then what its script does (POST the token to the API). */
  async function openLink(link: URL) {
    expect(link.origin).toBe(PUBLIC_URL);
    const page = await test.app.inject({ method: 'GET', url: `${link.pathname}${link.search}` });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe(LINK_PAGE_CSP);
    // No inline script: the only script is the file the CSP's 'self' allows.
    expect(page.body).not.toMatch(/<script>|<script [^>]*>[^<]/);
    expect(page.body).toContain('src="../account/link.js"');
    const token = link.searchParams.get('token')!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    return token;
  }
  async function storedUser(email: string) {
    return test.deps.db.selectFrom('users').selectAll().where('email_normalized', '=', email.toLowerCase()).executeTakeFirstOrThrow();
  }
  async function auditRows(action: string) {
    await test.deps.audit.flush();
    return test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('id').execute();
  }

  it('signup sends a verification link; the page POSTs it; the address is verified once, and tokens say so', async () => {
    const email = freshEmail('ada');
    const signup = await signupUser(test.app, { name: 'Ada Lovelace', email });
    // The seed's answer, unchanged.
    expect(signup.statusCode).toBe(201);
    expect(json(signup).message).toBe('successfully registered');

    const message = await mailbox.next(email);
    expect(message.parsed.from?.value[0]?.address).toBe('no-reply@auth.example.test');
    expect(message.recipients).toEqual([email]);
    expect(message.parsed.subject).toBe('Confirm your email address');
    // The address is not verified yet: the name typed at signup (perhaps a stranger's) is not put in front of its reader.
    expect(message.parsed.text).toMatch(/^Hello,\n/);
    expect(message.raw).not.toContain('Ada');
    const link = linkIn(message, `${PUBLIC_URL}/account/verify-email?token=`);
    expect(message.parsed.html).toContain(`href="${link.href}"`);
    const token = await openLink(link);
    const script = await test.app.inject({ method: 'GET', url: '/account/link.js' });
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.body).toContain("verify: '../email/verify'");

    // Stored only as SHA-256.
    const rows = await test.deps.db.selectFrom('email_tokens').selectAll().where('user_id', '=', json(signup).data.id).execute();
    expect(rows.map((row) => row.token_hash)).toEqual([sha256(token)]);
    expect(JSON.stringify(rows)).not.toContain(token);

    expect(claims(json(await loginUser(test.app, email)).token).email_verified).toBe(false);
    const verified = await post('/email/verify', { token });
    expect(verified.statusCode, verified.body).toBe(200);
    expect(json(verified)).toEqual({ status: true, code: 200, message: 'email verified', data: { email, email_verified: true } });
    expect((await storedUser(email)).email_verified_at).toBe(test.clock.nowSeconds());
    expect(claims(json(await loginUser(test.app, email)).token).email_verified).toBe(true);

    expectErrorEnvelope(await post('/email/verify', { token }), 400, LINK_INVALID);
    const audit = await auditRows('user.email_verify');
    expect(audit.at(-1)).toMatchObject({ outcome: 'success', subject_id: String(json(signup).data.id) });
    expect(JSON.stringify(audit)).not.toContain(token);
  });

  it('refuses altered, expired and other-purpose tokens with the same 400, and keeps the address unverified', async () => {
    const email = freshEmail('bob');
    await signupUser(test.app, { email });
    const token = await openLink(linkIn(await mailbox.next(email), `${PUBLIC_URL}/account/verify-email`));
    const altered = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    for (const bad of [altered, token.slice(1), `${token}x`, 'x', '%00', token.toUpperCase()]) {
      expectErrorEnvelope(await post('/email/verify', { token: bad }), 400, LINK_INVALID, [token]);
    }
    // A verification token is not a reset or change token.
    expectErrorEnvelope(await post('/password/reset', { token, new_password: NEW_PASSWORD }), 400, LINK_INVALID);
    expectErrorEnvelope(await post('/email/change/confirm', { token }), 400, LINK_INVALID);
    // Control characters and wrong shapes are refused by the schema, never reach the database.
    expectErrorEnvelope(await post('/email/verify', { token: 'a\u0000b' }), 400);
    expectErrorEnvelope(await post('/email/verify', { token: '' }), 400);
    expectErrorEnvelope(await post('/email/verify', {}), 400);
    expectErrorEnvelope(await post('/email/verify', { token: 42 }), 400);
    test.clock.advanceSeconds(24 * 3600 + 1);
    expectErrorEnvelope(await post('/email/verify', { token }), 400, LINK_INVALID);
    expect((await storedUser(email)).email_verified_at).toBeNull();
  });

  it('resends: signed in to the own address; by {email} with one answer for every address, and no message to unknown ones', async () => {
    const email = freshEmail('cy');
    const user = await signedInUser(test.app, email);
    await mailbox.next(email); // the signup's
    const signedIn = await post('/email/verify/resend', undefined, { token: user.token });
    expect(json(signedIn)).toEqual({ status: true, code: 200, message: 'verification email sent', data: null });
    const second = await mailbox.next(email);
    expect(second.parsed.subject).toBe('Confirm your email address');

    const known = await post('/email/verify/resend', { email });
    const unknownEmail = freshEmail('nobody');
    const unknown = await post('/email/verify/resend', { email: unknownEmail });
    expect(known.statusCode).toBe(200);
    expect(unknown.body).toBe(known.body);
    expect(json(known).message).toBe(RESEND_ANSWER);
    await mailbox.next(email);
    await settled();
    expect(mailbox.to(unknownEmail)).toEqual([]);
    // The hourly budget of the address (3) is spent: a fourth request sends nothing, with the same answer.
    expect((await post('/email/verify/resend', { email })).body).toBe(known.body);
    await settled();
    expect(mailbox.to(email)).toHaveLength(3);

    expectErrorEnvelope(await post('/email/verify/resend', {}), 400);
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/email/verify/resend', headers: { authorization: 'Bearer nonsense' } }), 401);
  });

  it('REQUIRE_EMAIL_VERIFICATION refuses an unverified account only after the right password, with a distinct answer', async () => {
    const email = freshEmail('dee');
    await signupUser(test.app, { email });
    const token = await openLink(linkIn(await mailbox.next(email), PUBLIC_URL));
    const strict = await openTestApp(test.database, { SMTP_URL: mailbox.url, PUBLIC_URL, REQUIRE_EMAIL_VERIFICATION: 'true' }, test.clock);
    try {
      // A wrong password gets the usual answer: the verification state is told to no guesser.
      expectErrorEnvelope(await loginUser(strict.app, email, 'wrong password entirely'), 403, 'verification failed - incorrect user email or password');
      expectErrorEnvelope(await loginUser(strict.app, email), 403, 'verification failed - email address not verified');
      // The OAuth password grant goes through the same check.
      const grant = await strict.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'password', username: email, password: STRONG_PASSWORD }).toString(),
      });
      expect(grant.statusCode).toBe(400);
      expect(json(grant)).toEqual({ error: 'invalid_grant', error_description: 'email address not verified' });
      expect((await post('/email/verify', { token })).statusCode).toBe(200);
      const login = await loginUser(strict.app, email);
      expect(login.statusCode).toBe(201);
      expect(claims(json(login).token).email_verified).toBe(true);
      await strict.deps.audit.flush();
      const refused = await strict.deps.db.selectFrom('audit_events').select('reason').where('action', '=', 'user.login_failed').where('reason', '=', 'email_not_verified').execute();
      expect(refused.length).toBeGreaterThan(0);
    } finally {
      await strict.close();
    }
  });

  it('forgot/reset: one answer for every address, a single-use 15-minute link, policy, every session revoked, audited', async () => {
    const email = freshEmail('eve');
    const user = await signedInUser(test.app, email);
    const otherSession = json(await loginUser(test.app, email));
    await mailbox.next(email);

    const known = await forgot(email);
    const unknownEmail = freshEmail('ghost');
    const unknown = await forgot(unknownEmail);
    expect(known.statusCode).toBe(200);
    expect(json(known)).toEqual({ status: true, code: 200, message: FORGOT_ANSWER, data: null });
    expect(unknown.body).toBe(known.body);
    expect(Object.keys(unknown.headers).sort()).toEqual(Object.keys(known.headers).sort());

    const message = await mailbox.next(email);
    expect(message.parsed.subject).toBe('Reset your password');
    expect(message.parsed.text).toContain('15 minutes');
    const token = await openLink(linkIn(message, `${PUBLIC_URL}/account/reset-password?token=`));
    await settled();
    expect(mailbox.to(unknownEmail)).toEqual([]);
    const stored = await test.deps.db.selectFrom('email_tokens').selectAll().where('token_hash', '=', sha256(token)).executeTakeFirstOrThrow();
    expect(stored).toMatchObject({ purpose: 'reset_password', used_at: null, expires_at: test.clock.nowSeconds() + 15 * 60 });

    // A password the policy refuses: 400 saying why, and the link still works.
    const weak = expectErrorEnvelope(await post('/password/reset', { token, new_password: 'short' }), 400);
    expect(weak.data.errors[0].field).toBe('new_password');
    expectErrorEnvelope(await post('/password/reset', { token, new_password: email }), 400);

    const reset = await post('/password/reset', { token, new_password: NEW_PASSWORD });
    expect(json(reset)).toEqual({ status: true, code: 200, message: 'password reset', data: null });
    // Every session ended: refresh tokens refused, access tokens refused at once.
    for (const refreshToken of [user.refreshToken, otherSession.refresh_token]) {
      expectErrorEnvelope(await post('/token/refresh', { refresh_token: refreshToken }), 401);
    }
    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${user.token}` } }), 401);
    expectErrorEnvelope(await loginUser(test.app, email), 403);
    expect((await loginUser(test.app, email, NEW_PASSWORD)).statusCode).toBe(201);
    // Single use.
    expectErrorEnvelope(await post('/password/reset', { token, new_password: 'another fine passphrase 9' }), 400, LINK_INVALID);
    expect((await loginUser(test.app, email, NEW_PASSWORD)).statusCode).toBe(201);

    const events = await auditRows('user.password_reset');
    expect(events.at(-1)).toMatchObject({ outcome: 'success', subject_id: String(user.id) });
    expect(JSON.parse(events.at(-1)!.details!)).toEqual({ revoked_sessions: 2 });
    const requests = await auditRows('user.password_reset_request');
    expect(requests.map((row) => row.reason)).toEqual(expect.arrayContaining([null, 'unknown_email']));
    const everything = JSON.stringify(await test.deps.db.selectFrom('audit_events').selectAll().execute());
    for (const secret of [token, NEW_PASSWORD, STRONG_PASSWORD]) expect(everything).not.toContain(secret);
    const sessions = await test.deps.db.selectFrom('sessions').select('revoked_reason').where('user_id', '=', user.id).where('revoked_reason', '=', 'password_reset').execute();
    expect(sessions).toHaveLength(2);
  });

  it('a reset link expires after 15 minutes; a newer reset spends the older links', async () => {
    const email = freshEmail('fay');
    await signupUser(test.app, { email });
    await mailbox.next(email);
    await forgot(email);
    const first = await openLink(linkIn(await mailbox.next(email), PUBLIC_URL));
    test.clock.advanceSeconds(15 * 60 + 1);
    expectErrorEnvelope(await post('/password/reset', { token: first, new_password: NEW_PASSWORD }), 400, LINK_INVALID);
    expect((await loginUser(test.app, email)).statusCode).toBe(201);

    await forgot(email);
    const second = await openLink(linkIn(await mailbox.next(email), PUBLIC_URL));
    await forgot(email);
    const third = await openLink(linkIn(await mailbox.next(email), PUBLIC_URL));
    test.clock.advanceSeconds(15 * 60 - 1);
    expect((await post('/password/reset', { token: third, new_password: NEW_PASSWORD })).statusCode).toBe(200);
    expectErrorEnvelope(await post('/password/reset', { token: second, new_password: 'another fine passphrase 9' }), 400, LINK_INVALID);
    expect((await loginUser(test.app, email, NEW_PASSWORD)).statusCode).toBe(201);

    // Spent and expired links are purged with the other dead rows; the live one (the signup's verification link, 24 h) stays.
    const user = (await test.deps.db.selectFrom('users').select('id').where('email_normalized', '=', email).executeTakeFirstOrThrow()).id;
    const links = async () => (await test.deps.db.selectFrom('email_tokens').select(['purpose', 'used_at']).where('user_id', '=', user).execute()).length;
    expect(await links()).toBeGreaterThan(1);
    const purge = () => purgeExpired({ db: test.deps.db, clock: test.clock, denylist: test.deps.denylist, accessTokenTtlSeconds: 900 });
    expect((await purge()).emailTokensDeleted).toBeGreaterThan(0);
    expect(await links()).toBe(1);
    test.clock.advanceSeconds(24 * 3600);
    await purge();
    expect(await links()).toBe(0);
  });

  it('a disabled account gets no reset message, and a link issued before the disable is refused', async () => {
    const admin = await signedInAdmin(test, freshEmail('admin'));
    const email = freshEmail('gil');
    const signup = json(await signupUser(test.app, { email }));
    await forgot(email);
    const token = await openLink(linkIn(await mailbox.next(email, 5_000).then(async (m) => (m.parsed.subject === 'Reset your password' ? m : mailbox.next(email))), PUBLIC_URL));
    const disable = await test.app.inject({ method: 'PATCH', url: `/users/${signup.data.id}`, headers: { authorization: `Bearer ${admin.token}` }, payload: { disabled: true } });
    expect(disable.statusCode, disable.body).toBe(200);
    const before = (await storedUser(email)).password_hash;

    expectErrorEnvelope(await post('/password/reset', { token, new_password: NEW_PASSWORD }), 400, LINK_INVALID);
    expect((await storedUser(email)).password_hash).toBe(before);
    // Everything sent so far has arrived (the signup's verification may come after the reset link): then count.
    await settled();
    const count = mailbox.to(email).length;
    expect((await forgot(email)).body).toBe(JSON.stringify({ status: true, code: 200, message: FORGOT_ANSWER, data: null }));
    await settled();
    expect(mailbox.to(email)).toHaveLength(count);
    const refusal = (await auditRows('user.password_reset')).at(-1);
    expect(refusal).toMatchObject({ outcome: 'failure', reason: 'disabled', subject_id: String(signup.data.id) });
  });

  it('a flood of forgot requests: 429 per client after 20 an hour, and the mailbox gets 3 messages an hour whatever the number of clients', async () => {
    const email = freshEmail('hal');
    await signupUser(test.app, { email });
    await mailbox.next(email);
    const ip = freshIp();
    const answers = [];
    for (let i = 0; i < 25; i += 1) answers.push(await forgot(email, ip));
    expect(answers.slice(0, 20).every((answer) => answer.statusCode === 200)).toBe(true);
    const refused = expectErrorEnvelope(answers[20]!, 429);
    expect(refused.message).toBe('too many requests - try again later');
    expect(Number(answers[20]!.headers['retry-after'])).toBeGreaterThan(0);
    // The same 429 for an address nobody has: the client budget says nothing about accounts.
    expectErrorEnvelope(await forgot(freshEmail('nobody'), ip), 429);
    // Concurrent requests from 40 other networks.
    const spread = await Promise.all(Array.from({ length: 40 }, (_, i) => forgot(email, `203.0.113.${i + 1}`)));
    expect(spread.every((answer) => answer.statusCode === 200)).toBe(true);
    await settled();
    expect(mailbox.to(email).filter((message) => message.parsed.subject === 'Reset your password')).toHaveLength(3);
    const throttled = (await auditRows('user.password_reset_request')).filter((row) => row.reason === 'throttled');
    expect(throttled.length).toBeGreaterThanOrEqual(57);
    // An hour later the address may receive mail again.
    test.clock.advanceSeconds(3600);
    await forgot(email);
    await settled();
    expect(mailbox.to(email).filter((message) => message.parsed.subject === 'Reset your password')).toHaveLength(4);
  });

  it('names and addresses placed into messages: HTML escaped, no header or recipient injection', async () => {
    const email = freshEmail('mal');
    const hostile = 'Mallory <img src=x onerror=alert(1)> "quoted" & Co';
    const signup = await signupUser(test.app, { name: hostile, email });
    expect(signup.statusCode).toBe(201);
    // Unverified: the name is nowhere in the message, neither in the body nor in To (a stranger may have typed it).
    const message = await mailbox.next(email);
    expect(message.raw).not.toContain('Mallory');
    expect(message.parsed.to).toMatchObject({ value: [{ address: email, name: '' }] });
    expect((await post('/email/verify', { token: await openLink(linkIn(message, `${PUBLIC_URL}/account/verify-email?token=`)) })).statusCode).toBe(200);
    // Verified: the owner's own name greets them, escaped for HTML, as typed in the text part.
    await forgot(email);
    const named = await mailbox.next(email);
    expect(named.parsed.html).not.toContain('<img src=x');
    expect(named.parsed.html).toContain('Hello Mallory &#60;img src=x onerror=alert(1)&#62; &#34;quoted&#34; &#38; Co,');
    expect(named.parsed.text).toContain(`Hello ${hostile},`);
    expect(named.parsed.to).toMatchObject({ value: [{ address: email, name: hostile }] });

    // A name with line breaks (signup refuses them; an import or an old row may have one).
    const imported = freshEmail('imp');
    const now = test.clock.nowSeconds();
    const crlfName = 'Eve\r\nBcc: victim@evil.example\r\nSubject: pwned';
    await test.deps.db
      .insertInto('users')
      // Verified, so the name is used (unverified addresses get no name at all).
      .values({ email: imported, email_normalized: imported, email_verified_at: now, name: crlfName, password_hash: (await storedUser(email)).password_hash, roles: '["user"]', created_at: now, updated_at: now })
      .execute();
    await forgot(imported);
    const reset = await mailbox.next(imported);
    expect(reset.recipients).toEqual([imported]);
    expect(reset.parsed.subject).toBe('Reset your password');
    expect(reset.parsed.headers.has('bcc')).toBe(false);
    expect(reset.raw).not.toMatch(/^Bcc:/im);
    expect(reset.raw).not.toMatch(/^Subject: pwned/im);
    expect(mailbox.to('victim@evil.example')).toEqual([]);
    expect(reset.parsed.text).not.toContain('\r\nBcc');
    expect(reset.parsed.text).toMatch(/^Hello Eve Bcc: victim@evil\.example Subject: pwned,\n/);

    // Addresses with line breaks or markup never pass the schema.
    for (const bad of [`${email}\r\nBcc: victim@evil.example`, `<b>${email}</b>`, 'a@b\nc.example', `${email}\u0000`]) {
      expectErrorEnvelope(await forgot(bad), 400);
      expectErrorEnvelope(await post('/email/verify/resend', { email: bad }), 400);
    }
    await settled();
    expect(mailbox.to('victim@evil.example')).toEqual([]);
  });

  it('email change: password required, link to the new address, applied once, old address told, sessions end', async () => {
    const email = freshEmail('ivy');
    const user = await signedInUser(test.app, email);
    await mailbox.next(email);
    const newEmail = freshEmail('ivy-new');

    expectErrorEnvelope(await post('/me/email', { new_email: newEmail, password: 'not the password at all' }, { token: user.token }), 403);
    expectErrorEnvelope(await post('/me/email', { new_email: email.toUpperCase(), password: STRONG_PASSWORD }, { token: user.token }), 400);
    expectErrorEnvelope(await post('/me/email', { new_email: newEmail, password: STRONG_PASSWORD }), 401);
    expectErrorEnvelope(await post('/me/email', { new_email: 'not an address', password: STRONG_PASSWORD }, { token: user.token }), 400);

    const asked = await post('/me/email', { new_email: newEmail, password: STRONG_PASSWORD }, { token: user.token });
    expect(json(asked)).toEqual({ status: true, code: 202, message: 'confirmation sent to the new address', data: null });
    // A taken address: the same answer, and no message to its owner.
    const taken = freshEmail('taken');
    await signupUser(test.app, { email: taken });
    await mailbox.next(taken);
    expect((await post('/me/email', { new_email: taken, password: STRONG_PASSWORD }, { token: user.token })).body).toBe(asked.body);

    const message = await mailbox.next(newEmail);
    expect(message.parsed.subject).toBe('Confirm your new email address');
    const token = await openLink(linkIn(message, `${PUBLIC_URL}/account/confirm-email?token=`));
    await settled();
    expect(mailbox.to(taken)).toHaveLength(1);
    // Nothing changed until the link is opened.
    expect((await storedUser(email)).email).toBe(email);

    const confirmed = await post('/email/change/confirm', { token });
    expect(json(confirmed)).toEqual({ status: true, code: 200, message: 'email changed', data: { email: newEmail, email_verified: true } });
    const notice = await mailbox.next(email);
    expect(notice.parsed.subject).toBe('Your email address was changed');
    expect(notice.parsed.text).toContain(newEmail);
    expect(notice.parsed.text).not.toMatch(/token=/);
    expectErrorEnvelope(await post('/token/refresh', { refresh_token: user.refreshToken }), 401);
    expectErrorEnvelope(await loginUser(test.app, email), 403);
    const login = await loginUser(test.app, newEmail);
    expect(login.statusCode).toBe(201);
    expect(claims(json(login).token)).toMatchObject({ email: newEmail, email_verified: true });
    expectErrorEnvelope(await post('/email/change/confirm', { token }), 400, LINK_INVALID);
    const audit = (await auditRows('user.email_change')).at(-1)!;
    expect(JSON.parse(audit.details!)).toEqual({ before: { email }, after: { email: newEmail }, revoked_sessions: 1 });
  });

  it('email change: an address taken between request and confirmation is refused with 409, nothing lost', async () => {
    const email = freshEmail('jo');
    const user = await signedInUser(test.app, email);
    await mailbox.next(email);
    const wanted = freshEmail('jo-new');
    await post('/me/email', { new_email: wanted, password: STRONG_PASSWORD }, { token: user.token });
    const token = await openLink(linkIn(await mailbox.next(wanted), PUBLIC_URL));
    await signupUser(test.app, { email: wanted });
    expectErrorEnvelope(await post('/email/change/confirm', { token }), 409);
    expect((await storedUser(email)).id).toBe(user.id);
    expect((await loginUser(test.app, email)).statusCode).toBe(201);
  });

  it('measures time per flow and the forgot-password timing of a registered and an unknown address', async () => {
    const N = 25;
    const known: number[] = [];
    const unknown: number[] = [];
    const email = freshEmail('timing');
    await signupUser(test.app, { email });
    for (let i = 0; i < N; i += 1) {
      // Interleaved, each from its own network, so both see the same machine state.
      for (const [target, list] of [[email, known], [freshEmail('timing-unknown'), unknown]] as const) {
        const started = process.hrtime.bigint();
        const answer = await forgot(target);
        list.push(Number(process.hrtime.bigint() - started) / 1e6);
        expect(answer.statusCode).toBe(200);
      }
      await settled();
    }
    const difference = Math.abs(median(known) - median(unknown));
    // The answer is written before anything about the address is looked at: no difference beyond noise.
    expect(difference).toBeLessThan(Math.max(2, median(unknown)));

    const flows: Record<string, number[]> = { 'signup → verify': [], 'forgot → reset': [], 'change → confirm': [] };
    for (let i = 0; i < 5; i += 1) {
      const address = freshEmail('flow');
      let started = performance.now();
      await signupUser(test.app, { email: address });
      await post('/email/verify', { token: linkIn(await mailbox.next(address), PUBLIC_URL).searchParams.get('token') });
      flows['signup → verify']!.push(performance.now() - started);
      started = performance.now();
      await forgot(address);
      expect((await post('/password/reset', { token: linkIn(await mailbox.next(address), PUBLIC_URL).searchParams.get('token'), new_password: NEW_PASSWORD })).statusCode).toBe(200);
      flows['forgot → reset']!.push(performance.now() - started);
      const signedIn = json(await loginUser(test.app, address, NEW_PASSWORD));
      const moved = freshEmail('flow-moved');
      started = performance.now();
      await post('/me/email', { new_email: moved, password: NEW_PASSWORD }, { token: signedIn.token });
      expect((await post('/email/change/confirm', { token: linkIn(await mailbox.next(moved), PUBLIC_URL).searchParams.get('token') })).statusCode).toBe(200);
      flows['change → confirm']!.push(performance.now() - started);
    }
    const figures = Object.fromEntries(Object.entries(flows).map(([name, values]) => [name, `${median(values).toFixed(1)} ms`]));
    console.log(
      `[${dialect}] forgot-password answer, median of ${N}: registered ${median(known).toFixed(2)} ms, unknown ${median(unknown).toFixed(2)} ms ` +
        `(difference ${difference.toFixed(2)} ms); per flow, median of 5, SMTP delivery included: ${JSON.stringify(figures)}`,
    );
  });
});

describe('mailer without a database', () => {
  let mailbox: TestMailbox;
  beforeAll(async () => {
    mailbox = await startTestMailbox();
  });
  afterAll(() => mailbox?.close());
  const values = { name: 'Ada', email: 'ada@example.com', link: 'https://auth.example.test/account/verify-email?token=abc', expires: '24 hours', new_email: '' };

  it('without SMTP_URL in development writes the message, link included, to the log with a warning', async () => {
    const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
    const mailer = createMailer({ production: false, mail: { smtpUrl: undefined, from: 'x@example.com', templatesDir: undefined } }, { log: (level, fields, message) => lines.push({ level, fields, message }) });
    expect(mailer.mode).toBe('log');
    expect(lines[0]).toMatchObject({ level: 'warn', message: expect.stringContaining('SMTP_URL is not set') });
    mailer.send({ to: { name: 'Ada', address: 'ada@example.com' }, template: 'verify_email', values });
    await mailer.idle();
    expect(lines[1]).toMatchObject({ level: 'warn', fields: { to: 'ada@example.com', text: expect.stringContaining(values.link) } });
    expect(mailer.stats()).toMatchObject({ sent: 1, dropped: 0 });
    await mailer.close();
  });

  it('production without SMTP_URL does not start', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'sqlite::memory:' })).toThrow(/SMTP_URL is required with NODE_ENV=production/);
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'sqlite::memory:', SMTP_URL: 'smtp://127.0.0.1:2525' })).not.toThrow();
    expect(() => createMailer({ production: true, mail: { smtpUrl: undefined, from: 'x@example.com', templatesDir: undefined } }, { log: () => {} })).toThrow(ConfigError);
  });

  it('retries a message the server refused for now (4xx), gives up on a 5xx, and bounds the queue', async () => {
    const lines: string[] = [];
    const config = { production: false, mail: { smtpUrl: mailbox.url, from: 'Gatehouse <no-reply@example.com>', templatesDir: undefined } };
    const mailer = createMailer(config, { log: (_level, _fields, message) => lines.push(message), retryDelaysMs: [20, 20], queueMax: 2 });
    mailbox.refuseNext(1, 451);
    mailer.send({ to: { name: 'Ada', address: 'retry@example.com' }, template: 'verify_email', values });
    await mailer.idle();
    expect(mailbox.to('retry@example.com')).toHaveLength(1);
    expect(lines).toContain('mail: delivery failed, retrying');

    mailbox.refuseNext(1, 550, 'no such mailbox');
    mailer.send({ to: { name: 'Ada', address: 'gone@example.com' }, template: 'verify_email', values });
    await mailer.idle();
    expect(mailbox.to('gone@example.com')).toHaveLength(0);
    expect(mailer.stats()).toMatchObject({ sent: 1, failed: 1 });

    const accepted = [1, 2, 3].map((i) => mailer.send({ to: { name: 'Ada', address: `burst${i}@example.com` }, template: 'verify_email', values }));
    expect(accepted).toEqual([true, true, false]);
    await mailer.idle();
    expect(mailer.stats()).toMatchObject({ sent: 3, dropped: 1 });
    await mailer.close();
  });

  it('no one kind of message takes the whole queue: a flood of one leaves room for the others', async () => {
    const lines: string[] = [];
    const config = { production: false, mail: { smtpUrl: mailbox.url, from: 'Gatehouse <no-reply@example.com>', templatesDir: undefined } };
    // queueMax 4: at most 3 of one kind. The SMTP server says "try later" to the first three, which then wait a minute.
    const mailer = createMailer(config, { log: (_level, _fields, message) => lines.push(message), retryDelaysMs: [60_000], queueMax: 4 });
    mailbox.refuseNext(3, 451);
    const resets = [1, 2, 3, 4].map((i) => mailer.send({ to: { name: '', address: `flood${i}@example.com` }, template: 'reset_password', values }));
    expect(resets).toEqual([true, true, true, false]);
    expect(mailer.send({ to: { name: '', address: 'owner@example.com' }, template: 'security_notice', values: { ...values, event: 'a passkey was added', time: '2026-06-01T12:00:00.000Z' } })).toBe(true);
    expect((await mailbox.next('owner@example.com')).parsed.subject).toBe('Security notice: a passkey was added');
    expect(mailer.stats()).toMatchObject({ dropped: 1 });
    expect(lines).toContain('mail: queue full or closing, message dropped');
    // A lookup that may send a reset counts with the resets: the kind is full, so it waits for nothing and is dropped.
    let ranLookup = false;
    mailer.afterAnswer(async () => {
      ranLookup = true;
    }, 'reset_password');
    expect(mailer.stats()).toMatchObject({ dropped: 2 });

    // Deferred work counts under the kind it may send, with the same bound.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const ran: string[] = [];
    await mailer.close(); // gives up the three waiting resets
    expect(ranLookup).toBe(false);
    const second = createMailer(config, { log: () => {}, queueMax: 4 });
    const deferTo = (kind: 'verify_email' | 'change_email', label: string) => second.afterAnswer(async () => {
      await held;
      ran.push(label);
    }, kind);
    for (const label of ['v1', 'v2', 'v3', 'v4']) deferTo('verify_email', label);
    deferTo('change_email', 'c1');
    expect(second.stats()).toMatchObject({ queued: 4, dropped: 1 });
    release();
    await second.idle();
    expect(ran.sort()).toEqual(['c1', 'v1', 'v2', 'v3']);
    await second.close();
  });

  it('MAIL_TEMPLATES_DIR replaces parts, escapes values in them, and refuses unknown placeholders at start', () => {
    const directory = mkdtempSync(join(tmpdir(), 'gatehouse-templates-'));
    try {
      writeFileSync(join(directory, 'reset_password.subject.txt'), 'Password help for {{name}}\n');
      writeFileSync(join(directory, 'reset_password.html'), '<p>Hi {{name}}, <a href="{{link}}">reset</a></p>');
      const rendered = loadTemplates(directory).render('reset_password', { ...values, name: 'A"><script>x</script>\r\nBcc: b', product: 'Gatehouse' });
      expect(rendered.subject).toBe('Password help for A"><script>x</script> Bcc: b');
      expect(rendered.html).toBe(`<p>Hi A&#34;&#62;&#60;script&#62;x&#60;/script&#62;\uFFFD\uFFFDBcc: b, <a href="${values.link}">reset</a></p>`);
      // The text part is still the built-in one.
      expect(rendered.text).toContain('Choose a new one within 24 hours');
      writeFileSync(join(directory, 'verify_email.txt'), 'Open {{link}} {{password}}');
      expect(() => loadTemplates(directory)).toThrow(/verify_email text uses \{\{password\}\}/);
      // A value another message fills is refused too: it would render empty in this one.
      writeFileSync(join(directory, 'verify_email.txt'), 'Open {{link}} {{greeting}} {{name}}');
      writeFileSync(join(directory, 'email_changed.txt'), 'Moved to {{new_email}}, open {{link}}');
      writeFileSync(join(directory, 'security_notice.subject.txt'), '{{event}} at {{time}} ({{expires}})');
      let problems = '';
      try {
        loadTemplates(directory);
      } catch (error) {
        problems = String((error as ConfigError).message) + JSON.stringify((error as { problems?: unknown }).problems ?? '');
      }
      expect(problems).toMatch(/email_changed text uses \{\{link\}\}/);
      expect(problems).toMatch(/security_notice subject uses \{\{expires\}\}/);
      expect(problems).not.toMatch(/verify_email/);
      expect(() => loadTemplates(join(directory, 'missing'))).toThrow(ConfigError);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

const redisUnderTest = testRedis();

describe.skipIf(!redisUnderTest).each(testDialects())('email budgets shared through Redis [redis] [%s]', (dialect) => {
  it('two instances on one Redis send one address 3 reset messages an hour between them', async () => {
    const mailbox = await startTestMailbox();
    const env = { SMTP_URL: mailbox.url, PUBLIC_URL, REDIS_URL: redisUnderTest!.url, REDIS_KEY_PREFIX: redisUnderTest!.keyPrefix };
    const first = await startTestApp(dialect, env);
    const second = await openTestApp(first.database, env, first.clock);
    try {
      const email = freshEmail('shared');
      await signupUser(first.app, { email });
      await mailbox.next(email);
      for (let i = 0; i < 8; i += 1) {
        const app = i % 2 === 0 ? first.app : second.app;
        const answer = await app.inject({ method: 'POST', url: '/password/forgot', payload: { email }, remoteAddress: `192.0.2.${i + 1}` });
        expect(answer.statusCode).toBe(200);
      }
      await Promise.all([first.deps.mailer.idle(), second.deps.mailer.idle()]);
      expect(mailbox.to(email).filter((message) => message.parsed.subject === 'Reset your password')).toHaveLength(3);
    } finally {
      await second.close();
      await first.close();
      await mailbox.close();
    }
  });
});

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const runsInBrowser = existsSync(CHROMIUM) || process.env.CI === 'true';

describe.skipIf(!runsInBrowser)('[browser] the pages emailed links open, in Chromium', () => {
  let browser: Browser;
  let mailbox: TestMailbox;
  let test: TestApp;
  let origin: string;
  beforeAll(async () => {
    mailbox = await startTestMailbox();
    ({ test, origin } = await startListeningTestApp('sqlite', { SMTP_URL: mailbox.url, PUBLIC_URL }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    await test?.close();
    await mailbox?.close();
  });

  /** The emailed link, opened on the listening test server (the page calls the API relative to itself). */
  const onServer = (link: URL) => `${origin}${link.pathname}${link.search}`;

  it('verifies the address and resets the password with the page and its script, under the CSP, dropping the token from the address bar', async () => {
    const email = freshEmail('browser');
    await signupUser(test.app, { email });
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      // The 400 of the refused password is expected; anything else (a CSP refusal, a script error) is not.
      if (message.type() === 'error' && !message.text().includes('status of 400')) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    try {
      await page.goto(onServer(linkIn(await mailbox.next(email), `${PUBLIC_URL}/account/verify-email?token=`)));
      expect(new URL(page.url()).search).toBe('');
      // Opening the page spent nothing: a scanner fetching the link verifies nothing.
      expect((await test.deps.db.selectFrom('users').select('email_verified_at').where('email', '=', email).executeTakeFirstOrThrow()).email_verified_at).toBeNull();
      await page.getByRole('button', { name: 'Confirm my address' }).click();
      await expect.poll(() => page.locator('#status').textContent()).toBe('email verified');
      expect((await test.deps.db.selectFrom('users').select('email_verified_at').where('email', '=', email).executeTakeFirstOrThrow()).email_verified_at).not.toBeNull();

      await test.app.inject({ method: 'POST', url: '/password/forgot', payload: { email }, remoteAddress: freshIp() });
      await page.goto(onServer(linkIn(await mailbox.next(email), `${PUBLIC_URL}/account/reset-password?token=`)));
      await page.getByLabel('New password').fill('short');
      await page.getByRole('button', { name: 'Set password' }).click();
      await expect.poll(() => page.locator('#status').textContent()).toMatch(/^invalid request - .*new_password/);
      await page.getByLabel('New password').fill(NEW_PASSWORD);
      await page.getByRole('button', { name: 'Set password' }).click();
      await expect.poll(() => page.locator('#status').textContent()).toBe('password reset');
      expect((await loginUser(test.app, email, NEW_PASSWORD)).statusCode).toBe(201);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
