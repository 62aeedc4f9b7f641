import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, testDialects, type TestApp } from './helpers.ts';

/**
 * Who the client is, seen through the per-IP budget of the credential routes: with a budget
 * of BUDGET, requests counted against one address get 401 (a refresh token that does not exist)
 * until the budget is spent, then 429. A client that could pick its own address would never see 429.
 */
const BUDGET = 3;

describe.each(testDialects())('client address behind proxies [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  /** One budget-counted request from `socket`, with X-Forwarded-For when given; returns the status. */
  async function refreshFrom(socket: string, forwardedFor?: string): Promise<number> {
    const response = await test.app.inject({
      method: 'POST',
      url: '/token/refresh',
      remoteAddress: socket,
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
      payload: { refresh_token: 'no-such-token' },
    });
    return response.statusCode;
  }

  /** Statuses of `count` requests whose X-Forwarded-For is built from the request's index. */
  async function statusesOf(count: number, socket: string, forwardedFor: (index: number) => string | undefined): Promise<number[]> {
    const statuses: number[] = [];
    for (let index = 0; index < count; index += 1) statuses.push(await refreshFrom(socket, forwardedFor(index)));
    return statuses;
  }

  const limitedAfterBudget = (count: number) => [...Array<number>(BUDGET).fill(401), ...Array<number>(count - BUDGET).fill(429)];

  it('behind a trusted proxy list, the client is the rightmost untrusted address: rotating the leftmost gains nothing', async () => {
    test = await startTestApp(dialect, { TRUST_PROXY: '10.0.0.0/8', RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    // The attack from the review: the client writes a fresh address of its own on every request.
    expect(await statusesOf(12, '10.1.2.3', (index) => `198.51.100.${index + 1}, 203.0.113.9`)).toEqual(limitedAfterBudget(12));
    // The budget is 203.0.113.9's own: the same address connecting directly is limited too ...
    expect(await refreshFrom('203.0.113.9')).toBe(429);
    // ... while another client behind the same proxy, and the proxy's own address, have theirs.
    expect(await refreshFrom('10.1.2.3', '198.51.100.1, 203.0.113.10')).toBe(401);
    expect(await refreshFrom('10.1.2.3')).toBe(401);
  });

  it('walks back through several trusted proxies, and stops at the first untrusted address', async () => {
    test = await startTestApp(dialect, { TRUST_PROXY: '10.0.0.0/8, 192.168.1.10', RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    // client → 192.168.1.10 → 10.9.9.9 → us (socket 10.1.2.3): the client is 203.0.113.9 whatever stands left of it,
    // a trusted-looking address included.
    const chain = (index: number) => (index % 2 === 0 ? `198.51.100.${index + 1}` : `10.5.5.${index}`) + ', 203.0.113.9, 192.168.1.10, 10.9.9.9';
    expect(await statusesOf(8, '10.1.2.3', chain)).toEqual(limitedAfterBudget(8));
    expect(await refreshFrom('203.0.113.9')).toBe(429);
    // An untrusted address between trusted ones ends the walk: 192.168.1.11 is not in the list.
    expect(await statusesOf(5, '10.1.2.3', (index) => `203.0.113.${index + 20}, 192.168.1.11, 10.9.9.9`)).toEqual(limitedAfterBudget(5));
    expect(await refreshFrom('192.168.1.11')).toBe(429);
  });

  it('ignores X-Forwarded-For from a socket address that is not a trusted proxy', async () => {
    test = await startTestApp(dialect, { TRUST_PROXY: '10.0.0.0/8', RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    expect(await statusesOf(6, '203.0.113.77', (index) => `198.51.100.${index + 1}`)).toEqual(limitedAfterBudget(6));
    // Writing a trusted address does not help either.
    expect(await refreshFrom('203.0.113.77', '10.1.2.3')).toBe(429);
  });

  it('ignores X-Forwarded-For entirely when TRUST_PROXY is unset', async () => {
    test = await startTestApp(dialect, { RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    expect(await statusesOf(6, '10.1.2.3', (index) => `198.51.100.${index + 1}`)).toEqual(limitedAfterBudget(6));
  });

  it('TRUST_PROXY=1 takes the address the one proxy in front reported, whatever the client wrote before it', async () => {
    test = await startTestApp(dialect, { TRUST_PROXY: '1', RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    expect(await statusesOf(6, '172.16.0.5', (index) => `198.51.100.${index + 1}, 203.0.113.9`)).toEqual(limitedAfterBudget(6));
    expect(await refreshFrom('172.16.0.5', '203.0.113.10')).toBe(401);
    // Without the header there is no one to trust past the socket: the proxy's address counts.
    expect(await refreshFrom('172.16.0.5')).toBe(401);
  });

  it('TRUST_PROXY=2 counts two proxies: the second address from the right is the client', async () => {
    test = await startTestApp(dialect, { TRUST_PROXY: '2', RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    // Every request comes from a different client behind the same two proxies: none is limited.
    expect(await statusesOf(6, '172.16.0.5', (index) => `203.0.113.${index + 1}, 172.16.0.9`)).toEqual(Array(6).fill(401));
    // The same client behind them is.
    expect(await statusesOf(6, '172.16.0.5', (index) => `198.51.100.${index + 1}, 203.0.113.50, 172.16.0.9`)).toEqual(limitedAfterBudget(6));
  });

  it('matches an IPv4-mapped IPv6 socket address against an IPv4 CIDR', async () => {
    test = await startTestApp(dialect, { TRUST_PROXY: '10.0.0.0/8', RATE_LIMIT_PER_MINUTE: String(BUDGET) });
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; the proxy is still trusted.
    expect(await statusesOf(6, '::ffff:10.1.2.3', (index) => `198.51.100.${index + 1}, 203.0.113.9`)).toEqual(limitedAfterBudget(6));
    expect(await refreshFrom('203.0.113.9')).toBe(429);
    expect(await refreshFrom('::ffff:10.1.2.3', '203.0.113.10')).toBe(401);
    // An untrusted mapped address is still untrusted.
    expect(await statusesOf(6, '::ffff:203.0.113.77', (index) => `198.51.100.${index + 1}`)).toEqual(limitedAfterBudget(6));
  });
});

describe('TRUST_PROXY at start', () => {
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

  it('refuses TRUST_PROXY=true with exit code 1 and says what to write instead', async () => {
    const failure = await promisify(execFile)(process.execPath, ['--import', 'tsx', main], {
      env: { ...process.env, TRUST_PROXY: 'true', DATABASE_URL: 'sqlite::memory:', PORT: '0', LOG_LEVEL: 'silent' },
      timeout: 20_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure.code).toBe(1);
    expect(failure.stderr).toContain('TRUST_PROXY=true would trust an X-Forwarded-For any client can write');
    expect(failure.stderr).toContain('TRUST_PROXY=10.0.0.0/8,192.168.1.10');
    expect(failure.stderr).toContain('TRUST_PROXY=1');
  });
});
