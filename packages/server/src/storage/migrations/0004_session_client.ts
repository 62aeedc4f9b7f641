import type { Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
export async function up(db: Kysely<any>): Promise<void> {
  // The client a session was opened through; sessions from before clients existed belong to the default one.
  // No foreign key: deleting a client revokes its sessions, and revoked rows must outlive it for the denylist.
  await db.schema.alterTable('sessions').addColumn('client_id', 'text', (col) => col.notNull().defaultTo('gatehouse')).execute();
  // The audience its access tokens are for; null: JWT_AUDIENCE as configured at each refresh.
  await db.schema.alterTable('sessions').addColumn('audience', 'text').execute();
  await db.schema.createIndex('sessions_client_id').on('sessions').column('client_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_client_id').execute();
  await db.schema.alterTable('sessions').dropColumn('audience').execute();
  await db.schema.alterTable('sessions').dropColumn('client_id').execute();
}
