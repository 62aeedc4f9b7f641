import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createDeps } from '../src/deps.ts';
import { ENCRYPTION_SCHEME, decryptSecret } from '../src/keys/encryption.ts';
import { json, openTestApp, signedInUser, startTestApp, testDialects, type TestApp, type TestDatabase } from './helpers.ts';

const run = promisify(execFile);
const FIRST_SECRET = 'the-first-key-encryption-secret-0123456789';
const SECOND_SECRET = 'the-second-key-encryption-secret-9876543210';
// Created at the first start, ordered by name: refresh-token children, recovery-code hashes, WebAuthn user handles.
const SERVER_SECRET_NAMES = ['recovery_code_hmac', 'refresh-token-derivation', 'webauthn_user_handle'];

function refresh(app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: refreshToken } });
}

function getMe(app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
}

/** Stops an instance without dropping its database (the next instance opens it). */
async function stop(test: TestApp): Promise<void> {
  await test.app.close();
  await test.deps.close();
}

async function readRows(test: TestApp) {
  return {
    keys: await test.deps.db.selectFrom('signing_keys').selectAll().orderBy('kid').execute(),
    secrets: await test.deps.db.selectFrom('server_secrets').selectAll().orderBy('name').execute(),
  };
}

type Rows = Awaited<ReturnType<typeof readRows>>;

/** Every private part decrypts under `secret` (and only then), to the given plaintexts when known. */
function expectAllUnder(rows: Rows, secret: string, plaintexts?: Map<string, string>) {
  for (const key of rows.keys) {
    expect(key.private_key_encryption).toBe(ENCRYPTION_SCHEME);
    expect(key.private_jwk).not.toMatch(/"d"\s*:/);
    const plaintext = decryptSecret(key.private_jwk, secret, 'signing-key');
    expect(JSON.parse(plaintext)).toHaveProperty('d');
    if (plaintexts) expect(plaintext).toBe(plaintexts.get(key.kid));
  }
  for (const stored of rows.secrets) {
    expect(stored.encryption).toBe(ENCRYPTION_SCHEME);
    const plaintext = decryptSecret(stored.value, secret, stored.name);
    if (plaintexts) expect(plaintext).toBe(plaintexts.get(stored.name));
  }
}

function expectNoneUnder(rows: Rows, secret: string) {
  for (const key of rows.keys) expect(() => decryptSecret(key.private_jwk, secret, 'signing-key')).toThrow();
  for (const stored of rows.secrets) expect(() => decryptSecret(stored.value, secret, stored.name)).toThrow();
}

describe.each(testDialects())('keys and secrets encrypted at rest [%s]', (dialect) => {
  let database: TestDatabase | undefined;
  const running: TestApp[] = [];
  afterEach(async () => {
    for (const test of running.splice(0)) await stop(test).catch(() => {});
    await database?.drop();
    database = undefined;
  });
  async function open(env: Record<string, string>, from?: TestApp): Promise<TestApp> {
    const test = from ? await openTestApp(from.database, env, from.clock) : await startTestApp(dialect, env);
    database = test.database;
    running.push(test);
    return test;
  }
  async function close(test: TestApp): Promise<void> {
    running.splice(running.indexOf(test), 1);
    await stop(test);
  }
  const cli = (env: Record<string, string>, ...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', ...args], {
      env: { ...process.env, DATABASE_URL: database!.url, LOG_LEVEL: 'silent', ...env },
    });

  it('turning KEY_ENCRYPTION_SECRET on encrypts existing keys (retired too) and the server secret in place; earlier tokens keep working', async () => {
    const plain = await open({});
    const user = await signedInUser(plain.app, 'before@example.com');
    await plain.deps.keys.rotate(); // a retired key too: its private part must not stay in plaintext either
    const child = json(await refresh(plain.app, user.refreshToken));
    const before = await readRows(plain);
    expect(before.keys).toHaveLength(2);
    for (const row of [...before.keys.map((key) => key.private_key_encryption), ...before.secrets.map((secret) => secret.encryption)]) {
      expect(row).toBeNull();
    }
    const plaintexts = new Map([...before.keys.map((key) => [key.kid, key.private_jwk] as const), ...before.secrets.map((s) => [s.name, s.value] as const)]);
    await close(plain);

    const encrypted = await open({ KEY_ENCRYPTION_SECRET: FIRST_SECRET }, plain);
    const after = await readRows(encrypted);
    expect(after.keys.map((key) => key.kid)).toEqual(before.keys.map((key) => key.kid));
    expect(after.secrets.map((secret) => secret.name)).toEqual(SERVER_SECRET_NAMES);
    expectAllUnder(after, FIRST_SECRET, plaintexts);

    // Signed before, by the key now retired: still verifies.
    expect((await getMe(encrypted.app, user.token)).statusCode).toBe(200);
    expect((await getMe(encrypted.app, child.token)).statusCode).toBe(200);
    // A retry of the spent token within the grace re-derives the same child: the derivation secret is unchanged.
    encrypted.clock.advanceSeconds(5);
    const retried = await refresh(encrypted.app, user.refreshToken);
    expect(retried.statusCode, retried.body).toBe(201);
    expect(json(retried).refresh_token).toBe(child.refresh_token);
    expect((await refresh(encrypted.app, child.refresh_token)).statusCode).toBe(201);
  });

  it('rotates KEY_ENCRYPTION_SECRET: served under both while rotating, `keys reencrypt` moves everything to the new one', async () => {
    const first = await open({ KEY_ENCRYPTION_SECRET: FIRST_SECRET });
    const user = await signedInUser(first.app, 'rotating@example.com');
    const child = json(await refresh(first.app, user.refreshToken));
    await close(first);

    // Step 1: the new secret, the old one as PREVIOUS; records are still under the old one, and the service works.
    const both = { KEY_ENCRYPTION_SECRET: SECOND_SECRET, KEY_ENCRYPTION_SECRET_PREVIOUS: FIRST_SECRET };
    const during = await open(both, first);
    expect((await getMe(during.app, user.token)).statusCode).toBe(200);
    expect((await signedInUser(during.app, 'during@example.com')).token).toBeTruthy();
    expectAllUnder(await readRows(during), FIRST_SECRET);
    await close(during);

    // Step 2: the command.
    const result = await cli(both, 'keys', 'reencrypt');
    expect(result.stdout).toBe(
      're-encrypted under KEY_ENCRYPTION_SECRET: 1 signing keys, 3 server secrets, 0 TOTP secrets ' +
        '(were plaintext: 0, under KEY_ENCRYPTION_SECRET_PREVIOUS: 4, already under KEY_ENCRYPTION_SECRET: 0)\n',
    );
    for (const output of [result.stdout, result.stderr]) {
      expect(output).not.toContain(FIRST_SECRET);
      expect(output).not.toContain(SECOND_SECRET);
    }

    // Step 3: only the new secret.
    const after = await open({ KEY_ENCRYPTION_SECRET: SECOND_SECRET }, first);
    const rows = await readRows(after);
    expectAllUnder(rows, SECOND_SECRET);
    expectNoneUnder(rows, FIRST_SECRET);
    expect((await getMe(after.app, user.token)).statusCode).toBe(200);
    after.clock.advanceSeconds(5);
    expect(json(await refresh(after.app, user.refreshToken)).refresh_token).toBe(child.refresh_token);
    expect((await refresh(after.app, child.refresh_token)).statusCode).toBe(201);
    await close(after);

    // The old secret alone no longer opens anything: a clear start-up error that names no secret.
    const failure = await createDeps(loadConfig({ LOG_LEVEL: 'silent', DATABASE_URL: database!.url, KEY_ENCRYPTION_SECRET: FIRST_SECRET })).catch(
      (error: Error) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/^signing key \S+ cannot be decrypted with this KEY_ENCRYPTION_SECRET/);
    expect((failure as Error).message).not.toContain(FIRST_SECRET);
  });

  it('`keys reencrypt` encrypts plaintext records, and refuses (changing nothing) when a record opens under neither secret', async () => {
    const plain = await open({});
    await signedInUser(plain.app, 'plain@example.com');
    const before = await readRows(plain);
    await close(plain);

    const noSecret = await cli({}, 'keys', 'reencrypt').catch((error: { code: number; stderr: string }) => error);
    expect(noSecret).toMatchObject({ code: 1, stderr: expect.stringContaining('needs KEY_ENCRYPTION_SECRET') });

    const sealed = await cli({ KEY_ENCRYPTION_SECRET: FIRST_SECRET }, 'keys', 'reencrypt');
    expect(sealed.stdout).toContain('1 signing keys, 3 server secrets, 0 TOTP secrets (were plaintext: 4,');

    const wrong = { KEY_ENCRYPTION_SECRET: SECOND_SECRET, KEY_ENCRYPTION_SECRET_PREVIOUS: 'neither-of-them-but-at-least-32-bytes-long' };
    const refused = await cli(wrong, 'keys', 'reencrypt').catch((error: { code: number; stderr: string; stdout: string }) => error);
    expect(refused).toMatchObject({ code: 1 });
    const stderr = (refused as { stderr: string }).stderr;
    expect(stderr).toMatch(/cannot be decrypted with this KEY_ENCRYPTION_SECRET nor with KEY_ENCRYPTION_SECRET_PREVIOUS/);
    for (const secret of [FIRST_SECRET, SECOND_SECRET, wrong.KEY_ENCRYPTION_SECRET_PREVIOUS]) expect(stderr).not.toContain(secret);

    const check = await open({ KEY_ENCRYPTION_SECRET: FIRST_SECRET }, plain);
    const rows = await readRows(check);
    expectAllUnder(rows, FIRST_SECRET, new Map([...before.keys.map((key) => [key.kid, key.private_jwk] as const), ...before.secrets.map((s) => [s.name, s.value] as const)]));
  });
});

describe('KEY_ENCRYPTION_SECRET_PREVIOUS configuration', () => {
  function problems(env: Record<string, string>): string[] {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  }

  it('must be 32 bytes or more, and is never echoed', () => {
    const short = 'too-short-previous-secret';
    const found = problems({ KEY_ENCRYPTION_SECRET: FIRST_SECRET, KEY_ENCRYPTION_SECRET_PREVIOUS: short });
    expect(found).toEqual(['KEY_ENCRYPTION_SECRET_PREVIOUS must be at least 32 bytes']);
    expect(found.join('\n')).not.toContain(short);
  });

  it('needs KEY_ENCRYPTION_SECRET beside it', () => {
    expect(problems({ KEY_ENCRYPTION_SECRET_PREVIOUS: FIRST_SECRET })).toEqual([
      'KEY_ENCRYPTION_SECRET_PREVIOUS needs KEY_ENCRYPTION_SECRET (the new secret) as well',
    ]);
    expect(loadConfig({ KEY_ENCRYPTION_SECRET: SECOND_SECRET, KEY_ENCRYPTION_SECRET_PREVIOUS: FIRST_SECRET })).toMatchObject({
      keyEncryptionSecret: SECOND_SECRET,
      keyEncryptionSecretPrevious: FIRST_SECRET,
    });
  });
});
