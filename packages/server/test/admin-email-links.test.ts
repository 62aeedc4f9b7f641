// Security review: an admin moving an account to another address (PATCH /users/:id {email}) must not
// leave links mailed before the move working: a verification or reset link mailed to the old address
// proves nothing about the new one, and a pending move to a third address (perhaps a thief's) must not
// undo the admin's. The links are the real ones, taken from the real SMTP mailbox.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, loginUser, signedInAdmin, signedInUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { linkIn, startTestMailbox, type TestMailbox } from './smtp-helpers.ts';

const ORIGIN = 'https://auth.example.test';
const NEW_PASSWORD = 'velvet harbor comet 7 quince';
const LINK_INVALID = 'invalid request - the token is invalid, expired or already used';
const SUBJECTS = { verify: 'Confirm your email address', reset: 'Reset your password', change: 'Confirm your new email address', changed: 'Your email address was changed' };

let ipCounter = 0;
const freshIp = () => `198.18.0.${((ipCounter += 1) % 250) + 1}`;

describe.each(testDialects())('links mailed before an admin moves the account [%s]', (dialect) => {
  let mailbox: TestMailbox;
  let test: TestApp;
  let admin: { token: string };
  beforeAll(async () => {
    mailbox = await startTestMailbox();
    test = await startTestApp(dialect, { SMTP_URL: mailbox.url, PUBLIC_URL: ORIGIN });
    admin = await signedInAdmin(test, 'root@example.com');
  });
  afterAll(async () => {
    await test?.close();
    await mailbox?.close();
  });

  const post = (url: string, payload: unknown, token?: string) =>
    test.app.inject({ method: 'POST', url, payload: payload as object, headers: token ? { authorization: `Bearer ${token}` } : {}, remoteAddress: freshIp() });
  const patchUser = (id: number, payload: object) =>
    test.app.inject({ method: 'PATCH', url: `/users/${id}`, payload, headers: { authorization: `Bearer ${admin.token}` }, remoteAddress: freshIp() });
  const settled = () => test.deps.mailer.idle();
  const storedUser = (id: number) => test.deps.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  /** The token of the next message to `to` with this subject, as the link in its text carries it. */
  async function linkToken(to: string, subject: string, path: string): Promise<string> {
    await settled();
    for (;;) {
      const message = await mailbox.next(to);
      if (message.parsed.subject === subject) return linkIn(message, `${ORIGIN}${path}?token=`).searchParams.get('token')!;
    }
  }

  /** A signed-up, signed-in user holding a verification link and a reset link mailed to `email`. */
  async function userWithLinks(email: string) {
    const user = await signedInUser(test.app, email);
    const verifyToken = await linkToken(email, SUBJECTS.verify, '/account/verify-email');
    expect((await post('/password/forgot', { email })).statusCode).toBe(200);
    const resetToken = await linkToken(email, SUBJECTS.reset, '/account/reset-password');
    return { ...user, verifyToken, resetToken };
  }

  async function moveTo(id: number, email: string) {
    const moved = await patchUser(id, { email });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(json(moved).data.email).toBe(email);
    await settled();
  }

  it('a verification link mailed to the old address does not verify the new one; a fresh link to the new one does', async () => {
    const oldEmail = 'v-old@example.com';
    const newEmail = 'v-new@example.org';
    const user = await userWithLinks(oldEmail);
    await moveTo(user.id, newEmail);
    // The old address is told of the move (and gets no link).
    const notice = await mailbox.next(oldEmail);
    expect(notice.parsed.subject).toBe(SUBJECTS.changed);
    expect(notice.parsed.text).not.toContain('token=');

    expectErrorEnvelope(await post('/email/verify', { token: user.verifyToken }), 400, LINK_INVALID, [user.verifyToken]);
    expect((await storedUser(user.id)).email_verified_at).toBeNull();

    // The way that does work: a link mailed to the address the account has now.
    expect((await post('/email/verify/resend', { email: newEmail })).statusCode).toBe(200);
    const fresh = await linkToken(newEmail, SUBJECTS.verify, '/account/verify-email');
    expect((await post('/email/verify', { token: fresh })).statusCode).toBe(200);
    expect((await storedUser(user.id)).email_verified_at).toBe(test.clock.nowSeconds());
  });

  it('a reset link mailed to the old address does not reset the password of the moved account', async () => {
    const oldEmail = 'r-old@example.com';
    const newEmail = 'r-new@example.org';
    const user = await userWithLinks(oldEmail);
    const hashBefore = (await storedUser(user.id)).password_hash;
    await moveTo(user.id, newEmail);

    expectErrorEnvelope(await post('/password/reset', { token: user.resetToken, new_password: NEW_PASSWORD }), 400, LINK_INVALID, [user.resetToken]);
    const row = await storedUser(user.id);
    expect(row.password_hash).toBe(hashBefore);
    expect(row.email_verified_at).toBeNull();
    expect((await loginUser(test.app, newEmail, STRONG_PASSWORD)).statusCode).toBe(201);
    expect((await loginUser(test.app, newEmail, NEW_PASSWORD)).statusCode).toBe(403);
  });

  it("a pending move to a third address (asked before the admin's change) does not undo the admin's move", async () => {
    const oldEmail = 'c-old@example.com';
    const thiefEmail = 'c-thief@evil.test';
    const newEmail = 'c-new@example.org';
    const user = await userWithLinks(oldEmail);
    // Someone signed in as the user (a thief with the phished password) asks to move the account to their address.
    expect((await post('/me/email', { new_email: thiefEmail, password: STRONG_PASSWORD }, user.token)).statusCode).toBe(202);
    const changeToken = await linkToken(thiefEmail, SUBJECTS.change, '/account/confirm-email');
    // Support moves the account to the owner's new address.
    await moveTo(user.id, newEmail);

    expectErrorEnvelope(await post('/email/change/confirm', { token: changeToken }), 400, LINK_INVALID, [changeToken]);
    expect((await storedUser(user.id)).email).toBe(newEmail);
    expect((await loginUser(test.app, thiefEmail)).statusCode).toBe(403);
  });

  it('moved away and back: links mailed before the moves stay spent', async () => {
    const oldEmail = 'b-old@example.com';
    const user = await userWithLinks(oldEmail);
    await moveTo(user.id, 'b-elsewhere@example.org');
    await moveTo(user.id, oldEmail);
    expectErrorEnvelope(await post('/email/verify', { token: user.verifyToken }), 400, LINK_INVALID);
    expectErrorEnvelope(await post('/password/reset', { token: user.resetToken, new_password: NEW_PASSWORD }), 400, LINK_INVALID);
    expect((await storedUser(user.id)).email_verified_at).toBeNull();
    expect((await loginUser(test.app, oldEmail, STRONG_PASSWORD)).statusCode).toBe(201);
  });

  it('a change that leaves the address alone (name, roles) leaves the links live', async () => {
    const email = 'n-same@example.com';
    const user = await userWithLinks(email);
    expect((await patchUser(user.id, { name: 'Renamed', email })).statusCode).toBe(200);
    expect((await post('/email/verify', { token: user.verifyToken })).statusCode).toBe(200);
    expect((await post('/password/reset', { token: user.resetToken, new_password: NEW_PASSWORD })).statusCode).toBe(200);
    expect((await loginUser(test.app, email, NEW_PASSWORD)).statusCode).toBe(201);
  });
});
