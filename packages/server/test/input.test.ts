import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, json, loginUser, signupUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';

const BODY_LIMIT = 2048;
const NUMERIC_PASSWORD = '271828182845904'; // all digits, yet no rule refuses it
const VALID = { name: 'Valid Name', email: 'valid@example.com', password: STRONG_PASSWORD };
const SECRETS = [STRONG_PASSWORD, NUMERIC_PASSWORD];

type Case = [description: string, request: Omit<InjectOptions, 'method' | 'url'>, status: number];

const jsonBody = (payload: string | Buffer): Omit<InjectOptions, 'method' | 'url'> => ({ payload, headers: { 'content-type': 'application/json' } });
const nested = (depth: number) => `{"email":${'['.repeat(depth)}${']'.repeat(depth)},"password":"x"}`;

// Requests any JSON endpoint must refuse, the same way, on /signup and /login alike.
const BAD_BODIES: Case[] = [
  ['malformed JSON', jsonBody('{"email": "a@b.com",'), 400],
  ['trailing garbage after JSON', jsonBody('{"email":"a@b.com"} x'), 400],
  ['single-quoted JSON', jsonBody("{'email':'a@b.com'}"), 400],
  ['an empty body', jsonBody(''), 400],
  ['no body at all', {}, 400],
  ['a JSON array', jsonBody('[]'), 400],
  ['a JSON string', jsonBody('"valid@example.com"'), 400],
  ['a JSON number', jsonBody('42'), 400],
  ['JSON null', jsonBody('null'), 400],
  ['an empty object', jsonBody('{}'), 400],
  ['a numeric password', jsonBody(`{"email":"valid@example.com","password":${NUMERIC_PASSWORD}}`), 400],
  ['a boolean email', jsonBody('{"email":true,"password":"x"}'), 400],
  ['a null password', jsonBody('{"email":"valid@example.com","password":null}'), 400],
  ['an array password', jsonBody('{"email":"valid@example.com","password":["a"]}'), 400],
  ['an object email', jsonBody('{"email":{"$ne":""},"password":"x"}'), 400],
  ['a huge number', jsonBody('{"email":1e400,"password":123456789012345678901234567890}'), 400],
  ['deeply nested JSON', jsonBody(nested(900)), 400],
  ['a __proto__ key', jsonBody('{"email":"a@b.com","password":"x","__proto__":{"admin":true}}'), 400],
  ['a nested __proto__ key', jsonBody('{"email":"a@b.com","password":"x","roles":{"__proto__":{"admin":true}}}'), 400],
  ['a constructor.prototype key', jsonBody('{"email":"a@b.com","password":"x","constructor":{"prototype":{"admin":true}}}'), 400],
  ['invalid UTF-8 bytes', jsonBody(Buffer.concat([Buffer.from('{"email":"a@b.com","password":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])), 400],
  ['an overlong UTF-8 encoding', jsonBody(Buffer.concat([Buffer.from('{"email":"a@b.com","password":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])), 400],
  ['text/plain', { payload: JSON.stringify(VALID), headers: { 'content-type': 'text/plain' } }, 415],
  ['form encoding', { payload: 'email=valid%40example.com&password=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
  [
    'multipart',
    { payload: '--b\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.com\r\n--b--\r\n', headers: { 'content-type': 'multipart/form-data; boundary=b' } },
    415,
  ],
  ['an unknown content type', { payload: JSON.stringify(VALID), headers: { 'content-type': 'application/xml' } }, 415],
  ['an oversize body', jsonBody(JSON.stringify({ ...VALID, name: 'n'.repeat(BODY_LIMIT) })), 413],
  ['an oversize body without content-length', { ...jsonBody(JSON.stringify({ ...VALID, name: 'n'.repeat(BODY_LIMIT * 4) })) }, 413],
];

describe.each(testDialects())('bad input [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect, { BODY_LIMIT: String(BODY_LIMIT) });
    expect((await signupUser(test.app, VALID)).statusCode).toBe(201);
    expect((await signupUser(test.app, { email: 'digits@example.com', password: NUMERIC_PASSWORD })).statusCode).toBe(201);
  });
  afterAll(() => test.close());

  describe.each(['/signup', '/login'])('POST %s', (url) => {
    it.each(BAD_BODIES)('refuses %s', async (_description, request, status) => {
      const response = await test.app.inject({ method: 'POST', url, ...request });
      expectErrorEnvelope(response, status, undefined, SECRETS);
    });
  });

  it('does not coerce a numeric password into a login attempt', async () => {
    const refused = await test.app.inject({ method: 'POST', url: '/login', ...jsonBody(`{"email":"digits@example.com","password":${NUMERIC_PASSWORD}}`) });
    const body = expectErrorEnvelope(refused, 400, /password/, SECRETS);
    expect(body.data.errors).toEqual([expect.objectContaining({ field: 'password' })]);
    // The same password as a string logs in: the 400 above is about the type alone.
    expect((await loginUser(test.app, 'digits@example.com', NUMERIC_PASSWORD)).statusCode).toBe(201);
  });

  it('says which rule a refused body broke', async () => {
    const cases: Array<[string | Buffer, string]> = [
      [Buffer.concat([Buffer.from('{"email":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 'invalid request - body is not valid UTF-8'],
      ['{"email":"a@b.com","__proto__":{"admin":true}}', 'invalid request - __proto__ and constructor keys are not allowed'],
      ['{"constructor":{"prototype":{"admin":true}}}', 'invalid request - __proto__ and constructor keys are not allowed'],
      ['{"email":', 'invalid request - body is not valid JSON'],
    ];
    for (const [payload, message] of cases) {
      expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/login', ...jsonBody(payload) }), 400, message);
    }
  });

  it('accepts application/json with parameters or in another case (control for the 415s)', async () => {
    const payload = JSON.stringify({ email: VALID.email, password: VALID.password });
    for (const type of ['application/json; charset=utf-8', 'Application/JSON']) {
      expect((await test.app.inject({ method: 'POST', url: '/login', payload, headers: { 'content-type': type } })).statusCode).toBe(201);
    }
  });

  it('refuses lone surrogates, which would make different passwords hash alike', async () => {
    const escaped = (password: string) => jsonBody(`{"email":"lone@example.com","name":"Lone","password":"${password}"}`);
    const signup = await test.app.inject({ method: 'POST', url: '/signup', ...escaped('a long pass phrase \\ud800') });
    expectErrorEnvelope(signup, 400, 'invalid request - password must be valid Unicode text');
    const name = await test.app.inject({ method: 'POST', url: '/signup', ...jsonBody(`{"email":"lone@example.com","name":"Lone\\udfff","password":"${STRONG_PASSWORD}"}`) });
    expectErrorEnvelope(name, 400, 'invalid request - name contains characters that are not allowed');
    const login = await test.app.inject({ method: 'POST', url: '/login', ...jsonBody(`{"email":"valid@example.com","password":"${STRONG_PASSWORD}\\ud800"}`) });
    expectErrorEnvelope(login, 400, 'invalid request - password contains characters that are not allowed');
    // A well-formed astral character is fine.
    expect((await signupUser(test.app, { email: 'emoji@example.com', password: `${STRONG_PASSWORD} 🔑` })).statusCode).toBe(201);
  });

  it('names each missing and unknown field', async () => {
    const missing = expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/signup', payload: { email: 'x@example.com' } }), 400);
    expect(missing.data.errors.map((error: { field: string }) => error.field).sort()).toEqual(['name', 'password']);
    expect(missing.message).toMatch(/^invalid request - .*name is required/);

    const unknown = expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/login', payload: { ...VALID, name: undefined, admin: true } }), 400);
    expect(unknown.data.errors).toEqual([{ field: 'admin', message: 'admin is not an allowed field' }]);
  });

  it.each(['plainaddress', 'a@', '@example.com', 'a b@example.com', 'a@b@example.com', 'a@example..com', '', ' ', `${'x'.repeat(250)}@example.com`])(
    'refuses the email %j at signup',
    async (email) => {
      const body = expectErrorEnvelope(await signupUser(test.app, { email }), 400, /^invalid request - .*email/, SECRETS);
      expect(body.data.errors).toEqual([expect.objectContaining({ field: 'email' })]);
    },
  );

  it.each([
    ['/signup', 'name', { ...VALID, email: 'nul1@example.com', name: 'Bad\u0000Name' }],
    ['/signup', 'email', { ...VALID, email: 'nul2\u0000@example.com' }],
    ['/signup', 'password', { ...VALID, email: 'nul3@example.com', password: `${STRONG_PASSWORD}\u0000` }],
    ['/login', 'email', { email: 'valid@example.com\u0000', password: STRONG_PASSWORD }],
    ['/login', 'password', { email: 'valid@example.com', password: `${STRONG_PASSWORD}\u0000` }],
  ])('refuses a NUL byte on %s in %s', async (url, _field, payload) => {
    const response = await test.app.inject({ method: 'POST', url, payload });
    expect(response.statusCode).toBeGreaterThanOrEqual(400);
    expect(response.statusCode).toBeLessThan(500);
    expectErrorEnvelope(response, response.statusCode, undefined, SECRETS);
  });

  it('refuses blank and control-character names', async () => {
    for (const name of ['', '   ', 'tab\there', 'bell\u0007']) {
      expectErrorEnvelope(await signupUser(test.app, { name, email: 'blank-name@example.com' }), 400, /^invalid request - .*name/);
    }
  });

  it('answers unknown routes and methods with a 404 envelope', async () => {
    for (const [method, url] of [
      ['GET', '/nope'],
      ['POST', '/users'],
      ['DELETE', '/signup'],
      ['GET', '/signup/../../etc/passwd'],
      ['GET', `/${'a'.repeat(3000)}`],
    ] as const) {
      const body = expectErrorEnvelope(await test.app.inject({ method, url }), 404, 'not found');
      expect(body.data).toBeNull();
    }
  });

  it('answers a malformed URL with a 400 envelope', async () => {
    for (const url of ['/%', '/users/%zz', '//%']) {
      expectErrorEnvelope(await test.app.inject({ method: 'GET', url }), 400, /^invalid request/);
    }
  });

  it('leaves stored users intact after all of that', async () => {
    const valid = await loginUser(test.app, VALID.email);
    expect(valid.statusCode).toBe(201);
    expect(json(valid).data.email).toBe(VALID.email);
    expect((await loginUser(test.app, 'digits@example.com', NUMERIC_PASSWORD)).statusCode).toBe(201);
    const emails = (await test.deps.db.selectFrom('users').select('email_normalized').execute()).map((row) => row.email_normalized);
    // Only the users created on purpose: no refused request stored anything.
    expect(emails.sort()).toEqual(['digits@example.com', 'emoji@example.com', 'valid@example.com']);
  });
});
