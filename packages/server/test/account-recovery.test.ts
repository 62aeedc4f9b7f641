// What an adversarial review of issue 12 found in account recovery: links asked for before the owner
// recovers the account (a reset, a password change) must not outlive the recovery, and links redeemed
// at the same moment must never deadlock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, loginUser, signedInUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { linkIn, startTestMailbox, type TestMailbox } from './smtp-helpers.ts';

const ORIGIN = 'https://auth.example.test';
const NEW_PASSWORD = 'velvet harbor comet 7 quince';
const OTHER_PASSWORD = 'granite lantern orbit 4 tulip';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const LINK_INVALID = 'invalid request - the token is invalid, expired or already used';
/** Links per user and round in the races below: the per-address budget allows three reset messages an hour. */
const LINKS = 3;
const ROUNDS = 25;

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

  // Two live links of one user redeemed at the same moment (a reset's transaction spends its link, updates
  // the user, then spends the user's other links): on PostgreSQL they must never deadlock into a 500.
  /** Asks for `count` reset links and takes them from the real mailbox. */
  async function resetTokens(email: string, count: number): Promise<string[]> {
    for (let i = 0; i < count; i += 1) expect((await post('/password/forgot', { email })).statusCode).toBe(200);
    await test.deps.mailer.idle();
    const tokens: string[] = [];
    while (tokens.length < count) {
      const message = await mailbox.next(email);
      if (message.parsed.subject === 'Reset your password') tokens.push(linkIn(message, `${ORIGIN}/account/reset-password?token=`).searchParams.get('token')!);
    }
    return tokens;
  }

  async function storedHash(email: string): Promise<string> {
    const row = await test.deps.db.selectFrom('users').select('password_hash').where('email_normalized', '=', email).executeTakeFirstOrThrow();
    return row.password_hash;
  }

  it(`${LINKS} live links redeemed at once, ${ROUNDS} rounds: one 200, the rest link_invalid, never a 500, the winner's password stored`, async () => {
    const statuses: Record<number, number> = {};
    for (let round = 0; round < ROUNDS; round += 1) {
      const email = `race-${round}@example.com`;
      await signedInUser(test.app, email);
      const tokens = await resetTokens(email, LINKS);
      const passwords = tokens.map((_, i) => `winner ${round} candidate ${i} lantern`);
      const answers = await Promise.all(tokens.map((token, i) => post('/password/reset', { token, new_password: passwords[i] })));
      for (const answer of answers) statuses[answer.statusCode] = (statuses[answer.statusCode] ?? 0) + 1;
      const winners = answers.flatMap((answer, i) => (answer.statusCode === 200 ? [i] : []));
      expect(winners, answers.map((answer) => `${answer.statusCode} ${answer.body}`).join('\n')).toHaveLength(1);
      for (const [i, answer] of answers.entries()) if (i !== winners[0]) expectErrorEnvelope(answer, 400, LINK_INVALID, [tokens[i]!]);
      const hash = await storedHash(email);
      for (const [i, password] of passwords.entries()) expect((await test.deps.hasher.verify(hash, password)).matches).toBe(i === winners[0]);
      expect((await test.deps.hasher.verify(hash, STRONG_PASSWORD)).matches).toBe(false);
      // Every link is spent now: none works a second time.
      for (const token of tokens) expectErrorEnvelope(await post('/password/reset', { token, new_password: 'another fresh phrase 9' }), 400, LINK_INVALID);
    }
    expect(statuses).toEqual({ 200: ROUNDS, 400: ROUNDS * (LINKS - 1) });
  });

  it(`a reset racing the confirmation of a pending email change, ${ROUNDS} rounds: one wins, the other link_invalid, never a 500`, async () => {
    const outcomes: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round += 1) {
      const email = `move-${round}@example.com`;
      const newEmail = `moved-${round}@example.net`;
      const user = await signedInUser(test.app, email);
      expect((await post('/me/email', { new_email: newEmail, password: STRONG_PASSWORD }, user.token)).statusCode).toBe(202);
      await test.deps.mailer.idle();
      const changeToken = linkIn(await mailbox.next(newEmail), `${ORIGIN}/account/confirm-email?token=`).searchParams.get('token')!;
      const [resetToken, secondReset] = await resetTokens(email, 2);
      const password = `reset ${round} wins lantern`;
      const [reset, other, confirm] = await Promise.all([
        post('/password/reset', { token: resetToken, new_password: password }),
        post('/password/reset', { token: secondReset, new_password: `${password} too` }),
        post('/email/change/confirm', { token: changeToken }),
      ]);
      const answers = [reset, other, confirm].map((answer) => `${answer.statusCode} ${answer.body}`).join('\n');
      for (const answer of [reset, other, confirm]) expect([200, 400], answers).toContain(answer.statusCode);
      const row = await test.deps.db.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
      const resets = [reset, other].filter((answer) => answer.statusCode === 200).length;
      if (confirm.statusCode === 200) {
        // The move committed first: the reset links went to the old address and are void.
        expect(resets, answers).toBe(0);
        expect(row.email).toBe(newEmail);
        expect((await test.deps.hasher.verify(row.password_hash, STRONG_PASSWORD)).matches).toBe(true);
        outcomes.moved = (outcomes.moved ?? 0) + 1;
      } else {
        // A reset committed first: it spent the pending move (and the other reset link).
        expect(resets, answers).toBe(1);
        expectErrorEnvelope(confirm, 400, LINK_INVALID);
        expect(row.email).toBe(email);
        const winner = reset.statusCode === 200 ? password : `${password} too`;
        expect((await test.deps.hasher.verify(row.password_hash, winner)).matches).toBe(true);
        outcomes.reset = (outcomes.reset ?? 0) + 1;
      }
      for (const answer of [reset, other, confirm]) if (answer.statusCode === 400) expect(json(answer).message).toBe(LINK_INVALID);
    }
    expect((outcomes.moved ?? 0) + (outcomes.reset ?? 0)).toBe(ROUNDS);
  });
});
