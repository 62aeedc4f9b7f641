import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.ts';
import { json, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';

describe.each(testDialects())('logging [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('logs every request at info level without a password, token or key', async () => {
    test = await startTestApp(dialect, { LOG_LEVEL: 'trace' });
    const lines: string[] = [];
    const app = await buildApp(test.deps, { logStream: { write: (line) => void lines.push(line) } });
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
});
