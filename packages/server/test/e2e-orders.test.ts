import { execFileSync, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { createClient } from '../src/clients/clients.ts';
import { createDb } from '../src/storage/db.ts';
import { basicAuthorization } from './client-helpers.ts';
import { createTestDatabase, STRONG_PASSWORD, testDialects, type TestDatabase } from './helpers.ts';
import { buildService, freePort, REPO_ROOT, startService, type ServiceProcess } from './service-process.ts';

// Real processes: the built Gatehouse (dist/main.js) and examples/orders-service on plain node, talking HTTP only.
beforeAll(() => {
  buildService();
  execFileSync(process.execPath, [`${REPO_ROOT}node_modules/typescript/bin/tsc`, '-p', `${REPO_ROOT}packages/verify/tsconfig.build.json`], { stdio: 'pipe' });
}, 120_000);

interface OrdersService {
  baseUrl: string;
  output(): string;
  stop(): Promise<void>;
}

async function startOrdersService(env: Record<string, string>): Promise<OrdersService> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', fileURLToPath(new URL('./workspace-packages.mjs', import.meta.url)), `${REPO_ROOT}examples/orders-service/server.js`], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const service: OrdersService = {
    baseUrl: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = performance.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`orders-service exited: ${output}`);
    const health = (await fetch(`${service.baseUrl}/healthz`).then((response) => (response.ok ? response.json() : undefined), () => undefined)) as { revocations?: string } | undefined;
    if (health?.revocations === 'live') return service;
    if (performance.now() > deadline) {
      await service.stop();
      throw new Error(`orders-service not live within 15 s: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function call(baseUrl: string, method: string, path: string, options: { token?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${baseUrl}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: text ? JSON.parse(text) : undefined };
}

describe.each(testDialects())('Gatehouse and examples/orders-service as processes [%s]', (dialect) => {
  let database: TestDatabase;
  let gatehouse: ServiceProcess | undefined;
  let orders: OrdersService | undefined;
  let billingSecret: string;
  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    gatehouse = await startService({ DATABASE_URL: database.url, PASSWORD_MIN_LENGTH: '6', PASSWORD_BREACHED_CHECK: 'false' });
    // The confidential client `gatehouse clients create` would make, written through the clients core.
    const db = await createDb(database.url);
    const { secret } = await createClient({ db: db.kysely, clock: systemClock }, { id: 'orders-service', name: 'Orders service', type: 'confidential' });
    // A second service that calls the orders service with its own client_credentials token.
    billingSecret = (await createClient({ db: db.kysely, clock: systemClock }, { id: 'billing-service', name: 'Billing', type: 'confidential', scopes: ['orders:stats'] })).secret!;
    await db.close();
    // Gatehouse's issuer defaults to its own address, with loopback named localhost.
    orders = await startOrdersService({
      GATEHOUSE_URL: `http://localhost:${new URL(gatehouse.baseUrl).port}`,
      GATEHOUSE_CLIENT_ID: 'orders-service',
      GATEHOUSE_CLIENT_SECRET: secret!,
    });
  }, 60_000);
  afterAll(async () => {
    await orders?.stop();
    await gatehouse?.stop();
    await database?.drop();
  }, 30_000);

  it('sign up and log in at Gatehouse, use the orders service, log out: the service refuses the token within a second', async () => {
    const gatehouseUrl = gatehouse!.baseUrl;
    const ordersUrl = orders!.baseUrl;
    expect((await call(gatehouseUrl, 'POST', '/signup', { body: { name: 'Ada', email: 'ada@example.com', password: STRONG_PASSWORD } })).status).toBe(201);
    const login = await call(gatehouseUrl, 'POST', '/login', { body: { email: 'ada@example.com', password: STRONG_PASSWORD } });
    expect(login.status).toBe(201);
    const token = login.body.token as string;

    expect(await call(ordersUrl, 'GET', '/orders', { token })).toEqual({ status: 200, challenge: null, body: { orders: [] } });
    const placed = await call(ordersUrl, 'POST', '/orders', { token, body: { item: 'notebook', quantity: 2 } });
    expect(placed.status).toBe(201);
    expect((await call(ordersUrl, 'GET', '/orders', { token })).body.orders).toEqual([placed.body.order]);
    // Not an admin, not a service.
    expect((await call(ordersUrl, 'DELETE', `/orders/${placed.body.order.id}`, { token })).status).toBe(403);
    expect((await call(ordersUrl, 'GET', '/internal/stats', { token })).status).toBe(403);
    expect((await call(ordersUrl, 'GET', '/orders')).challenge).toBe('Bearer realm="orders"');

    const loggedOutAt = performance.now();
    expect((await call(gatehouseUrl, 'POST', '/logout', { token })).status).toBe(200);
    let refused: Awaited<ReturnType<typeof call>> | undefined;
    while (!refused) {
      const answer = await call(ordersUrl, 'GET', '/orders', { token });
      if (answer.status === 401) refused = answer;
      else if (performance.now() - loggedOutAt > 5000) throw new Error(`the orders service still accepts the token 5 s after the logout\n${orders!.output()}`);
    }
    const delayMs = performance.now() - loggedOutAt;
    console.log(`e2e (${dialect}): the orders service refused the logged-out token ${delayMs.toFixed(0)} ms after the logout request`);
    expect(refused.challenge).toBe('Bearer realm="orders", error="invalid_token", error_description="the access token has been revoked"');
    expect(delayMs).toBeLessThan(1000);
    expect(orders!.output()).not.toContain(token);
  });

  it('a service calls the orders service with a client_credentials token from Gatehouse; a user token is no use there', async () => {
    const grant = await fetch(`${gatehouse!.baseUrl}/oauth/token`, {
      method: 'POST',
      headers: { authorization: basicAuthorization('billing-service', billingSecret), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(grant.status).toBe(200);
    const { access_token: serviceToken, scope } = (await grant.json()) as { access_token: string; scope: string };
    expect(scope).toBe('orders:stats');
    const stats = await call(orders!.baseUrl, 'GET', '/internal/stats', { token: serviceToken });
    expect(stats.status).toBe(200);
    expect(stats.body.askedBy).toBe('billing-service');
    // A service token is not a user: the user routes refuse it.
    expect((await call(orders!.baseUrl, 'GET', '/orders', { token: serviceToken })).status).toBe(403);
  });

  it("Gatehouse stops at once on SIGTERM though the service's long poll waits on it; the service keeps verifying", async () => {
    const gatehouseUrl = gatehouse!.baseUrl;
    await call(gatehouseUrl, 'POST', '/signup', { body: { name: 'Grace', email: 'grace@example.com', password: STRONG_PASSWORD } });
    const token = (await call(gatehouseUrl, 'POST', '/login', { body: { email: 'grace@example.com', password: STRONG_PASSWORD } })).body.token as string;
    expect((await call(orders!.baseUrl, 'GET', '/orders', { token })).status).toBe(200);
    const stoppingAt = performance.now();
    await gatehouse!.stop();
    const stopMs = performance.now() - stoppingAt;
    console.log(`e2e (${dialect}): Gatehouse exited ${stopMs.toFixed(0)} ms after SIGTERM with the feed's long poll open`);
    expect(stopMs).toBeLessThan(3000);
    // Verified locally: Gatehouse being away does not take the orders service down.
    expect((await call(orders!.baseUrl, 'GET', '/orders', { token })).status).toBe(200);
  });
});
