import { PostgresAdapter, type Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
export async function up(db: Kysely<any>): Promise<void> {
  const isPostgres = db.getExecutor().adapter instanceof PostgresAdapter;
  const epoch = 'bigint' as const;
  // Append-only: the application only inserts here (and the retention purge deletes the oldest).
  await db.schema
    .createTable('audit_events')
    .addColumn('id', isPostgres ? 'bigserial' : 'integer', (col) => (isPostgres ? col.primaryKey() : col.primaryKey().autoIncrement()))
    // Epoch milliseconds: several events of one request (login, then refresh) keep their order.
    .addColumn('occurred_at', epoch, (col) => col.notNull())
    .addColumn('action', 'text', (col) => col.notNull())
    .addColumn('outcome', 'text', (col) => col.notNull())
    // Why a failure failed (unknown_email, wrong_password, locked, disabled…): stored, never sent to the client that failed.
    .addColumn('reason', 'text')
    .addColumn('actor_type', 'text', (col) => col.notNull())
    .addColumn('actor_id', 'text')
    .addColumn('subject_type', 'text')
    .addColumn('subject_id', 'text')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('request_id', 'text')
    // JSON object: before/after of an admin change, the client id, counts… never a password, a token or a key.
    .addColumn('details', 'text')
    .execute();
  await db.schema.createIndex('audit_events_occurred_at').on('audit_events').column('occurred_at').execute();
  await db.schema.createIndex('audit_events_subject').on('audit_events').columns(['subject_type', 'subject_id', 'id']).execute();
  await db.schema.createIndex('audit_events_actor').on('audit_events').columns(['actor_type', 'actor_id', 'id']).execute();
  await db.schema.createIndex('audit_events_action').on('audit_events').columns(['action', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_events').execute();
}
