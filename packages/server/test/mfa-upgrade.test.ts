/**
 * After an upgrade, recovery codes stored as plain SHA-256 by earlier versions keep working, for many users
 * finishing a login at once; the keyed hash's server secret is created at start, never inside a login's
 * transaction (created there, a racing login aborted on PostgreSQL: a 500).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enableTotp, json, signedInUser, startTestApp, STRONG_PASSWORD, testDialects, type TestApp } from './helpers.ts';

const legacy = (code: string) => createHash('sha256').update(code.replace(/[\s-]/g, '').toLowerCase()).digest('hex');

describe.each(testDialects())('legacy recovery codes right after the upgrade [%s]', (dialect) => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp(dialect);
  });
  afterAll(async () => {
    await test?.close();
  });

  it('eight users finishing a login with a legacy recovery code at the same moment all get in', async () => {
    const users = [];
    for (const email of Array.from({ length: 8 }, (_, i) => `rc-${i}@example.com`)) {
      const user = await signedInUser(test.app, email);
      await enableTotp(test, { email, token: user.token });
      users.push({ ...user, email });
    }
    // As before the upgrade: plain SHA-256 codes and no HMAC secret.
    await test.deps.db.deleteFrom('recovery_codes').execute();
    for (const [index, user] of users.entries()) {
      await test.deps.db.insertInto('recovery_codes').values({ code_hash: legacy(`aaaaa-bbbb${"cdefghjk"[index]}`), user_id: user.id, created_at: 0, used_at: null }).execute();
    }
    await test.deps.db.deleteFrom('server_secrets').where('name', '=', 'recovery_code_hmac').execute();
    await test.restart();
    const tickets = [];
    for (const user of users) {
      const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: STRONG_PASSWORD } });
      tickets.push(json(login).data.mfa_ticket);
    }
    const results = await Promise.all(
      tickets.map((ticket, index) => test.app.inject({ method: 'POST', url: '/login/mfa', payload: { mfa_ticket: ticket, code: `aaaaa-bbbb${"cdefghjk"[index]}` } })),
    );
    expect(results.map((r) => `${r.statusCode} ${r.statusCode >= 400 ? r.body : ''}`)).toEqual(Array(users.length).fill('201 '));
  });
});
