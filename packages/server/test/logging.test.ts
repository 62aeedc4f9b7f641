import { afterEach, describe, expect, it } from 'vitest';
import { buildCheckedApp, json, signedInUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';
import { portOf, rawRequest } from './raw-http.ts';

describe.each(testDialects())('logging [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('logs every request at info level without a password, token or key', async () => {
    test = await startTestApp(dialect, { LOG_LEVEL: 'trace' });
    const lines: string[] = [];
    const app = await buildCheckedApp(test.deps, { logStream: { write: (line) => void lines.push(line) } });
    try {
      await app.inject({ method: 'POST', url: '/signup', payload: { name: 'Logged', email: 'logged@example.com', password: STRONG_PASSWORD } });
      const login = json(await app.inject({ method: 'POST', url: '/login', payload: { email: 'logged@example.com', password: STRONG_PASSWORD } }));
      await app.inject({ method: 'POST', url: '/login', payload: { email: 'logged@example.com', password: 'a wrong but long password' } });
      await app.inject({ method: 'GET', url: '/users', headers: { authorization: `Bearer ${login.token}`, 'x-access-token': login.token } });
      await app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: login.refresh_token } });
      await app.inject({ method: 'GET', url: '/me', headers: { authorization: 'Bearer not-a-token' } });

      const output = lines.join('');
      expect(lines.filter((line) => JSON.parse(line).msg === 'request')).toHaveLength(6);
      for (const secret of [STRONG_PASSWORD, 'a wrong but long password', login.token, login.refresh_token, login.token.split('.')[2]]) {
        expect(output).not.toContain(secret);
      }
      expect(output).not.toMatch(/\$argon2|"d":"/);
    } finally {
      await app.close();
    }
  });

  it('redacts every secret field, whatever object a log call is given', async () => {
    test = await startTestApp(dialect, { LOG_LEVEL: 'debug' });
    const lines: string[] = [];
    const app = await buildCheckedApp(test.deps, { logStream: { write: (line) => void lines.push(line) } });
    try {
      const secret = (name: string) => `secret-${name}-4f1c9a`;
      app.log.debug(
        {
          password: secret('password'),
          body: {
            email: 'kept@example.com',
            password: secret('body-password'),
            current_password: secret('current'),
            new_password: secret('new'),
            refresh_token: secret('refresh'),
            token: secret('token'),
          },
          req: {
            method: 'POST',
            url: `/login?client_secret=${secret('client-secret')}&page=2`,
            headers: { authorization: `Bearer ${secret('authorization')}`, 'x-access-token': secret('x-access'), cookie: `sid=${secret('cookie')}` },
          },
        },
        'probe',
      );
      const output = lines.join('');
      expect(output).not.toContain('4f1c9a');
      const probe = JSON.parse(lines.find((line) => JSON.parse(line).msg === 'probe')!);
      // Redacted, not dropped: the log still shows that the field was there.
      expect(probe.password).toBe('[redacted]');
      expect(probe.body).toEqual({
        email: 'kept@example.com',
        password: '[redacted]',
        current_password: '[redacted]',
        new_password: '[redacted]',
        refresh_token: '[redacted]',
        token: '[redacted]',
      });
      expect(probe.req.url).toBe('/login?client_secret=[redacted]&page=2');
    } finally {
      await app.close();
    }
  });

  it('keeps credentials in query strings out of the request log', async () => {
    test = await startTestApp(dialect, { LOG_LEVEL: 'info' });
    const lines: string[] = [];
    const app = await buildCheckedApp(test.deps, { logStream: { write: (line) => void lines.push(line) } });
    try {
      const { token } = await signedInUser(app, 'query@example.com');
      lines.length = 0;
      const urls = [
        `/me?access_token=${token}`,
        `/me?ACCESS_TOKEN=${token}`,
        '/healthz?token=secret-a-77e2&code=secret-b-77e2&page=2',
        '/users?limit=1&refresh_token=secret-c-77e2&id_token=secret-d-77e2',
        '/healthz?Password=secret-e-77e2&client_secret=secret-f-77e2&api%5Fkey=secret-g-77e2',
      ];
      for (const url of urls) await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      // Over a socket the request target arrives as sent, `#` included, and the query parser reads past it.
      await app.listen({ host: '127.0.0.1', port: 0 });
      await rawRequest(portOf(app), 'GET /healthz?page=1#&token=secret-h-77e2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');

      const output = lines.join('');
      expect(output).not.toContain(token.split('.')[2]);
      expect(output).not.toContain('77e2');
      const logged = lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'request').map((line) => line.url);
      expect(logged).toEqual([
        '/me?access_token=[redacted]',
        '/me?ACCESS_TOKEN=[redacted]',
        '/healthz?token=[redacted]&code=[redacted]&page=2',
        '/users?limit=1&refresh_token=[redacted]&id_token=[redacted]',
        '/healthz?Password=[redacted]&client_secret=[redacted]&api%5Fkey=[redacted]',
        '/healthz?page=1#&token=[redacted]',
      ]);
    } finally {
      await app.close();
    }
  });
});
