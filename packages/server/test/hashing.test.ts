import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createDeps } from '../src/deps.ts';
import {
  buildCheckedApp,
  createTestDatabase,
  expectErrorEnvelope,
  FAST_ARGON2,
  loginUser,
  signupUser,
  startTestApp,
  STRONG_PASSWORD,
  testDialects,
  type TestApp,
} from './helpers.ts';

// Costly enough (tens of milliseconds a job) that requests pile up behind one hashing thread.
const SLOW_ARGON2 = { memoryCost: 32 * 1024, timeCost: 3, parallelism: 1 };

/** A login answer as fetch sees it over a real socket. */
interface Answer {
  status: number;
  retryAfter: string | null;
  body: any;
}

async function postLogin(baseUrl: string, email: string, password: string): Promise<Answer> {
  const response = await fetch(`${baseUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() };
}

describe.each(testDialects())('hashing queue [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test?.close());

  it('answers a login storm past HASH_QUEUE_MAX with 503 envelopes and Retry-After, never a 500; the rest log in', async () => {
    test = await startTestApp(dialect, { HASH_POOL_SIZE: '1', HASH_QUEUE_MAX: '2' }, { ownHasher: SLOW_ARGON2 });
    const emails = Array.from({ length: 8 }, (_, index) => `storm${index}@example.com`);
    for (const email of emails) expect((await signupUser(test.app, { email })).statusCode).toBe(201);
    const baseUrl = await test.app.listen({ host: '127.0.0.1', port: 0 });

    // Over real sockets, so a queued request whose client is still there must not be taken for a gone one.
    const answers = await Promise.all(emails.flatMap((email) => [1, 2, 3].map(() => postLogin(baseUrl, email, STRONG_PASSWORD))));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status !== 201 && status !== 503)).toEqual([]);
    const refused = answers.filter((answer) => answer.status === 503);
    const loggedIn = answers.filter((answer) => answer.status === 201);
    expect(refused.length).toBeGreaterThan(0);
    // One thread and two waiting places: at least three of any burst get through.
    expect(loggedIn.length).toBeGreaterThanOrEqual(3);
    for (const answer of refused) {
      expect(answer.body).toEqual({ status: false, code: 503, message: 'service unavailable', data: null });
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    for (const answer of loggedIn) expect(answer.body.token).toEqual(expect.any(String));
    expect(test.deps.hasher.stats()).toMatchObject({ threads: 1, busy: 0, queued: 0, rejected: refused.length, dropped: 0 });
  });

  it('drops the queued login of a client that disconnected: it costs no hash', async () => {
    test = await startTestApp(dialect, { HASH_POOL_SIZE: '1', HASH_QUEUE_MAX: '4' }, { ownHasher: SLOW_ARGON2 });
    expect((await signupUser(test.app, { email: 'gone@example.com' })).statusCode).toBe(201);
    await test.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (test.app.server.address() as { port: number }).port;

    const hasher = test.deps.hasher;
    const startedBefore = hasher.stats().started;
    // Three slow jobs hold the only thread for a while; the login will wait behind them.
    const occupying = Promise.all([1, 2, 3].map((index) => hasher.hash(`occupying ${index}`)));
    const body = JSON.stringify({ email: 'gone@example.com', password: STRONG_PASSWORD });
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {}); // the server may reset it; that is the point
    socket.write(`POST /login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    // Four jobs submitted (started or waiting): the three above and the login's verify, behind them.
    const submitted = () => hasher.stats().started - startedBefore + hasher.stats().queued;
    await vi.waitFor(() => expect(submitted()).toBe(4), { timeout: 10_000, interval: 5 });
    expect(hasher.stats().queued).toBeGreaterThanOrEqual(1); // the login still waits

    socket.destroy();
    await vi.waitFor(() => expect(hasher.stats().dropped).toBe(1), { timeout: 10_000, interval: 5 });
    await occupying;
    // Only the three occupying hashes ran: the login's verify never reached the thread.
    expect(hasher.stats()).toMatchObject({ started: startedBefore + 3, dropped: 1, queued: 0, busy: 0 });
    expect((await loginUser(test.app, 'gone@example.com')).statusCode).toBe(201);
  });

  it('gives an unknown email the same hashing work as a wrong password (verifyDummy)', async () => {
    test = await startTestApp(dialect, {}, { ownHasher: FAST_ARGON2 });
    expect((await signupUser(test.app, { email: 'known@example.com' })).statusCode).toBe(201);
    const hasher = test.deps.hasher;
    const jobsFor = async (email: string, password: string) => {
      const before = hasher.stats().started;
      expectErrorEnvelope(await loginUser(test.app, email, password), 403);
      return hasher.stats().started - before;
    };
    expect(await jobsFor('nobody@example.com', 'some wrong password')).toBe(1);
    expect(await jobsFor('known@example.com', 'some wrong password')).toBe(1);
    // A password whose NFKC form differs is checked twice (normalised, then raw): for unknown emails too.
    expect(await jobsFor('nobody@example.com', 'ｓｏｍｅ ﬁne wrong password')).toBe(2);
    expect(await jobsFor('known@example.com', 'ｓｏｍｅ ﬁne wrong password')).toBe(2);
  });
});

describe('hashing queue log', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  let lines: any[];
  let app: Awaited<ReturnType<typeof buildCheckedApp>>;
  beforeAll(async () => {
    const database = await createTestDatabase('sqlite');
    cleanups.push(() => database.drop());
    const config = loadConfig({ LOG_LEVEL: 'warn', RATE_LIMIT_PER_MINUTE: '100000', HASH_POOL_SIZE: '1', HASH_QUEUE_MAX: '1', DATABASE_URL: database.url });
    const deps = await createDeps(config, { argon2Parameters: SLOW_ARGON2 });
    cleanups.push(() => deps.close());
    lines = [];
    app = await buildCheckedApp(deps, { logStream: { write: (line) => lines.push(JSON.parse(line)) } });
    cleanups.push(() => app.close());
  });

  it('writes one warn line with the queue depth while refusing, not one per refusal', async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, index) => loginUser(app, `someone${index}@example.com`, 'a wrong password for nobody')),
    );
    const refused = answers.filter((answer) => answer.statusCode === 503);
    expect(refused.length).toBeGreaterThan(1);
    expect(answers.every((answer) => answer.statusCode === 503 || answer.statusCode === 403)).toBe(true);
    const warnings = lines.filter((line) => line.msg?.startsWith('hashing queue full'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, hashing: { threads: 1, queued: 1, rejected: 1 } });
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    expect(JSON.stringify(lines)).not.toContain('a wrong password for nobody');
  });
});
