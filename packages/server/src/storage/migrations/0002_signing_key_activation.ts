import type { Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
export async function up(db: Kysely<any>): Promise<void> {
  // When a key starts signing; null for keys from before this migration (active since created).
  await db.schema.alterTable('signing_keys').addColumn('activates_at', 'bigint').execute();
  // Each new key takes the previous key's generation + 1; the unique index lets only one of two
  // instances rotating at the same moment win, on both dialects, with no lock. Null for older keys.
  await db.schema.alterTable('signing_keys').addColumn('generation', 'bigint').execute();
  await db.schema.createIndex('signing_keys_generation').on('signing_keys').column('generation').unique().execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('signing_keys_generation').execute();
  await db.schema.alterTable('signing_keys').dropColumn('generation').execute();
  await db.schema.alterTable('signing_keys').dropColumn('activates_at').execute();
}
