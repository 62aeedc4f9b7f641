import { sql, type Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
export async function up(db: Kysely<any>): Promise<void> {
  const epoch = 'bigint' as const;
  await db.schema
    .createTable('clients')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('type', 'text', (col) => col.notNull().check(sql`type in ('public', 'confidential')`))
    .addColumn('secret_hash', 'text')
    .addColumn('previous_secret_hash', 'text')
    .addColumn('previous_secret_expires_at', epoch)
    .addColumn('audiences', 'text', (col) => col.notNull().defaultTo('[]'))
    .addColumn('scopes', 'text', (col) => col.notNull().defaultTo('[]'))
    .addColumn('created_at', epoch, (col) => col.notNull())
    .addColumn('updated_at', epoch, (col) => col.notNull())
    .addColumn('disabled_at', epoch)
    // A confidential client always has a secret; a public one never does.
    .addCheckConstraint('clients_secret_matches_type', sql`(type = 'confidential') = (secret_hash is not null)`)
    .execute();
  // The public client the seed's session (and any request without client_id) signs in through.
  // Migrations run once, outside any request, so the wall clock (not the injected one) dates this row.
  const now = Math.floor(Date.now() / 1000);
  await db
    .insertInto('clients')
    .values({ id: 'gatehouse', name: 'Gatehouse (default public client)', type: 'public', audiences: '[]', scopes: '[]', created_at: now, updated_at: now })
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('clients').execute();
}
