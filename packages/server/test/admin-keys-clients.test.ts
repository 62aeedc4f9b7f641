import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, DEFAULT_CLIENT_ID } from '../src/clients/clients.ts';
import { KEY_ACTIVATION_DELAY_SECONDS } from '../src/keys/rotation.ts';
import { expectErrorEnvelope, json, signedInAdmin, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

describe.each(testDialects())('admin API: signing keys and clients [%s]', (dialect) => {
  let test: TestApp;
  let admin: { id: number; token: string };
  let asAdmin: { authorization: string };
  beforeEach(async () => {
    test = await startTestApp(dialect);
    admin = await signedInAdmin(test, `admin-${dialect}@example.com`);
    asAdmin = { authorization: `Bearer ${admin.token}` };
  });
  afterEach(async () => {
    await test.close();
  });

  const auditRows = async (action: string) => {
    await test.deps.audit.flush();
    return test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('id').execute();
  };

  it('refuses every route to anonymous callers (401) and to non-admins (403 admin_required)', async () => {
    const user = await signedInUser(test.app, `user-${dialect}@example.com`);
    const routes = [
      { method: 'GET' as const, url: '/keys' },
      { method: 'POST' as const, url: '/keys/rotate', payload: {} },
      { method: 'GET' as const, url: '/clients' },
      { method: 'PATCH' as const, url: `/clients/${DEFAULT_CLIENT_ID}`, payload: { disabled: false } },
    ];
    for (const route of routes) {
      expectErrorEnvelope(await test.app.inject(route), 401, 'auth failed - token is missing');
      expectErrorEnvelope(await test.app.inject({ ...route, headers: { authorization: `Bearer ${user.token}` } }), 403, 'forbidden - admin role required');
    }
    // Nothing rotated by the refused attempts.
    expect(json(await test.app.inject({ method: 'GET', url: '/keys', headers: asAdmin })).data.keys).toHaveLength(1);
  });

  it('lists the signing key, rotates with the activation delay, and lists both with their states', async () => {
    const listed = await test.app.inject({ method: 'GET', url: '/keys', headers: asAdmin });
    expect(listed.statusCode).toBe(200);
    const [original] = json(listed).data.keys;
    expect(original).toMatchObject({ algorithm: 'EdDSA', state: 'active', retired_at: null, expires_at: null });
    expect(JSON.stringify(json(listed))).not.toMatch(/"d"|private/i);

    const rotated = await test.app.inject({ method: 'POST', url: '/keys/rotate', headers: asAdmin, payload: {} });
    expect(rotated.statusCode).toBe(200);
    const body = json(rotated);
    expect(body.message).toBe('key rotated');
    const now = test.clock.nowSeconds();
    expect(body.data.activates_at).toBe(new Date((now + KEY_ACTIVATION_DELAY_SECONDS) * 1000).toISOString());
    expect(body.data.kid).not.toBe(original.kid);

    const keys = json(await test.app.inject({ method: 'GET', url: '/keys', headers: asAdmin })).data.keys;
    expect(keys.map((key: { kid: string; state: string }) => [key.kid, key.state])).toEqual([
      [body.data.kid, 'pending'],
      [original.kid, 'active'],
    ]);
    // The new key is in the JWKS at once; tokens are still signed with the old one until activation.
    const jwks = json(await test.app.inject({ method: 'GET', url: '/.well-known/jwks.json' }));
    expect(jwks.keys.map((key: { kid: string }) => key.kid)).toContain(body.data.kid);

    const [event] = await auditRows('key.rotate');
    expect(event).toMatchObject({ actor_type: 'user', actor_id: String(admin.id), subject_type: 'key', subject_id: body.data.kid, outcome: 'success' });
    expect(JSON.parse(event!.details!)).toMatchObject({ immediately: false, replaces: [original.kid] });
    expect(event!.details).not.toMatch(/private|"d"/);

    // Once activated, the old key is retired and the new one active.
    test.clock.advanceSeconds(KEY_ACTIVATION_DELAY_SECONDS);
    const later = json(await test.app.inject({ method: 'GET', url: '/keys', headers: asAdmin })).data.keys;
    expect(later.map((key: { state: string }) => key.state)).toEqual(['active', 'retired']);
    expect(later[1].expires_at).not.toBeNull();
  });

  it('refuses a second rotation while one is pending (400, nothing added), unless now: true', async () => {
    expect((await test.app.inject({ method: 'POST', url: '/keys/rotate', headers: asAdmin, payload: {} })).statusCode).toBe(200);
    const again = expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/keys/rotate', headers: asAdmin, payload: {} }), 400);
    expect(again.message).toMatch(/a rotation is already pending.*now: true/);
    expect(json(await test.app.inject({ method: 'GET', url: '/keys', headers: asAdmin })).data.keys).toHaveLength(2);

    const immediate = await test.app.inject({ method: 'POST', url: '/keys/rotate', headers: asAdmin, payload: { now: true } });
    expect(immediate.statusCode).toBe(200);
    expect(json(immediate).data.activates_at).toBe(test.clock.now().toISOString());
    // The immediate key signs the next login's token.
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: `admin-${dialect}@example.com`, password: 'correct horse battery staple' } });
    const header = JSON.parse(Buffer.from(json(login).token.split('.')[0], 'base64url').toString());
    expect(header.kid).toBe(json(immediate).data.kid);
    expect(await auditRows('key.rotate')).toHaveLength(2);
  });

  it('refuses bad rotate bodies with a 400 envelope', async () => {
    for (const payload of [{ now: 'yes' }, { immediately: true }, []]) {
      expectErrorEnvelope(await test.app.inject({ method: 'POST', url: '/keys/rotate', headers: asAdmin, payload }), 400);
    }
    expect(json(await test.app.inject({ method: 'GET', url: '/keys', headers: asAdmin })).data.keys).toHaveLength(1);
  });

  it('lists clients without secrets', async () => {
    const { secret } = await createClient(test.deps, { id: 'orders-api', name: 'Orders', type: 'confidential', audiences: ['https://orders.example'], scopes: ['orders:read'] });
    const response = await test.app.inject({ method: 'GET', url: '/clients', headers: asAdmin });
    expect(response.statusCode).toBe(200);
    expect(response.body).not.toContain(secret!);
    expect(response.body).not.toMatch(/secret/i);
    const clients = json(response).data.clients;
    expect(clients).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: DEFAULT_CLIENT_ID, type: 'public', disabled: false }),
        {
          id: 'orders-api',
          name: 'Orders',
          type: 'confidential',
          audiences: ['https://orders.example'],
          scopes: ['orders:read'],
          disabled: false,
          created_at: test.clock.now().toISOString(),
          updated_at: test.clock.now().toISOString(),
        },
      ]),
    );
  });

  it('disables a client (its sessions revoked for good, audited before/after) and enables it again', async () => {
    await createClient(test.deps, { id: 'web-app', name: 'Web', type: 'public' });
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: { email: `admin-${dialect}@example.com`, password: 'correct horse battery staple', client_id: 'web-app' } });
    expect(login.statusCode).toBe(201);
    const webToken = json(login).token as string;
    expect((await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${webToken}` } })).statusCode).toBe(200);

    test.clock.advanceSeconds(5);
    const disabled = await test.app.inject({ method: 'PATCH', url: '/clients/web-app', headers: asAdmin, payload: { disabled: true } });
    expect(disabled.statusCode).toBe(200);
    expect(json(disabled)).toMatchObject({ status: true, code: 200, message: 'client updated', data: { id: 'web-app', disabled: true, updated_at: test.clock.now().toISOString() } });
    // Its session's access token is refused at once; a new login through it is refused.
    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${webToken}` } }), 401, 'auth failed - token has been revoked');
    const refused = await test.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: json(login).refresh_token } });
    expect(refused.statusCode).toBe(401);
    // The admin's own session (default client) is untouched.
    expect((await test.app.inject({ method: 'GET', url: '/clients', headers: asAdmin })).statusCode).toBe(200);

    const [disableEvent] = await auditRows('client.disable');
    expect(disableEvent).toMatchObject({ actor_type: 'user', actor_id: String(admin.id), subject_type: 'client', subject_id: 'web-app' });
    expect(JSON.parse(disableEvent!.details!)).toEqual({ before: { disabled: false }, after: { disabled: true }, revoked_sessions: 1 });

    const enabled = await test.app.inject({ method: 'PATCH', url: '/clients/web-app', headers: asAdmin, payload: { disabled: false } });
    expect(json(enabled).data.disabled).toBe(false);
    // Enabling does not bring the old session back.
    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${webToken}` } }), 401);
    const [enableEvent] = await auditRows('client.enable');
    expect(JSON.parse(enableEvent!.details!)).toEqual({ before: { disabled: true }, after: { disabled: false } });

    // No change, no event.
    expect((await test.app.inject({ method: 'PATCH', url: '/clients/web-app', headers: asAdmin, payload: { disabled: false } })).statusCode).toBe(200);
    expect(await auditRows('client.enable')).toHaveLength(1);
  });

  it('refuses to disable the default client, unknown clients and bad bodies, changing nothing', async () => {
    const refused = expectErrorEnvelope(await test.app.inject({ method: 'PATCH', url: `/clients/${DEFAULT_CLIENT_ID}`, headers: asAdmin, payload: { disabled: true } }), 400);
    expect(refused.message).toMatch(/default client "gatehouse" cannot be disabled/);
    expectErrorEnvelope(await test.app.inject({ method: 'PATCH', url: '/clients/no-such-client', headers: asAdmin, payload: { disabled: true } }), 404, 'client not found');
    expectErrorEnvelope(await test.app.inject({ method: 'PATCH', url: '/clients/12345', headers: asAdmin, payload: { disabled: true } }), 404, 'client not found');
    expectErrorEnvelope(await test.app.inject({ method: 'PATCH', url: `/clients/${'x'.repeat(65)}`, headers: asAdmin, payload: { disabled: true } }), 400);
    for (const payload of [{}, { disabled: 'true' }, { disabled: true, name: 'renamed' }, { name: 'renamed' }]) {
      expectErrorEnvelope(await test.app.inject({ method: 'PATCH', url: `/clients/${DEFAULT_CLIENT_ID}`, headers: asAdmin, payload }), 400);
    }
    const clients = json(await test.app.inject({ method: 'GET', url: '/clients', headers: asAdmin })).data.clients;
    expect(clients).toEqual([expect.objectContaining({ id: DEFAULT_CLIENT_ID, disabled: false, name: expect.not.stringMatching(/renamed/) })]);
    // The admin can still sign in through the default client.
    expect((await test.app.inject({ method: 'POST', url: '/login', payload: { email: `admin-${dialect}@example.com`, password: 'correct horse battery staple' } })).statusCode).toBe(201);
    expect(await auditRows('client.disable')).toHaveLength(0);
  });
});
