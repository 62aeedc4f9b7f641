import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

const REFUSED = 'invalid request - access tokens are not accepted in the URL';

describe.each(testDialects())('access tokens in the URL [%s]', (dialect) => {
  let test: TestApp;
  let token: string;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    ({ token } = await signedInUser(test.app, 'url@example.com'));
  });
  afterAll(() => test.close());

  it('refuses ?access_token= on a protected route with a 400 envelope, even a valid one (RFC 6750 §5.3)', async () => {
    for (const url of [`/me?access_token=${token}`, `/users?limit=1&access_token=${token}`, `/me?Access_Token=${token}`, `/me?access%5Ftoken=${token}`]) {
      const response = await test.app.inject({ method: 'GET', url });
      const body = expectErrorEnvelope(response, 400, REFUSED, [token]);
      expect(body.data).toEqual({ errors: [{ field: 'access_token', message: 'access tokens are not accepted in the URL' }] });
      expect(response.headers['www-authenticate']).toBe('Bearer error="invalid_request"');
    }
    // Refused also beside a header token, and before a POST body is read.
    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: `/me?access_token=${token}`, headers: { authorization: `Bearer ${token}` } }), 400, REFUSED);
    expectErrorEnvelope(await test.app.inject({ method: 'POST', url: `/logout?access_token=${token}`, payload: {} }), 400, REFUSED);
  });

  it('no route takes it: an open route refuses it too', async () => {
    for (const url of [`/healthz?access_token=${token}`, `/?access_token=${token}`, `/login?access_token=${token}`]) {
      expectErrorEnvelope(await test.app.inject({ method: url.startsWith('/login') ? 'POST' : 'GET', url, payload: url.startsWith('/login') ? {} : undefined }), 400, REFUSED);
    }
  });

  it('serves the same requests with the token in a header, and other query parameters as before', async () => {
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    expect((await test.app.inject({ method: 'GET', url: '/users?limit=1', headers: { 'x-access-token': token } })).statusCode).toBe(200);
    expect((await test.app.inject({ method: 'GET', url: '/healthz?access=1&token_type=x' })).statusCode).toBe(200);
  });
});
