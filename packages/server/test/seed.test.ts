import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, SEED_ENV, startTestApp, testDialects, type TestApp } from './helpers.ts';

// The Flask tutorial's client session (../shared/seed/flask-jwt-tutorial.md), message for message.
describe.each(testDialects())('seed session [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect, SEED_ENV);
  });
  afterAll(() => test.close());

  it('replays the tutorial against Gatehouse', async () => {
    const { app } = test;
    const root = await app.inject({ method: 'GET', url: '/' });
    expect(root.statusCode).toBe(200);
    expect(root.headers['content-type']).toMatch(/^text\/plain/);
    expect(root.body).toBe('flask rest connected');

    const signup = await app.inject({
      method: 'POST',
      url: '/signup',
      payload: { name: 'Test User', email: 'test@gmail.com', password: 'test123' },
    });
    expect(signup.statusCode).toBe(201);
    const signupBody = json(signup);
    expect(signupBody).toMatchObject({ code: 201, message: 'successfully registered', status: true });
    expect(signupBody.data).toMatchObject({ email: 'test@gmail.com', name: 'Test User' });
    expect(signupBody.data).not.toHaveProperty('password');
    expect(signup.body).not.toContain('test123');

    const failed = await app.inject({ method: 'POST', url: '/login', payload: { email: 'test1@gmail.com', password: 'test123-' } });
    expect(failed.statusCode).toBe(403);
    expect(json(failed)).toEqual({
      code: 403,
      data: { email: 'test1@gmail.com' },
      message: 'verification failed - incorrect user email or password',
      status: false,
    });

    const login = await app.inject({ method: 'POST', url: '/login', payload: { email: 'test@gmail.com', password: 'test123' } });
    expect(login.statusCode).toBe(201);
    const loginBody = json(login);
    expect(loginBody).toMatchObject({ code: 201, message: 'verification success', status: true, token_type: 'Bearer', expires_in: 900 });
    expect(loginBody.data).toEqual({ id: signupBody.data.id, email: 'test@gmail.com', name: 'Test User' });
    expect(login.body).not.toContain('test123');
    const token: string = loginBody.token;
    expect(token.split('.')).toHaveLength(3);
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(JSON.stringify(payload)).not.toContain('test123');

    const invalid = await app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': 'invalid-token' } });
    expect(invalid.statusCode).toBe(401);
    expect(json(invalid)).toEqual({ code: 401, data: null, message: 'auth failed - token is invalid', status: false });

    const users = await app.inject({ method: 'GET', url: '/users', headers: { 'x-access-token': token } });
    expect(users.statusCode).toBe(200);
    expect(json(users)).toEqual({ users: [{ id: signupBody.data.id, email: 'test@gmail.com' }], next_cursor: null });
  });

  it('refuses the seed password under the default policy, naming the rule', async () => {
    const strict = await startTestApp(dialect);
    try {
      const response = await strict.app.inject({
        method: 'POST',
        url: '/signup',
        payload: { name: 'Test User', email: 'test@gmail.com', password: 'test123' },
      });
      expect(response.statusCode).toBe(400);
      expect(json(response)).toMatchObject({
        status: false,
        code: 400,
        message: 'invalid request - password must be at least 15 characters',
        data: { errors: [{ field: 'password', message: 'password must be at least 15 characters' }] },
      });
    } finally {
      await strict.close();
    }
  });
});
