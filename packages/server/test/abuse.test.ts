import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, loginUser, signedInUser, signupUser, STRONG_PASSWORD, startTestApp, testDialects, type TestApp } from './helpers.ts';

// Tens of milliseconds a hash, so concurrent logins pile up behind one hashing thread.
const SLOW_ARGON2 = { memoryCost: 32 * 1024, timeCost: 3, parallelism: 1 };

describe.each(testDialects())('throttling [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  it('/signup, /login and /token/refresh share one per-IP budget per minute', async () => {
    test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '5' });
    const answers = [
      await signupUser(test.app, { email: 'budget@example.com' }),
      await loginUser(test.app, 'budget@example.com'),
      await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: 'x' } }),
      await loginUser(test.app, 'budget@example.com', 'wrong password here'),
      await signupUser(test.app, { email: 'budget2@example.com' }),
    ];
    expect(answers.map((answer) => answer.statusCode)).toEqual([201, 201, 401, 403, 201]);

    for (const next of [
      () => loginUser(test.app, 'budget@example.com'),
      () => signupUser(test.app, { email: 'budget3@example.com' }),
      () => test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: 'x' } }),
    ]) {
      const limited = await next();
      expect(limited.statusCode).toBe(429);
      expect(json(limited)).toEqual({ status: false, code: 429, message: 'too many requests - try again later', data: null });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    // Another address has its own budget; other routes are not throttled.
    const otherAddress = await test.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: '10.0.0.2',
      payload: { email: 'budget@example.com', password: STRONG_PASSWORD },
    });
    expect(otherAddress.statusCode).toBe(201);
    expect((await test.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    test.clock.advanceSeconds(60);
    expect((await loginUser(test.app, 'budget@example.com')).statusCode).toBe(201);
  });

  it('locks an account after LOGIN_MAX_FAILURES failures, doubling the window, for known and unknown emails alike', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3' });
    await signupUser(test.app, { email: 'known@example.com' });
    for (const email of ['known@example.com', 'nobody@example.com']) {
      const statuses = [];
      for (let attempt = 0; attempt < 4; attempt += 1) statuses.push((await loginUser(test.app, email, 'wrong password again')).statusCode);
      expect(statuses).toEqual([403, 403, 403, 429]);
      // Locked even with the right password; the answer does not tell whether the account exists.
      const locked = await loginUser(test.app, email);
      expect(locked.statusCode).toBe(429);
      expect(locked.headers['retry-after']).toBe('60');
      expect(json(locked).message).toBe('too many requests - try again later');
    }

    test.clock.advanceSeconds(60);
    expect((await loginUser(test.app, 'nobody@example.com', 'wrong password again')).statusCode).toBe(403);
    const doubled = await loginUser(test.app, 'nobody@example.com');
    expect(doubled.statusCode).toBe(429);
    expect(doubled.headers['retry-after']).toBe('120');

    test.clock.advanceSeconds(60);
    const success = await loginUser(test.app, 'known@example.com');
    expect(success.statusCode).toBe(201);
    // Success resets the count: three more failures are needed to lock again.
    expect((await loginUser(test.app, 'known@example.com', 'wrong password again')).statusCode).toBe(403);
    expect((await loginUser(test.app, 'KNOWN@example.com')).statusCode).toBe(201);
  });

  it('caps the lockout window at an hour', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '1' });
    let retryAfter = 0;
    for (let round = 0; round < 10; round += 1) {
      await loginUser(test.app, 'hammer@example.com', 'wrong password again');
      const locked = await loginUser(test.app, 'hammer@example.com');
      retryAfter = Number(locked.headers['retry-after']);
      test.clock.advanceSeconds(retryAfter);
    }
    expect(retryAfter).toBe(3600);
  });
});

describe.each(testDialects())('lockout races and keying [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  const loginFrom = (remoteAddress: string, email: string, password: string) =>
    test.app.inject({ method: 'POST', url: '/login', remoteAddress, payload: { email, password } });

  it('evaluates at most LOGIN_MAX_FAILURES of a burst of concurrent wrong guesses; the rest get 429, and so does the right password', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '10' });
    await signupUser(test.app, { email: 'victim@example.com' });
    const burst = await Promise.all(Array.from({ length: 40 }, (_, index) => loginUser(test.app, 'victim@example.com', `wrong guess number ${index}`)));
    const statuses = burst.map((answer) => answer.statusCode);
    expect(statuses.filter((status) => status === 403)).toHaveLength(10);
    expect(statuses.filter((status) => status === 429)).toHaveLength(30);
    for (const refused of burst.filter((answer) => answer.statusCode === 429)) expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect((await loginUser(test.app, 'victim@example.com')).statusCode).toBe(429);
  });

  it('a burst that holds the right password among wrong ones gets at most the limit evaluated', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '5' });
    await signupUser(test.app, { email: 'victim@example.com' });
    const guesses = [...Array.from({ length: 30 }, (_, index) => `wrong guess number ${index}`), STRONG_PASSWORD];
    const statuses = (await Promise.all(guesses.map((guess) => loginUser(test.app, 'victim@example.com', guess)))).map((answer) => answer.statusCode);
    // The right password came after the budget was spent: it was never evaluated.
    expect(statuses.filter((status) => status !== 429)).toHaveLength(5);
    expect(statuses.at(-1)).toBe(429);
  });

  it('locks a client network out of an account without locking the owner out from elsewhere', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_FAILURES_PER_ACCOUNT: '100' });
    await signupUser(test.app, { email: 'victim@example.com' });
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await loginFrom('198.51.100.9', 'victim@example.com', 'wrong password again')).statusCode).toBe(403);
    expect((await loginFrom('198.51.100.9', 'victim@example.com', STRONG_PASSWORD)).statusCode).toBe(429);
    // The attacker's other addresses in the same IPv6 /64 are the same client.
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await loginFrom(`2001:db8:7:7::${attempt + 1}`, 'victim@example.com', 'wrong password again')).statusCode).toBe(403);
    expect((await loginFrom('2001:db8:7:7:ffff::99', 'victim@example.com', 'wrong password again')).statusCode).toBe(429);
    // The owner, from their own address, is not locked out.
    expect((await loginFrom('192.0.2.44', 'victim@example.com', STRONG_PASSWORD)).statusCode).toBe(201);
  });

  it('locks the account for everyone after LOGIN_MAX_FAILURES_PER_ACCOUNT failures in an hour from many networks', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_FAILURES_PER_ACCOUNT: '7' });
    await signupUser(test.app, { email: 'victim@example.com' });
    const statuses = [];
    for (let network = 1; network <= 3; network += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1) statuses.push((await loginFrom(`203.0.113.${network}`, 'victim@example.com', 'wrong password')).statusCode);
    }
    // Seven failures evaluated across three networks; the rest refused.
    expect(statuses).toEqual([403, 403, 403, 403, 403, 403, 403, 429, 429]);
    const locked = await loginFrom('192.0.2.44', 'victim@example.com', STRONG_PASSWORD);
    expect(locked.statusCode).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBe(3600);

    test.clock.advanceSeconds(3600);
    expect((await loginFrom('192.0.2.44', 'victim@example.com', STRONG_PASSWORD)).statusCode).toBe(201);
  });

  it('keeps a lockout however many other addresses the budget counter sees', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '2' });
    await signupUser(test.app, { email: 'victim@example.com' });
    await loginUser(test.app, 'victim@example.com', 'wrong password one');
    await loginUser(test.app, 'victim@example.com', 'wrong password two');
    expect((await loginUser(test.app, 'victim@example.com')).statusCode).toBe(429);
    // 100 001 distinct IPv6 networks through the per-client budget: once enough to flush a shared bounded store.
    for (let index = 0; index <= 100_000; index += 1) await test.deps.ipRateLimiter.consume(`2001:db8:${(index >> 16).toString(16)}:${(index & 0xffff).toString(16)}::/64`);
    expect((await loginUser(test.app, 'victim@example.com')).statusCode).toBe(429);
  }, 120_000);

  it('keeps a lockout and an account\'s hourly count through a flood of failed logins for other accounts', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '2', LOGIN_MAX_FAILURES_PER_ACCOUNT: '4' });
    await signupUser(test.app, { email: 'locked@example.com' });
    await signupUser(test.app, { email: 'counted@example.com' });
    for (const password of ['wrong one', 'wrong two']) await loginFrom('203.0.113.1', 'locked@example.com', password);
    for (const password of ['wrong one', 'wrong two']) await loginFrom('203.0.113.2', 'counted@example.com', password);
    // 60 000 failed attempts on fresh accounts from fresh networks, straight into the lockout store (the HTTP
    // route would take minutes): 120 000 new keys, past the 100 000 counts it keeps.
    for (let index = 0; index < 60_000; index += 1) await test.deps.loginLockout.reserve(`flood${index}@example.com`, `198.18.${index >> 8}.${index & 0xff}`);
    expect((await loginFrom('203.0.113.1', 'locked@example.com', STRONG_PASSWORD)).statusCode).toBe(429);
    // 'counted' still has its two failures this hour: two more from elsewhere lock it for everyone.
    for (const password of ['wrong three', 'wrong four']) expect((await loginFrom('203.0.113.3', 'counted@example.com', password)).statusCode).toBe(403);
    expect((await loginFrom('192.0.2.44', 'counted@example.com', STRONG_PASSWORD)).statusCode).toBe(429);
  }, 120_000);

  it('gives back the attempts the hashing queue refused: a login storm does not lock out the users caught in it', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '5', HASH_POOL_SIZE: '1', HASH_QUEUE_MAX: '1' }, { ownHasher: SLOW_ARGON2 });
    await signupUser(test.app, { email: 'caught@example.com' });
    const storm = await Promise.all(Array.from({ length: 5 }, (_, index) => loginUser(test.app, 'caught@example.com', `wrong guess ${index}`)));
    const statuses = storm.map((answer) => answer.statusCode).sort();
    // One thread and one queue slot: two evaluated, three refused with 503 and given back.
    expect(statuses).toEqual([403, 403, 503, 503, 503]);
    expect((await loginUser(test.app, 'caught@example.com')).statusCode).toBe(201);
  });

  it('counts a guess whose client hangs up once its check has started (no free guesses by disconnecting)', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', HASH_POOL_SIZE: '1' }, { ownHasher: SLOW_ARGON2 });
    await signupUser(test.app, { email: 'victim@example.com' });
    const address = await test.app.listen({ host: '127.0.0.1', port: 0 });
    const hasher = test.deps.hasher;
    // A fullwidth first letter: the NFKC form is checked first, then the raw form, two jobs.
    const disguise = (guess: string) => String.fromCodePoint(guess.codePointAt(0)! + 0xfee0) + guess.slice(1);
    // As many hang-ups as the budget allows; were they given back, the right password would then get in.
    for (let index = 0; index < 3; index += 1) {
      const body = JSON.stringify({ email: 'victim@example.com', password: disguise(`wrong guess number ${index}`) });
      const socket = connect(Number(new URL(address).port), '127.0.0.1');
      socket.on('error', () => {});
      const startedBefore = hasher.stats().started;
      socket.write(`POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      // Once its first check has a thread, hang up; polling a counter here, not waiting on time.
      await vi.waitFor(() => expect(hasher.stats().started).toBeGreaterThan(startedBefore), { interval: 1, timeout: 10_000 });
      socket.destroy();
      await vi.waitFor(() => expect(hasher.stats().busy + hasher.stats().queued).toBe(0), { interval: 2, timeout: 10_000 });
    }
    expect((await loginUser(test.app, 'victim@example.com')).statusCode).toBe(429);
  });

  it('an account-wide lock does not count against the owner waiting it out from their own network', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_FAILURES_PER_ACCOUNT: '6' });
    await signupUser(test.app, { email: 'victim@example.com' });
    for (const network of ['203.0.113.1', '203.0.113.2']) {
      for (let attempt = 0; attempt < 3; attempt += 1) await loginFrom(network, 'victim@example.com', 'wrong password');
    }
    // The owner retries every minute through the locked hour, with the right password.
    for (let minute = 0; minute < 60; minute += 1) {
      expect((await loginFrom('192.0.2.44', 'victim@example.com', STRONG_PASSWORD)).statusCode).toBe(429);
      test.clock.advanceSeconds(60);
    }
    // The hour is over: the owner gets in at once, not after a lockout of their own.
    expect((await loginFrom('192.0.2.44', 'victim@example.com', STRONG_PASSWORD)).statusCode).toBe(201);
  });

  it('no email can pose as another key: an account name ending in "|<address>" does not touch that address\'s budget', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_FAILURES_PER_ACCOUNT: '3' });
    await signupUser(test.app, { email: 'victim@example.com' });
    for (let attempt = 0; attempt < 5; attempt += 1) await loginFrom('203.0.113.1', 'victim@example.com|192.0.2.44', 'wrong password');
    for (let attempt = 0; attempt < 5; attempt += 1) await loginFrom('203.0.113.2', 'victim@example.com\u0000192.0.2.44', 'wrong password');
    expect((await loginFrom('192.0.2.44', 'victim@example.com', STRONG_PASSWORD)).statusCode).toBe(201);
  });

  it('counts IPv6 clients per /64 for the request budget (IPV6_PREFIX_LENGTH narrows or widens it)', async () => {
    test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '2' });
    const refresh = (remoteAddress: string) =>
      test.app.inject({ method: 'POST', url: '/token/refresh', remoteAddress, payload: { refresh_token: 'x' } });
    expect((await refresh('2001:db8:1:2::1')).statusCode).toBe(401);
    expect((await refresh('2001:db8:1:2:aaaa::2')).statusCode).toBe(401);
    expect((await refresh('2001:db8:1:2:ffff:ffff:ffff:fffe')).statusCode).toBe(429);
    expect((await refresh('2001:db8:1:3::1')).statusCode).toBe(401);
    await test.close();

    test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '2', IPV6_PREFIX_LENGTH: '128' });
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2::3']) expect((await refresh(address)).statusCode).toBe(401);
  });
});

describe.each(testDialects())('POST /me/password throttling [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  const change = (token: string, body: { current_password: string; new_password: string }, remoteAddress = '127.0.0.1') =>
    test.app.inject({ method: 'POST', url: '/me/password', remoteAddress, headers: { authorization: `Bearer ${token}` }, payload: body });

  it('evaluates at most LOGIN_MAX_FAILURES concurrent wrong current passwords; then 429 with Retry-After even for the right one', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '4' });
    const user = await signedInUser(test.app, 'owner@example.com');
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, index) => change(user.token, { current_password: `wrong guess number ${index}`, new_password: 'a brand new long passphrase' })),
    );
    const statuses = burst.map((answer) => answer.statusCode);
    expect(statuses.filter((status) => status === 403)).toHaveLength(4);
    expect(statuses.filter((status) => status === 429)).toHaveLength(16);
    const locked = await change(user.token, { current_password: STRONG_PASSWORD, new_password: 'a brand new long passphrase' });
    expect(locked.statusCode).toBe(429);
    expect(locked.headers['retry-after']).toBe('60');
    test.clock.advanceSeconds(60);
    expect((await change(user.token, { current_password: STRONG_PASSWORD, new_password: 'a brand new long passphrase' })).statusCode).toBe(200);
  });

  it('checks the new password before the current one: a right and a wrong guess get the same 400 for a weak new password', async () => {
    test = await startTestApp(dialect, { LOGIN_MAX_FAILURES: '2' });
    const user = await signedInUser(test.app, 'owner@example.com');
    const right = await change(user.token, { current_password: STRONG_PASSWORD, new_password: 'short' });
    const wrong = await change(user.token, { current_password: 'wrong password here', new_password: 'short' });
    expect(right.statusCode).toBe(400);
    expect(wrong.body).toBe(right.body);
    // Those were not password checks: the whole budget is still there.
    expect((await change(user.token, { current_password: 'wrong password here', new_password: 'a brand new long passphrase' })).statusCode).toBe(403);
    expect((await change(user.token, { current_password: STRONG_PASSWORD, new_password: 'a brand new long passphrase' })).statusCode).toBe(200);
  });

  it('refuses a new password equal to the current one, whether or not the current one is right', async () => {
    test = await startTestApp(dialect);
    const user = await signedInUser(test.app, 'owner@example.com');
    for (const password of [STRONG_PASSWORD, 'not the password at all']) {
      const answer = await change(user.token, { current_password: password, new_password: password });
      expect(answer.statusCode).toBe(400);
      expect(json(answer).message).toBe('invalid request - new_password must differ from current_password');
    }
  });

  it('is under the per-client request budget', async () => {
    test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: '3' });
    const user = await signedInUser(test.app, 'owner@example.com');
    const statuses = [];
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const body = { current_password: `wrong guess ${attempt}`, new_password: 'a brand new long passphrase' };
      statuses.push((await change(user.token, body, '10.9.9.9')).statusCode);
    }
    expect(statuses).toEqual([403, 403, 403, 429]);
  });
});

describe('edges', () => {
  let test: TestApp;
  afterEach(() => test.close());

  it('sends security headers on every answer and no X-Powered-By', async () => {
    test = await startTestApp('sqlite');
    for (const url of ['/', '/healthz', '/users', '/nowhere', '/.well-known/jwks.json']) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['content-security-policy']).toContain("default-src 'none'");
      expect(response.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(response.headers['x-powered-by']).toBeUndefined();
    }
    expect((await test.app.inject({ method: 'GET', url: '/healthz' })).headers['cache-control']).toBe('no-store');
    expect((await test.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).headers['cache-control']).toContain('max-age');
  });

  it('allows CORS only for CORS_ORIGINS', async () => {
    test = await startTestApp('sqlite', { CORS_ORIGINS: 'https://app.example.com' });
    const preflight = (origin: string) =>
      test.app.inject({ method: 'OPTIONS', url: '/login', headers: { origin, 'access-control-request-method': 'POST' } });
    expect((await preflight('https://app.example.com')).headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect((await preflight('https://evil.example.com')).headers['access-control-allow-origin']).toBeUndefined();
    const simple = await test.app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example.com' } });
    expect(simple.headers['access-control-allow-origin']).toBeUndefined();
    await test.close();

    test = await startTestApp('sqlite');
    const closed = await test.app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://app.example.com' } });
    expect(closed.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers unknown methods and paths with a 404 envelope', async () => {
    test = await startTestApp('sqlite');
    for (const [method, url] of [['PUT', '/login'], ['DELETE', '/signup'], ['GET', '/login'], ['PATCH', '/nowhere']] as const) {
      const response = await test.app.inject({ method, url });
      expect(response.statusCode).toBe(404);
      expect(json(response)).toEqual({ status: false, code: 404, message: 'not found', data: null });
    }
  });

  it('refuses oversize headers on a real socket without harm', async () => {
    test = await startTestApp('sqlite');
    const address = await test.app.listen({ host: '127.0.0.1', port: 0 });
    const huge = await fetch(`${address}/healthz`, { headers: { 'x-filler': 'a'.repeat(64 * 1024) } }).catch(() => undefined);
    expect(huge === undefined || huge.status === 431 || huge.status === 400).toBe(true);
    expect((await fetch(`${address}/healthz`)).status).toBe(200);
  });
});
