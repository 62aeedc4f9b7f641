import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoLeak, expectErrorEnvelope, json, signupUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';

describe.each(testDialects())('POST /signup [%s]', (dialect) => {
  let test: TestApp;
  // A low minimum length, so the other rules can be reached with short passwords.
  let lenient: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    lenient = await startTestApp(dialect, { PASSWORD_MIN_LENGTH: '8' });
  });
  afterAll(async () => {
    await test.close();
    await lenient.close();
  });

  it('answers 201 with the public user and nothing secret', async () => {
    const response = await signupUser(test.app, { name: 'Ada Lovelace', email: 'Ada@Example.com' });
    expect(response.statusCode).toBe(201);
    assertNoLeak(response.body, [STRONG_PASSWORD]);
    const body = json(response);
    expect(body).toMatchObject({ status: true, code: 201, message: 'successfully registered' });
    expect(Object.keys(body.data).sort()).toEqual(['created_at', 'email', 'id', 'name', 'roles']);
    expect(body.data).toEqual({
      id: expect.any(Number),
      name: 'Ada Lovelace',
      email: 'Ada@Example.com',
      roles: ['user'],
      created_at: test.clock.now().toISOString(),
    });
    expect(Number.isInteger(body.data.id) && body.data.id > 0).toBe(true);

    const row = await test.deps.db.selectFrom('users').selectAll().where('id', '=', body.data.id).executeTakeFirstOrThrow();
    expect(row.email_normalized).toBe('ada@example.com');
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
    expect(row.password_hash).not.toContain(STRONG_PASSWORD);
  });

  it('answers 409 for a registered email, whatever its case', async () => {
    expect((await signupUser(test.app, { email: 'Test@X.com' })).statusCode).toBe(201);
    for (const email of ['Test@X.com', 'test@x.com', 'TEST@X.COM']) {
      const response = await signupUser(test.app, { email, name: 'Someone Else' });
      const body = expectErrorEnvelope(response, 409, 'email already registered', [STRONG_PASSWORD]);
      expect(body.data).toBeNull();
    }
    const rows = await test.deps.db.selectFrom('users').select('id').where('email_normalized', '=', 'test@x.com').execute();
    expect(rows).toHaveLength(1);
  });

  it('lets exactly one of two concurrent signups of one email win', async () => {
    const [first, second] = await Promise.all([
      signupUser(test.app, { email: 'race@example.com', name: 'First' }),
      signupUser(test.app, { email: 'RACE@example.com', name: 'Second' }),
    ]);
    expect([first!.statusCode, second!.statusCode].sort()).toEqual([201, 409]);
    const loser = first!.statusCode === 409 ? first! : second!;
    expectErrorEnvelope(loser, 409, 'email already registered');
    const rows = await test.deps.db.selectFrom('users').select('id').where('email_normalized', '=', 'race@example.com').execute();
    expect(rows).toHaveLength(1);
  });

  describe('password policy', () => {
    const cases: Array<[rule: string, password: string, message: RegExp, user?: { name: string; email: string }]> = [
      ['too short', 'ab1x9', /password must be at least 8 characters/],
      ['common (password1)', 'password1', /too easy to guess - This is a commonly used password/],
      ['common (iloveyou)', 'iloveyou', /too easy to guess - This is a frequently used password/],
      ['common, any case', 'ILoveYou', /too easy to guess - This is a frequently used password/],
      ['one repeated character', 'zzzzzzzzzzzz', /single character repeated/],
      ['ascending digits', '1234567890123', /sequence of consecutive characters/],
      ['descending letters', 'onmlkjihgfedcba', /sequence of consecutive characters/],
      ['keyboard row', 'qwertyuiop', /row of keys on the keyboard/],
      ['reversed keyboard row', 'lkjhgfdsa', /row of keys on the keyboard/],
      ['equal to email', 'marvin.paranoid@example.org', /must not be your email address or name/, { name: 'Marvin', email: 'marvin.paranoid@example.org' }],
      ['equal to name', 'zaphod beeblebrox', /must not be your email address or name/, { name: 'Zaphod Beeblebrox', email: 'zb@example.org' }],
      ['NUL character', 'good pass\u0000phrase here', /must not contain a NUL character/],
      ['lone surrogate', 'good pass\ud800phrase here', /must be valid Unicode text/],
      ['too long', 'a quiet river '.repeat(74), /password must be at most 1024 characters/],
    ];

    it.each(cases)('refuses %s with a 400 naming the rule', async (_rule, password, message, user) => {
      const email = user?.email ?? `policy-${Math.abs(hashCode(password))}@example.com`;
      const response = await signupUser(lenient.app, { name: user?.name ?? 'Policy Tester', email, password });
      const body = expectErrorEnvelope(response, 400, message, [password]);
      expect(body.message).toMatch(/^invalid request - password /);
      expect(body.data.errors).toEqual([{ field: 'password', message: expect.stringMatching(message) }]);
      const stored = await lenient.deps.db.selectFrom('users').select('id').where('email_normalized', '=', email.toLowerCase()).execute();
      expect(stored).toHaveLength(0);
    });

    it('counts length in code points, not UTF-16 units', async () => {
      const sevenEmoji = '🍎🍌🍒🍇🍉🍋🍑'; // 14 UTF-16 units, 7 characters
      expectErrorEnvelope(await signupUser(lenient.app, { email: 'emoji7@example.com', password: sevenEmoji }), 400, /at least 8 characters/);
      const response = await signupUser(lenient.app, { email: 'emoji8@example.com', password: `${sevenEmoji}🥝` });
      expect(response.statusCode).toBe(201);
    });

    it('accepts a long lowercase passphrase under the default policy (no composition rules)', async () => {
      const response = await signupUser(test.app, { email: 'phrase@example.com', password: 'purple elephants dance quietly at midnight' });
      expect(response.statusCode).toBe(201);
      const login = await test.app.inject({
        method: 'POST',
        url: '/login',
        payload: { email: 'phrase@example.com', password: 'purple elephants dance quietly at midnight' },
      });
      expect(login.statusCode).toBe(201);
    });

    it('applies the default minimum of 15', async () => {
      const response = await signupUser(test.app, { email: 'fourteen@example.com', password: 'tangerine owl' + 'x' });
      expectErrorEnvelope(response, 400, 'invalid request - password must be at least 15 characters');
      expect((await signupUser(test.app, { email: 'fifteen@example.com', password: 'tangerine owlxy' })).statusCode).toBe(201);
    });

    it('lets a common password through when PASSWORD_BREACHED_CHECK=false', async () => {
      const unchecked = await startTestApp(dialect, { PASSWORD_MIN_LENGTH: '8', PASSWORD_BREACHED_CHECK: 'false' });
      try {
        expect((await signupUser(unchecked.app, { email: 'common@example.com', password: 'iloveyou' })).statusCode).toBe(201);
        // The other rules still hold.
        expectErrorEnvelope(await signupUser(unchecked.app, { email: 'kb@example.com', password: 'qwertyuiop' }), 400, /row of keys/);
      } finally {
        await unchecked.close();
      }
      // ...and the same password is refused when the check is on.
      expectErrorEnvelope(await signupUser(lenient.app, { email: 'common@example.com', password: 'iloveyou' }), 400, /too easy to guess/);
    });
  });
});

function hashCode(text: string): number {
  let hash = 0;
  for (const character of text) hash = (hash * 31 + character.codePointAt(0)!) | 0;
  return hash;
}
