import { hashSync as argon2HashSync } from '@node-rs/argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, FAST_ARGON2, json, loginUser, signupUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

// NIST SP 800-63B-4: passwords are NFKC-normalised before hashing, so the same text typed on
// different keyboards or systems (composed or decomposed accents, fullwidth forms) is one password.
const COMPOSED = 'mon café crème est très chaud ce matin'; // é, è as single code points
const DECOMPOSED = COMPOSED.normalize('NFD'); // e + U+0301, e + U+0300

describe.each(testDialects())('password normalisation (NFKC) [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(() => test.close());

  async function storedHash(email: string): Promise<string> {
    const row = await test.deps.db.selectFrom('users').select('password_hash').where('email', '=', email).executeTakeFirstOrThrow();
    return row.password_hash;
  }

  it('signs up composed and logs in decomposed', async () => {
    expect(COMPOSED).not.toBe(DECOMPOSED);
    expect((await signupUser(test.app, { email: 'composed@example.com', password: COMPOSED })).statusCode).toBe(201);
    expect((await loginUser(test.app, 'composed@example.com', DECOMPOSED)).statusCode).toBe(201);
    expect((await loginUser(test.app, 'composed@example.com', COMPOSED)).statusCode).toBe(201);
  });

  it('signs up decomposed and logs in composed', async () => {
    expect((await signupUser(test.app, { email: 'decomposed@example.com', password: DECOMPOSED })).statusCode).toBe(201);
    expect((await loginUser(test.app, 'decomposed@example.com', COMPOSED)).statusCode).toBe(201);
  });

  it('judges the length of the normalised password', async () => {
    // 16 code points as typed, 14 once the accents are composed: too short for the minimum of 15.
    const typed = 'mon café crème'.normalize('NFD');
    expect([...typed]).toHaveLength(16);
    const body = expectErrorEnvelope(await signupUser(test.app, { email: 'short@example.com', password: typed }), 400);
    expect(body.data.errors).toEqual([{ field: 'password', message: expect.stringMatching(/at least 15/) }]);
  });

  it.each([
    ['fullwidth letters', 'ｐａｓｓｐｈｒａｓｅ of the ｆｕｌｌｗｉｄｔｈ kind'],
    ['a ligature', 'the ﬁsh ﬂew over the ﬁeld of ﬂowers'],
  ])('keeps an account whose hash was made from the raw form (%s), then stores the NFKC hash', async (kind, raw) => {
    const email = `raw-${kind.replace(/\W/g, '-')}@example.com`;
    const normalized = raw.normalize('NFKC');
    expect(normalized).not.toBe(raw);
    expect((await signupUser(test.app, { email, password: normalized })).statusCode).toBe(201);
    // What the previous version stored: Argon2id of the password exactly as typed.
    const rawHash = argon2HashSync(raw, { algorithm: 2, ...FAST_ARGON2 });
    await test.deps.db.updateTable('users').set({ password_hash: rawHash }).where('email', '=', email).execute();

    const login = await loginUser(test.app, email, raw);
    expect(login.statusCode, login.body).toBe(201);
    expect(json(login).token).toEqual(expect.any(String));
    const upgraded = await storedHash(email);
    expect(upgraded).not.toBe(rawHash);
    expect(upgraded).toMatch(/^\$argon2id\$/);
    // The new hash is of the NFKC form: that form now works, and so does the raw one (normalised).
    expect((await test.deps.hasher.verify(upgraded, normalized)).matches).toBe(true);
    expect((await loginUser(test.app, email, normalized)).statusCode).toBe(201);
    expect((await loginUser(test.app, email, raw)).statusCode).toBe(201);
    expect(await storedHash(email)).toBe(upgraded); // no further rehash
  });
});
