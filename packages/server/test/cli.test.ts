import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testDialects, type TestDatabase } from './helpers.ts';

const run = promisify(execFile);

describe.each(testDialects())('gatehouse CLI [%s]', (dialect) => {
  let database: TestDatabase;
  const cli = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'packages/server/src/cli.ts', ...args], {
      env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'silent' },
    });
  beforeAll(async () => {
    database = await createTestDatabase(dialect);
  });
  afterAll(() => database.drop());

  it('migrates, then lists and rotates signing keys', async () => {
    expect((await cli('migrate')).stdout).toBe('applied: 0001_initial, 0002_signing_key_activation, 0003_clients, 0004_session_client, 0005_audit_events, 0006_account_security, 0008_mfa_ticket_password, 0009_legacy_factors\n');
    expect((await cli('migrate')).stdout).toBe('database is up to date\n');

    const first = (await cli('keys', 'list')).stdout.trim().split('\n');
    expect(first).toHaveLength(1);
    expect(first[0]).toMatch(/^\S+ {2}EdDSA {2}created .* {2}active$/);
    const oldKid = first[0]!.split(' ')[0]!;

    const rotated = (await cli('keys', 'rotate')).stdout;
    const newKid = /^new signing key (\S+) \(EdDSA\)$/m.exec(rotated)?.[1];
    expect(newKid).toBeDefined();
    expect(newKid).not.toBe(oldKid);
    // The timeline: published now, signing 600 s later, the old key published until its last token has expired.
    const stamp = (label: string) => Date.parse(new RegExp(`${label}\\s+(\\S+Z)`).exec(rotated)?.[1] ?? '') / 1000;
    const publishedAt = stamp('published in the JWKS now:');
    const activatesAt = stamp('signs on every instance from:');
    const oldUntil = stamp(`old key ${oldKid} published until:`);
    expect(Math.abs(publishedAt - Date.now() / 1000)).toBeLessThan(60);
    expect(activatesAt - publishedAt).toBe(600);
    expect(oldUntil - activatesAt).toBe(900 + 60);

    const after = (await cli('keys', 'list')).stdout.trim().split('\n');
    expect(after.find((line) => line.startsWith(newKid!))).toMatch(/ {2}pending, signs from \S+Z$/);
    expect(after.find((line) => line.startsWith(oldKid))).toMatch(/ {2}active until \S+Z, published until \S+Z$/);

    // A second planned rotation would stack on the pending one: refused, with the way out.
    const refused = await cli('keys', 'rotate').catch((error: { code: number; stderr: string }) => error);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toMatch(/a rotation is already pending: key \S+ signs from .*rotate --now/);

    // --now (a compromised key): signs at once, and both earlier keys are retired now.
    const urgent = (await cli('keys', 'rotate', '--now')).stdout;
    const urgentKid = /^new signing key (\S+) /m.exec(urgent)?.[1];
    expect(urgent).toMatch(/signs now \(--now\)/);
    const listed = (await cli('keys', 'list')).stdout.trim().split('\n');
    expect(listed).toHaveLength(3);
    expect(listed.find((line) => line.startsWith(urgentKid!))).toMatch(/ {2}active$/);
    for (const kid of [oldKid, newKid!]) expect(listed.find((line) => line.startsWith(kid))).toMatch(/ {2}retired, published until \S+Z$/);
  });

  it('refuses --now on keys commands other than rotate, and unknown keys subcommands, with the usage', async () => {
    for (const args of [['keys', 'list', '--now'], ['keys', 'frobnicate'], ['keys', 'rotate', '--later']]) {
      const failure = await cli(...args).catch((error: { code: number; stderr: string }) => error);
      expect(failure).toMatchObject({ code: 2 });
      expect((failure as { stderr: string }).stderr).toContain('usage: gatehouse');
    }
  });

  it('refuses an unknown command with the usage and exit code 2', async () => {
    const failure = await cli('frobnicate').catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toContain('usage: gatehouse');
  });
});
