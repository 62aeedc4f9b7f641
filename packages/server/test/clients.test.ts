import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  authenticateClient,
  createClient,
  deleteClient,
  DEFAULT_CLIENT_ID,
  findActiveClient,
  mayRequestAudience,
  parseBasicCredentials,
  rotateClientSecret,
  setClientDisabled,
} from '../src/clients/clients.ts';
import { isAppError } from '../src/errors.ts';
import { startTestApp, testDialects, type TestApp } from './helpers.ts';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function refused(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isAppError(error)) return error.code;
    throw error;
  }
  return 'accepted';
}

describe('parseBasicCredentials (RFC 6749 section 2.3.1)', () => {
  it('form-urldecodes the id and the secret after splitting on the first colon', () => {
    const header = `Basic ${Buffer.from('my.client:se%3Acret+x').toString('base64')}`;
    expect(parseBasicCredentials(header)).toEqual({ clientId: 'my.client', secret: 'se:cret x' });
  });

  it.each([
    ['no header', undefined],
    ['another scheme', 'Bearer abc'],
    ['not base64', 'Basic !!!!'],
    ['no colon', `Basic ${Buffer.from('client').toString('base64')}`],
    ['empty id', `Basic ${Buffer.from(':secret').toString('base64')}`],
    ['empty secret', `Basic ${Buffer.from('client:').toString('base64')}`],
    ['bad percent-encoding', `Basic ${Buffer.from('client:%E0%A4%A').toString('base64')}`],
    ['oversized', `Basic ${'A'.repeat(2000)}`],
  ])('refuses %s', (_name, header) => {
    expect(parseBasicCredentials(header)).toBeUndefined();
  });
});

describe.each(testDialects())('clients [%s]', (dialect) => {
  let test: TestApp;
  beforeEach(async () => {
    test = await startTestApp(dialect);
  });
  afterEach(async () => {
    await test.close();
  });

  it('starts with the default public client, which cannot be deleted', async () => {
    const client = await findActiveClient(test.deps.db, DEFAULT_CLIENT_ID);
    expect(client).toMatchObject({ id: 'gatehouse', type: 'public', audiences: [], scopes: [] });
    expect(await refused(deleteClient(test.deps, DEFAULT_CLIENT_ID))).toBe('invalid_input');
  });

  it('authenticates a confidential client by its secret, stored only as a hash', async () => {
    const { client, secret } = await createClient(test.deps, { id: 'orders-api', name: 'Orders', type: 'confidential', audiences: ['https://orders.example'], scopes: ['orders:read'] });
    expect(secret).toMatch(/^ghcs_[A-Za-z0-9_-]{43}$/);
    expect(client).toMatchObject({ id: 'orders-api', type: 'confidential', audiences: ['https://orders.example'], scopes: ['orders:read'] });
    const row = await test.deps.db.selectFrom('clients').selectAll().where('id', '=', 'orders-api').executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(secret!);

    expect((await authenticateClient(test.deps, basic('orders-api', secret!))).id).toBe('orders-api');
    const wrong = `${secret!.slice(0, -1)}${secret!.endsWith('A') ? 'B' : 'A'}`;
    expect(await refused(authenticateClient(test.deps, basic('orders-api', wrong)))).toBe('client_invalid');
    expect(await refused(authenticateClient(test.deps, basic('billing-api', secret!)))).toBe('client_invalid');
    expect(await refused(authenticateClient(test.deps, undefined))).toBe('client_invalid');
    expect(mayRequestAudience(client, 'https://orders.example', 'gatehouse')).toBe(true);
    expect(mayRequestAudience(client, 'gatehouse', 'gatehouse')).toBe(true);
    expect(mayRequestAudience(client, 'https://billing.example', 'gatehouse')).toBe(false);
  });

  it('refuses a public client and a disabled one the same way', async () => {
    const { secret } = await createClient(test.deps, { id: 'svc-a', name: 'A', type: 'confidential' });
    await createClient(test.deps, { id: 'spa', name: 'SPA', type: 'public' });
    expect(await refused(authenticateClient(test.deps, basic('spa', secret!)))).toBe('client_invalid');
    await setClientDisabled(test.deps, 'svc-a', true);
    expect(await refused(authenticateClient(test.deps, basic('svc-a', secret!)))).toBe('client_invalid');
    expect(await findActiveClient(test.deps.db, 'svc-a')).toBeUndefined();
    await setClientDisabled(test.deps, 'svc-a', false);
    expect((await authenticateClient(test.deps, basic('svc-a', secret!))).id).toBe('svc-a');
  });

  it('keeps the old secret working only for the rotation grace', async () => {
    const { secret: first } = await createClient(test.deps, { id: 'svc-b', name: 'B', type: 'confidential' });
    const second = await rotateClientSecret(test.deps, 'svc-b', 3600);
    expect(second).not.toBe(first);
    expect((await authenticateClient(test.deps, basic('svc-b', first!))).id).toBe('svc-b');
    expect((await authenticateClient(test.deps, basic('svc-b', second))).id).toBe('svc-b');
    test.clock.advanceSeconds(3600);
    expect(await refused(authenticateClient(test.deps, basic('svc-b', first!)))).toBe('client_invalid');
    expect((await authenticateClient(test.deps, basic('svc-b', second))).id).toBe('svc-b');

    // No grace (a leaked secret): the old one is refused at once.
    const third = await rotateClientSecret(test.deps, 'svc-b', 0);
    expect(await refused(authenticateClient(test.deps, basic('svc-b', second)))).toBe('client_invalid');
    expect((await authenticateClient(test.deps, basic('svc-b', third))).id).toBe('svc-b');
  });

  it('validates new clients and refuses a taken id', async () => {
    expect(await refused(createClient(test.deps, { id: '12345', name: 'digits', type: 'public' }))).toBe('invalid_input');
    expect(await refused(createClient(test.deps, { id: 'Upper', name: 'x', type: 'public' }))).toBe('invalid_input');
    expect(await refused(createClient(test.deps, { id: 'spa', name: 'x', type: 'public', scopes: ['a'] }))).toBe('invalid_input');
    expect(await refused(createClient(test.deps, { id: 'svc', name: 'x', type: 'confidential', scopes: ['has space'] }))).toBe('invalid_input');
    await createClient(test.deps, { id: 'svc', name: 'x', type: 'confidential' });
    expect(await refused(createClient(test.deps, { id: 'svc', name: 'y', type: 'public' }))).toBe('invalid_input');
    expect(await deleteClient(test.deps, 'svc')).toBe(true);
    expect(await deleteClient(test.deps, 'svc')).toBe(false);
  });
});
