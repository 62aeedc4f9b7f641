import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createDeps, type Deps } from '../src/deps.ts';
import { startCuttableProxy, viaProxy, type CuttableProxy } from './db-proxy.ts';
import { buildCheckedApp, createTestDatabase, fastHasher, json, loginUser, signupUser, type TestDatabase } from './helpers.ts';
import { buildService, freePort, REPO_ROOT } from './service-process.ts';

const POSTGRES_URL = process.env.TEST_DATABASE_URL;
const CONNECT_TIMEOUT_MS = 300;
const QUERY_TIMEOUT_MS = 600;
/** Every answer, even one caught by the cut, within the bounds plus this (event loop, hashing, pool queue). */
const SLACK_MS = 1500;
const ALLOWED_STATUSES = [200, 201, 503];

interface Answer {
  kind: 'signup' | 'login' | 'me';
  email: string;
  status: number;
  elapsedMs: number;
  body: string;
}

describe.skipIf(!POSTGRES_URL)('PostgreSQL cut behind a proxy while serving traffic', () => {
  const password = randomBytes(12).toString('hex');
  const clock = fixedClock(new Date('2026-06-01T12:00:00Z'));
  let database: TestDatabase;
  let proxy: CuttableProxy;
  let deps: Deps;
  let app: FastifyInstance;
  const known: Array<{ email: string; token: string }> = [];
  const answers: Answer[] = [];
  let sequence = 0;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    const target = new URL(POSTGRES_URL!);
    proxy = await startCuttableProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const config = loadConfig({
      LOG_LEVEL: 'silent',
      RATE_LIMIT_PER_MINUTE: '1000000',
      DATABASE_URL: viaProxy(database.url, proxy),
      DB_CONNECT_TIMEOUT: `${CONNECT_TIMEOUT_MS}ms`,
      DB_QUERY_TIMEOUT: `${QUERY_TIMEOUT_MS}ms`,
    });
    deps = await createDeps(config, { clock, hasher: fastHasher });
    app = await buildCheckedApp(deps, { logger: false });
    await app.ready();
    for (let index = 0; index < 4; index++) {
      const email = `known-${index}@example.com`;
      expect((await signupUser(app, { email, password })).statusCode).toBe(201);
      const login = await loginUser(app, email, password);
      expect(login.statusCode).toBe(201);
      known.push({ email, token: json(login).token });
    }
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await deps?.close();
    await proxy?.close();
    await database?.drop();
  });

  async function timed(kind: Answer['kind'], email: string, request: () => Promise<LightMyRequestResponse>): Promise<Answer> {
    const started = performance.now();
    const response = await request();
    const answer = { kind, email, status: response.statusCode, elapsedMs: performance.now() - started, body: response.body };
    answers.push(answer);
    return answer;
  }

  /** One request of each kind, round robin, from `clients` concurrent clients until `stop()` says so. */
  function traffic(clients: number): { stop(): Promise<void> } {
    let stopping = false;
    const loops = Array.from({ length: clients }, async (_, client) => {
      for (let turn = client; !stopping; turn++) {
        const user = known[turn % known.length]!;
        if (turn % 3 === 0) {
          const email = `traffic-${sequence++}@example.com`;
          await timed('signup', email, () => signupUser(app, { email, password }));
        } else if (turn % 3 === 1) {
          await timed('login', user.email, () => loginUser(app, user.email, password));
        } else {
          await timed('me', user.email, () => app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${user.token}` } }));
        }
      }
    });
    return {
      async stop() {
        stopping = true;
        await Promise.all(loops);
      },
    };
  }

  const readiness = async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    return { status: response.statusCode, body: json(response) };
  };

  /** Waits for real time to pass while traffic runs (the outage's length, not an expiry). */
  const during = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

  async function expectRecovery(): Promise<void> {
    // The status cache waits a second before asking a database that failed again: that is time passing.
    clock.advanceSeconds(2);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const email = `after-${sequence++}@example.com`;
      const signup = await timed('signup', email, () => signupUser(app, { email, password }));
      const login = await timed('login', known[0]!.email, () => loginUser(app, known[0]!.email, password));
      const me = await timed('me', known[1]!.email, () => app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${known[1]!.token}` } }));
      if (signup.status === 201 && login.status === 201 && me.status === 200) break;
      if (Date.now() > deadline) throw new Error(`no recovery: ${signup.status} ${login.status} ${me.status}`);
    }
    expect(await readiness()).toEqual({ status: 200, body: { status: true, code: 200, message: 'ready', data: { database: 'up' } } });
  }

  function expectOnlyAllowedAnswers(since: number, outage: string): Answer[] {
    const seen = answers.slice(since);
    for (const answer of seen) {
      expect(ALLOWED_STATUSES, `${outage}: ${answer.kind} ${answer.status} ${answer.body}`).toContain(answer.status);
      if (answer.status === 503) expect(JSON.parse(answer.body)).toEqual({ status: false, code: 503, message: 'service unavailable', data: null });
      expect(answer.elapsedMs, `${outage}: ${answer.kind} took ${answer.elapsedMs} ms`).toBeLessThan(CONNECT_TIMEOUT_MS + QUERY_TIMEOUT_MS + SLACK_MS);
    }
    const unavailable = seen.filter((answer) => answer.status === 503);
    const slowest = Math.max(...seen.map((answer) => answer.elapsedMs));
    console.info(`${outage}: ${seen.length} answers, ${unavailable.length} × 503, slowest ${slowest.toFixed(0)} ms`);
    return unavailable;
  }

  it.each([
    ['refused (connections reset, listener closed)', (p: CuttableProxy) => p.refuse()],
    ['silent (nothing forwarded: only the timeouts end a request)', (p: CuttableProxy) => p.blackhole()],
  ])('answers 2xx or a quick 503 envelope while the database is %s, /readyz names it, and recovers without restart', async (outage, cut) => {
    const since = answers.length;
    const load = traffic(6);
    await during(300);
    await cut(proxy);
    await during(Math.max(1500, CONNECT_TIMEOUT_MS + QUERY_TIMEOUT_MS + 300));
    const ready = await readiness();
    await load.stop();
    expect(ready).toEqual({ status: 503, body: { status: false, code: 503, message: 'not ready', data: { database: 'down' } } });

    await proxy.restore();
    await expectRecovery();
    const unavailable = expectOnlyAllowedAnswers(since, outage);
    expect(unavailable.length).toBeGreaterThan(0);
  }, 40_000);

  it('lets every acknowledged signup log in afterwards', async () => {
    const acknowledged = answers.filter((answer) => answer.kind === 'signup' && answer.status === 201);
    expect(acknowledged.length).toBeGreaterThan(2);
    const logins = await Promise.all(acknowledged.map((answer) => loginUser(app, answer.email, password)));
    expect(logins.map((login) => login.statusCode)).toEqual(acknowledged.map(() => 201));
  });
});

describe.skipIf(!POSTGRES_URL)('start-up while PostgreSQL is unreachable', () => {
  let database: TestDatabase;
  let proxy: CuttableProxy;
  const children: Array<ReturnType<typeof spawn>> = [];

  beforeAll(async () => {
    buildService();
    database = await createTestDatabase('postgres');
    const target = new URL(POSTGRES_URL!);
    proxy = await startCuttableProxy({ host: target.hostname, port: Number(target.port || 5432) }, { startRefusing: true });
  }, 60_000);
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await proxy?.close();
    await database?.drop();
  });

  /** The built service, spawned by hand: startService would wait for it to listen, which is what is under test. */
  function spawnService(databaseUrl: string, port: number) {
    const child = spawn(process.execPath, [`${REPO_ROOT}dist/main.js`], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', DATABASE_URL: databaseUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    return { child, output: () => output, exited };
  }

  async function until(deadlineMs: number, check: () => boolean | Promise<boolean>, describe: () => string): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    while (!(await Promise.resolve().then(check).catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`not true within ${deadlineMs} ms: ${describe()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('logs where it is looking, retries with back-off, and serves once the database answers', async () => {
    const secret = `pw-${randomBytes(6).toString('hex')}`;
    const url = new URL(viaProxy(database.url, proxy));
    url.password = secret;
    const port = await freePort(); // from the kernel: a random one may be a connection's ephemeral port
    const service = spawnService(url.toString(), port);
    const retryLines = () => service.output().split('\n').filter((line) => line.includes('database unreachable at'));
    // Attempts at 0, 1 s and 3 s: two waits logged, the second twice as long, and still no crash.
    await until(10_000, () => retryLines().length >= 2, service.output);
    expect(service.child.exitCode).toBeNull();
    expect(retryLines()[0]).toContain(`database unreachable at 127.0.0.1:${proxy.port}/test (ECONNREFUSED); retrying in 1 s`);
    expect(retryLines()[1]).toContain('retrying in 2 s');

    await proxy.restore();
    await until(15_000, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, service.output);
    const signup = await fetch(`http://127.0.0.1:${port}/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Late Starter', email: 'late@example.com', password: randomBytes(12).toString('hex') }),
    });
    expect(signup.status).toBe(201);
    expect(service.output()).not.toContain(secret);
    service.child.kill('SIGTERM');
    expect((await service.exited).code).toBe(0);
  }, 40_000);

  it('stops at once on SIGTERM while waiting for the database', async () => {
    await proxy.refuse();
    const port = await freePort(); // from the kernel: a random one may be a connection's ephemeral port
    const service = spawnService(viaProxy(database.url, proxy), port);
    await until(10_000, () => service.output().includes('database unreachable at'), service.output);
    const started = Date.now();
    service.child.kill('SIGTERM');
    await service.exited;
    expect(Date.now() - started).toBeLessThan(2000);
  }, 20_000);
});
