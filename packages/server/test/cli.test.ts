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
    expect((await cli('migrate')).stdout).toBe('applied: 0001_initial\n');
    expect((await cli('migrate')).stdout).toBe('database is up to date\n');

    const first = (await cli('keys', 'list')).stdout.trim().split('\n');
    expect(first).toHaveLength(1);
    expect(first[0]).toMatch(/^\S+ {2}EdDSA {2}created .* {2}active$/);
    const oldKid = first[0]!.split(' ')[0]!;

    const rotated = (await cli('keys', 'rotate')).stdout;
    const newKid = /new signing key (\S+) /.exec(rotated)?.[1];
    expect(newKid).toBeDefined();
    expect(newKid).not.toBe(oldKid);

    const after = (await cli('keys', 'list')).stdout.trim().split('\n');
    expect(after.find((line) => line.startsWith(newKid!))).toMatch(/active$/);
    // The old key stays published until its last token has expired.
    expect(after.find((line) => line.startsWith(oldKid))).toMatch(/retired, published until /);
  });

  it('refuses an unknown command with the usage and exit code 2', async () => {
    const failure = await cli('frobnicate').catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toContain('usage: gatehouse');
  });
});
