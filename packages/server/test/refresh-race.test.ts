import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashRefreshToken } from '../src/tokens/refresh-tokens.ts';
import { expectErrorEnvelope, json, loginUser, signupUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';

const OTHER_PASSWORD = 'another long passphrase for rounds';
const ROUNDS = 50;

function refresh(app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } });
}

function getMe(app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
}

/** Lets the event loop turn a few times, so the two requests interleave differently each round. */
async function jitter(): Promise<void> {
  for (let turn = Math.floor(Math.random() * 4); turn > 0; turn -= 1) await new Promise((resolve) => setImmediate(resolve));
}

describe.each(testDialects())('refresh racing a revocation [%s]', (dialect) => {
  let test: TestApp;
  beforeEach(async () => {
    test = await startTestApp(dialect);
  });
  afterEach(() => test.close());

  it(`${ROUNDS} rounds of logout-all or password change against a refresh never leave a working token`, async () => {
    const email = 'racer@example.com';
    expect((await signupUser(test.app, { email })).statusCode).toBe(201);
    let password = STRONG_PASSWORD;
    const outcomes = { refreshedFirst: 0, refusedAfterRevocation: 0 };
    for (let round = 0; round < ROUNDS; round += 1) {
      const revoker = json(await loginUser(test.app, email, password));
      const refresher = json(await loginUser(test.app, email, password));
      const nextPassword = password === STRONG_PASSWORD ? OTHER_PASSWORD : STRONG_PASSWORD;
      const revoke =
        round % 2 === 0
          ? () => test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': revoker.token }, payload: { all: true } })
          : () =>
              test.app.inject({
                method: 'POST',
                url: '/me/password',
                headers: { 'x-access-token': revoker.token },
                payload: { current_password: password, new_password: nextPassword },
              });
      const [revoked, refreshed] = await Promise.all([
        (async () => {
          await jitter();
          return revoke();
        })(),
        (async () => {
          await jitter();
          return refresh(test.app, refresher.refresh_token);
        })(),
      ]);
      expect(revoked.statusCode, revoked.body).toBe(200);
      if (round % 2 === 1) password = nextPassword;

      // The refresher's session is revoked whichever came first: nothing it holds may work now.
      expectErrorEnvelope(await getMe(test.app, refresher.token), 401, 'auth failed - token has been revoked');
      if (refreshed.statusCode === 201) {
        outcomes.refreshedFirst += 1;
        const fresh = json(refreshed);
        expectErrorEnvelope(await getMe(test.app, fresh.token), 401, 'auth failed - token has been revoked');
        expectErrorEnvelope(await refresh(test.app, fresh.refresh_token), 401, 'refresh failed - token is invalid');
      } else {
        outcomes.refusedAfterRevocation += 1;
        expectErrorEnvelope(refreshed, 401, 'refresh failed - token is invalid');
      }
    }
    expect(outcomes.refreshedFirst + outcomes.refusedAfterRevocation).toBe(ROUNDS);
  });
});

/**
 * The interleaving the random rounds may or may not hit, forced with a row lock of our own:
 * the refresh has read a live session and waits to spend its token; a logout-all completes
 * meanwhile. A refresh that finishes after the revocation was acknowledged must be refused.
 * PostgreSQL only: SQLite's driver blocks the event loop while it waits for a lock.
 */
describe.runIf(testDialects().includes('postgres'))('refresh racing a revocation, forced with a PostgreSQL row lock', () => {
  let test: TestApp;
  let locker: pg.Client;
  beforeEach(async () => {
    test = await startTestApp('postgres');
    locker = new pg.Client({ connectionString: test.database.url });
    locker.on('error', () => {});
    await locker.connect();
  });
  afterEach(async () => {
    await locker.end();
    await test.close();
  });

  it('a refresh that read the session before a logout-all committed is refused after it', async () => {
    const email = 'forced@example.com';
    expect((await signupUser(test.app, { email })).statusCode).toBe(201);
    const revoker = json(await loginUser(test.app, email));
    const refresher = json(await loginUser(test.app, email));

    await locker.query('begin');
    await locker.query('select 1 from refresh_tokens where token_hash = $1 for update', [hashRefreshToken(refresher.refresh_token)]);
    const pending = refresh(test.app, refresher.refresh_token);
    await waitForLockWaiter(locker);

    const logout = await test.app.inject({ method: 'POST', url: '/logout', headers: { 'x-access-token': revoker.token }, payload: { all: true } });
    expect(logout.statusCode).toBe(200);
    await locker.query('commit');

    const refreshed = await pending;
    expectErrorEnvelope(refreshed, 401, 'refresh failed - token is invalid');
    // Refused without spending: the token is as it was, of a session that is over.
    const [row] = (await locker.query('select used_at from refresh_tokens where token_hash = $1', [hashRefreshToken(refresher.refresh_token)])).rows;
    expect(row.used_at).toBeNull();
    expect((await locker.query('select count(*)::int as n from refresh_tokens')).rows[0].n).toBe(2);
  });
});

/** Waits until a query of the service is blocked by our transaction (the refresh's UPDATE of the token). */
async function waitForLockWaiter(client: pg.Client): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt += 1) {
    const { rows } = await client.query(
      'select count(*)::int as n from pg_stat_activity where pg_backend_pid() = any(pg_blocking_pids(pid))',
    );
    if (rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the refresh never waited for the row lock');
}
