// What an adversarial review of issue 12 found in account recovery: links asked for before the owner
// recovers the account (a reset, a password change) must not outlive the recovery.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, loginUser, signedInUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { linkIn, startTestMailbox, type TestMailbox } from './smtp-helpers.ts';

const ORIGIN = 'https://auth.example.test';
const NEW_PASSWORD = 'velvet harbor comet 7 quince';
const OTHER_PASSWORD = 'granite lantern orbit 4 tulip';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

let ipCounter = 0;
const freshIp = () => `203.0.113.${(ipCounter += 1) % 250}`;

describe.each(testDialects())('links that must not outlive an account recovery [%s]', (dialect) => {
  let mailbox: TestMailbox;
  let test: TestApp;
  beforeAll(async () => {
    mailbox = await startTestMailbox();
    test = await startTestApp(dialect, { SMTP_URL: mailbox.url, PUBLIC_URL: ORIGIN });
  });
  afterAll(async () => {
    await test?.close();
    await mailbox?.close();
  });

  const post = (url: string, payload: unknown, token?: string) =>
    test.app.inject({ method: 'POST', url, payload: payload as object, headers: token ? bearer(token) : {}, remoteAddress: freshIp() });
  const settled = () => test.deps.mailer.idle();

  async function resetLinkToken(email: string): Promise<string> {
    expect((await post('/password/forgot', { email })).statusCode).toBe(200);
    await settled();
    for (;;) {
      const message = await mailbox.next(email);
      if (message.parsed.subject === 'Reset your password') return linkIn(message, `${ORIGIN}/account/reset-password?token=`).searchParams.get('token')!;
    }
  }

  it('a pending email change dies with the password reset and the password change the owner makes to recover', async () => {
    for (const recovery of ['reset', 'change'] as const) {
      const victim = `d1-${recovery}@example.com`;
      const attackerAddress = `d1-${recovery}@evil.test`;
      // A thief with a stolen access token and the phished password asks to move the account to their address.
      const stolen = await signedInUser(test.app, victim);
      expect((await post('/me/email', { new_email: attackerAddress, password: STRONG_PASSWORD }, stolen.token)).statusCode).toBe(202);
      await settled();
      const changeToken = linkIn(await mailbox.next(attackerAddress), `${ORIGIN}/account/confirm-email?token=`).searchParams.get('token')!;
      if (recovery === 'reset') {
        const resetToken = await resetLinkToken(victim);
        expect((await post('/password/reset', { token: resetToken, new_password: NEW_PASSWORD })).statusCode).toBe(200);
      } else {
        const owner = json(await loginUser(test.app, victim));
        expect((await post('/me/password', { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD }, owner.token)).statusCode).toBe(200);
      }
      expectErrorEnvelope(await post('/email/change/confirm', { token: changeToken }), 400);
      const row = await test.deps.db.selectFrom('users').select('email').where('email_normalized', '=', victim).executeTakeFirst();
      expect(row?.email).toBe(victim);
    }
  });

  it('a reset link asked for before the owner changes the password is spent by the change', async () => {
    const victim = 'd4-victim@example.com';
    const user = await signedInUser(test.app, victim);
    const resetToken = await resetLinkToken(victim);
    expect((await post('/me/password', { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD }, user.token)).statusCode).toBe(200);
    expectErrorEnvelope(await post('/password/reset', { token: resetToken, new_password: OTHER_PASSWORD }), 400);
    expect((await loginUser(test.app, victim, NEW_PASSWORD)).statusCode).toBe(201);
  });
});
