import { afterEach, describe, expect, it } from 'vitest';
import { createDb, createMigrator, type Db } from '../src/storage/db.ts';
import { migrations } from '../src/storage/migrations/index.ts';
import { createTestDatabase, testDialects, type TestDatabase } from './helpers.ts';

/**
 * A run of migrations commits whole or not at all, and migrations that change data, run over rows an older version left: the database is migrated up to the
 * migration before, filled as that version would have, then migrated to the latest.
 */
describe.each(testDialects())('data migrations [%s]', (dialect) => {
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  afterEach(async () => {
    await db?.close();
    await database?.drop();
    db = undefined;
    database = undefined;
  });

  async function migratedUpTo(last: string): Promise<Db> {
    database = await createTestDatabase(dialect);
    db = await createDb(database.url);
    const names = Object.keys(migrations).sort();
    const upTo = Object.fromEntries(names.slice(0, names.indexOf(last) + 1).map((name) => [name, migrations[name]!]));
    const migrator = await createMigrator(db.kysely, upTo);
    const result = await migrator.migrateToLatest();
    if (result.error) throw result.error;
    return db;
  }

  it('0009 marks only accounts that had a sign-in factor before their address was proved', async () => {
    const db = await migratedUpTo('0008_mfa_ticket_password');
    const k = db.kysely as any;
    const insertUser = async (email: string, verified: boolean): Promise<number> => {
      const row = await k
        .insertInto('users')
        .values({ email, email_normalized: email, name: '', password_hash: 'x', roles: '["user"]', created_at: 1, updated_at: 1, email_verified_at: verified ? 1 : null })
        .returning('id')
        .executeTakeFirstOrThrow();
      return Number(row.id);
    };
    const ids = {
      totpUnproved: await insertUser('totp@example.com', false),
      passkeyUnproved: await insertUser('passkey@example.com', false),
      codesUnproved: await insertUser('codes@example.com', false),
      totpProved: await insertUser('proved@example.com', true),
      plainUnproved: await insertUser('plain@example.com', false),
    };
    await k.insertInto('totp_factors').values({ user_id: ids.totpUnproved, secret: 's', created_at: 1, confirmed_at: 1 }).execute();
    await k.insertInto('totp_factors').values({ user_id: ids.totpProved, secret: 's', created_at: 1, confirmed_at: 1 }).execute();
    await k
      .insertInto('passkeys')
      .values({ user_id: ids.passkeyUnproved, credential_id: 'c', public_key: 'p', user_handle: 'h', name: 'n', created_at: 1 })
      .execute();
    await k.insertInto('recovery_codes').values({ code_hash: 'r', user_id: ids.codesUnproved, created_at: 1 }).execute();

    const outcome = await db.migrate();
    expect(outcome.results?.map((result) => [result.migrationName, result.status])).toEqual([['0009_legacy_factors', 'Success']]);
    const rows: { id: number | string; legacy_factors_at: number | string | null }[] = await k.selectFrom('users').select(['id', 'legacy_factors_at']).orderBy('id').execute();
    const marked = Object.fromEntries(rows.map((row) => [Number(row.id), row.legacy_factors_at !== null]));
    expect(marked).toEqual({
      [ids.totpUnproved]: true,
      [ids.passkeyUnproved]: true,
      [ids.codesUnproved]: true,
      [ids.totpProved]: false,
      [ids.plainUnproved]: false,
    });
  });

  it('leaves nothing of a run that fails halfway: the next start applies it again cleanly', async () => {
    // A run of the last real migration and one that changes the schema, then fails (a crash, a full disk).
    const db = await migratedUpTo('0008_mfa_ticket_password');
    const broken = {
      ...migrations,
      '9999_fails_halfway': {
        up: async (k: import('kysely').Kysely<any>) => {
          await k.schema.alterTable('users').addColumn('half_done', 'text').execute();
          throw new Error('interrupted');
        },
      },
    };
    const failed = await (await createMigrator(db.kysely, broken)).migrateToLatest();
    expect(failed.error).toBeInstanceOf(Error);
    const k = db.kysely as any;
    // Neither the failing migration's column nor the one before it in the same run is there, nor recorded.
    await expect(k.selectFrom('users').select('half_done').execute()).rejects.toThrow();
    await expect(k.selectFrom('users').select('legacy_factors_at').execute()).rejects.toThrow();
    const outcome = await db.migrate();
    expect(outcome.results?.map((result) => [result.migrationName, result.status])).toEqual([['0009_legacy_factors', 'Success']]);
    expect(await k.selectFrom('users').select('legacy_factors_at').execute()).toEqual([]);
  });
});
