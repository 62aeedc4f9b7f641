import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoLeak,
  expectErrorEnvelope,
  json,
  loginUser,
  signupUser,
  startTestApp,
  STRONG_PASSWORD,
  testDialects,
  type TestApp,
} from './helpers.ts';

const FAILED = 'verification failed - incorrect user email or password';

// werkzeug generate_password_hash('test123'), the Flask seed's default method.
const WERKZEUG_SCRYPT_TEST123 =
  'scrypt:32768:8:1$KNTfrQV4SHtEuCTp$eefb9c985a99e315f6e1451b3bec49a607fac995f65dc5e568d8d7164c4a3e75b9bb2492b73d6297f058cbf9f10501cddb01b49e9364ab0fa5864b64f5f4ea4d';
// The fixtures of src/passwords/legacy.test.ts, both for 'correct horse battery staple' (STRONG_PASSWORD).
const WERKZEUG_PBKDF2_PASSPHRASE = 'pbkdf2:sha256:10000$HaWHiqkodBUSP4G0$3dc9ad9cb101a13b47dc8b689dab19b68d3865b7fa7e7b167fc95917b2673f8f';
const BCRYPT_PASSPHRASE = '$2b$04$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK';

describe.each(testDialects())('POST /login [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(() => test.close());

  /** A user row as an import from the Flask app would write it. */
  async function importUser(email: string, passwordHash: string): Promise<number> {
    const now = test.clock.nowSeconds();
    const row = await test.deps.db
      .insertInto('users')
      .values({ email, email_normalized: email.toLowerCase(), name: 'Imported User', password_hash: passwordHash, roles: '["user"]', created_at: now, updated_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    return Number(row.id);
  }

  async function storedHash(id: number): Promise<string> {
    const row = await test.deps.db.selectFrom('users').select('password_hash').where('id', '=', id).executeTakeFirstOrThrow();
    return row.password_hash;
  }

  it('answers 201 with the token fields, the user and no-store', async () => {
    const signup = json(await signupUser(test.app, { name: 'Grace Hopper', email: 'grace@example.com' }));
    const response = await loginUser(test.app, 'grace@example.com');
    expect(response.statusCode).toBe(201);
    assertNoLeak(response.body, [STRONG_PASSWORD]);
    expect(response.headers['cache-control']).toBe('no-store');
    const body = json(response);
    expect(Object.keys(body).sort()).toEqual(['code', 'data', 'expires_in', 'message', 'refresh_token', 'status', 'token', 'token_type']);
    expect(body).toMatchObject({ status: true, code: 201, message: 'verification success', token_type: 'Bearer', expires_in: 900 });
    expect(body.data).toEqual({ id: signup.data.id, email: 'grace@example.com', name: 'Grace Hopper' });
    expect(body.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // The refresh token is stored only as a hash.
    const tokens = await test.deps.db.selectFrom('refresh_tokens').select('token_hash').execute();
    expect(tokens.length).toBeGreaterThan(0);
    expect(tokens.map((row) => row.token_hash)).not.toContain(body.refresh_token);

    const second = json(await loginUser(test.app, 'grace@example.com'));
    expect(second.token).not.toBe(body.token);
    expect(second.refresh_token).not.toBe(body.refresh_token);
  });

  it('gives unknown email, wrong password and disabled account the same body apart from the echoed email', async () => {
    await signupUser(test.app, { email: 'wrongpw@example.com' });
    const disabled = json(await signupUser(test.app, { email: 'disabled@example.com' }));
    await test.deps.db.updateTable('users').set({ disabled_at: test.clock.nowSeconds() }).where('id', '=', disabled.data.id).execute();

    const attempts = [
      ['nobody@example.com', STRONG_PASSWORD],
      ['wrongpw@example.com', 'not the right password at all'],
      ['disabled@example.com', STRONG_PASSWORD], // the right password of a disabled account
    ] as const;
    const bodies: string[] = [];
    const headers: string[] = [];
    for (const [email, password] of attempts) {
      const response = await loginUser(test.app, email, password);
      const body = expectErrorEnvelope(response, 403, FAILED, [password]);
      expect(body.data).toEqual({ email });
      bodies.push(response.body.split(email).join('<email>'));
      headers.push(JSON.stringify([response.headers['content-type'], response.headers['cache-control'], response.headers['www-authenticate']]));
    }
    expect(new Set(bodies).size).toBe(1);
    expect(new Set(headers).size).toBe(1);
    expect(bodies[0]).toBe(JSON.stringify({ status: false, code: 403, message: FAILED, data: { email: '<email>' } }));
  });

  it('compares emails case-insensitively and answers with the stored spelling', async () => {
    const signup = json(await signupUser(test.app, { name: 'Mixed Case', email: 'Mixed.Case@Example.com' }));
    for (const email of ['mixed.case@example.com', 'MIXED.CASE@EXAMPLE.COM', 'Mixed.Case@Example.com']) {
      const response = await loginUser(test.app, email);
      expect(response.statusCode).toBe(201);
      expect(json(response).data).toEqual({ id: signup.data.id, email: 'Mixed.Case@Example.com', name: 'Mixed Case' });
    }
  });

  it('logs in with an imported werkzeug scrypt hash and replaces it with Argon2id', async () => {
    const id = await importUser('seed@example.com', WERKZEUG_SCRYPT_TEST123);

    // A wrong password changes nothing.
    expectErrorEnvelope(await loginUser(test.app, 'seed@example.com', 'test124'), 403, FAILED);
    expect(await storedHash(id)).toBe(WERKZEUG_SCRYPT_TEST123);

    const first = await loginUser(test.app, 'seed@example.com', 'test123');
    expect(first.statusCode).toBe(201);
    assertNoLeak(first.body, ['test123']);
    expect(json(first).data).toEqual({ id, email: 'seed@example.com', name: 'Imported User' });
    const rehashed = await storedHash(id);
    expect(rehashed).toMatch(/^\$argon2id\$/);

    const second = await loginUser(test.app, 'seed@example.com', 'test123');
    expect(second.statusCode).toBe(201);
    expect(await storedHash(id)).toBe(rehashed); // already current: no second rehash
    expectErrorEnvelope(await loginUser(test.app, 'seed@example.com', 'test124'), 403, FAILED);
  });

  it.each([
    ['werkzeug pbkdf2', WERKZEUG_PBKDF2_PASSPHRASE],
    ['bcrypt $2b$', BCRYPT_PASSPHRASE],
  ])('logs in with an imported %s hash and rehashes it', async (format, hash) => {
    const email = `${format.replace(/\W+/g, '-')}@example.com`;
    const id = await importUser(email, hash);
    expectErrorEnvelope(await loginUser(test.app, email, 'correct horse battery stapler'), 403, FAILED);
    expect(await storedHash(id)).toBe(hash);

    expect((await loginUser(test.app, email)).statusCode).toBe(201);
    expect(await storedHash(id)).toMatch(/^\$argon2id\$/);
    expect((await loginUser(test.app, email)).statusCode).toBe(201);
  });

  it('refuses a stored hash it does not understand without a 500', async () => {
    await importUser('md5@example.com', '5f4dcc3b5aa765d61d8327deb882cf99');
    expectErrorEnvelope(await loginUser(test.app, 'md5@example.com', 'password'), 403, FAILED);
  });
});
