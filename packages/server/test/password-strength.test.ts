import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectErrorEnvelope,
  json,
  loginUser,
  SEED_ENV,
  signedInUser,
  signupUser,
  startTestApp,
  STRONG_PASSWORD,
  testDialects,
  type TestApp,
} from './helpers.ts';

// Each passed the 15-character minimum and every pattern rule before the strength estimator (issue 8).
const NEAR_MISSES = ['qwertyuiopasdfgh', 'Password1234567!', 'qwertyuiop123456', 'password12345678', 'letmeinletmein12'];
const REASON = /^invalid request - password is too easy to guess - [A-Z].*\.$/;

describe.each(testDialects())('password strength estimate [%s]', (dialect) => {
  let test: TestApp;

  beforeAll(async () => {
    test = await startTestApp(dialect);
  });

  afterAll(async () => {
    await test.close();
  });

  it.each(NEAR_MISSES)('refuses a signup with %j: 400 envelope with zxcvbn feedback, nothing stored', async (password) => {
    const email = `near-miss-${NEAR_MISSES.indexOf(password)}@example.com`;
    const body = expectErrorEnvelope(await signupUser(test.app, { email, password }), 400, REASON, [password]);
    expect(body.data.errors).toEqual([{ field: 'password', message: expect.stringContaining('Add more words that are less common.') }]);
    const stored = await test.deps.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
    expect(stored).toHaveLength(0);
  });

  it.each(NEAR_MISSES)('refuses %j as a new password on POST /me/password, and the old one keeps working', async (password) => {
    const email = `changer-${NEAR_MISSES.indexOf(password)}@example.com`;
    const user = await signedInUser(test.app, email);
    const response = await test.app.inject({
      method: 'POST',
      url: '/me/password',
      headers: { authorization: `Bearer ${user.token}` },
      payload: { current_password: STRONG_PASSWORD, new_password: password },
    });
    const body = expectErrorEnvelope(response, 400, /^invalid request - new_password is too easy to guess - [A-Z].*\.$/, [password, STRONG_PASSWORD]);
    expect(body.data.errors).toEqual([{ field: 'new_password', message: expect.stringContaining('Add more words that are less common.') }]);
    expect((await loginUser(test.app, email, password)).statusCode).toBe(403);
    expect((await loginUser(test.app, email)).statusCode).toBe(201);
  });

  it('refuses a password built from the user’s own email and name', async () => {
    const password = 'Grace.Hopper1906';
    const body = expectErrorEnvelope(
      await signupUser(test.app, { name: 'Grace Hopper', email: 'grace.hopper@example.com', password }),
      400,
      /There should not be any personal or page related data\./,
      [password],
    );
    expect(body.message).toMatch(REASON);
    // The same password is fine for somebody else.
    expect((await signupUser(test.app, { name: 'Alan Turing', email: 'alan@example.com', password })).statusCode).toBe(201);
  });

  it('accepts long random-word passphrases', async () => {
    for (const [index, password] of ['correct horse battery staple', 'a brand new long passphrase', 'imitation game at bletchley'].entries()) {
      const response = await signupUser(test.app, { email: `phrase-${index}@example.com`, password });
      expect(response.statusCode, response.body).toBe(201);
      expect(json(response).data).not.toHaveProperty('password');
    }
  });

  it("keeps the seed's settings working: PASSWORD_BREACHED_CHECK=false turns the estimator off too", async () => {
    const seed = await startTestApp(dialect, SEED_ENV);
    try {
      expect((await signupUser(seed.app, { email: 'seed@example.com', password: 'test123' })).statusCode).toBe(201);
      expect((await signupUser(seed.app, { email: 'near@example.com', password: 'Password1234567!' })).statusCode).toBe(201);
    } finally {
      await seed.close();
    }
  });
});
