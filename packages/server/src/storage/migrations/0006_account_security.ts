import { PostgresAdapter, type Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
// Issue 12: email verification, password reset and email change, TOTP with recovery codes, passkeys.
export async function up(db: Kysely<any>): Promise<void> {
  const isPostgres = db.getExecutor().adapter instanceof PostgresAdapter;
  const epoch = 'bigint' as const;
  const autoId = (table: string) =>
    db.schema
      .createTable(table)
      .addColumn('id', isPostgres ? 'bigserial' : 'integer', (col) => (isPostgres ? col.primaryKey() : col.primaryKey().autoIncrement()));

  // When the user proved they read mail at their address; null: never (or not since the address changed).
  await db.schema.alterTable('users').addColumn('email_verified_at', epoch).execute();
  // How the session's user authenticated (RFC 8176 amr values, JSON array): its tokens carry it at every refresh.
  await db.schema.alterTable('sessions').addColumn('amr', 'text', (col) => col.notNull().defaultTo('["pwd"]')).execute();

  // Emailed single-use secrets: stored only as SHA-256, short-lived, spent once.
  await db.schema
    .createTable('email_tokens')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('purpose', 'text', (col) => col.notNull()) // verify_email | reset_password | change_email
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    // change_email: the address being confirmed (the one the message went to).
    .addColumn('email', 'text')
    .addColumn('created_at', epoch, (col) => col.notNull())
    .addColumn('expires_at', epoch, (col) => col.notNull())
    .addColumn('used_at', epoch)
    .execute();
  await db.schema.createIndex('email_tokens_user').on('email_tokens').columns(['user_id', 'purpose']).execute();

  // One TOTP authenticator per user; the secret sealed like signing keys (KEY_ENCRYPTION_SECRET).
  await db.schema
    .createTable('totp_factors')
    .addColumn('user_id', 'bigint', (col) => col.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('secret', 'text', (col) => col.notNull())
    .addColumn('secret_encryption', 'text')
    .addColumn('created_at', epoch, (col) => col.notNull())
    // null until the first code proves the authenticator was set up; only then does login ask for it.
    .addColumn('confirmed_at', epoch)
    // The last time step accepted: a code of that step or an earlier one is a replay.
    .addColumn('last_used_step', epoch)
    .execute();

  await db.schema
    .createTable('recovery_codes')
    .addColumn('code_hash', 'text', (col) => col.primaryKey())
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', epoch, (col) => col.notNull())
    .addColumn('used_at', epoch)
    .execute();
  await db.schema.createIndex('recovery_codes_user').on('recovery_codes').column('user_id').execute();

  // The step between a correct password and the second factor: stored hashed, short-lived, attempts counted.
  await db.schema
    .createTable('mfa_tickets')
    .addColumn('ticket_hash', 'text', (col) => col.primaryKey())
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (col) => col.notNull())
    .addColumn('audience', 'text')
    .addColumn('created_at', epoch, (col) => col.notNull())
    .addColumn('expires_at', epoch, (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('used_at', epoch)
    .execute();

  // WebAuthn credentials (passkeys).
  await autoId('passkeys')
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    // base64url credential id, unique across users.
    .addColumn('credential_id', 'text', (col) => col.notNull().unique())
    .addColumn('public_key', 'text', (col) => col.notNull())
    // The WebAuthn user handle given at registration (random, base64url), returned by discoverable sign-ins.
    .addColumn('user_handle', 'text', (col) => col.notNull())
    .addColumn('counter', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('transports', 'text', (col) => col.notNull().defaultTo('[]'))
    .addColumn('device_type', 'text')
    .addColumn('backed_up', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('created_at', epoch, (col) => col.notNull())
    .addColumn('last_used_at', epoch)
    .execute();
  await db.schema.createIndex('passkeys_user').on('passkeys').column('user_id').execute();

  // Challenges handed out for a registration or a sign-in, spent once.
  await db.schema
    .createTable('webauthn_challenges')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('challenge', 'text', (col) => col.notNull())
    .addColumn('purpose', 'text', (col) => col.notNull()) // register | authenticate
    .addColumn('user_id', 'bigint', (col) => col.references('users.id').onDelete('cascade'))
    .addColumn('created_at', epoch, (col) => col.notNull())
    .addColumn('expires_at', epoch, (col) => col.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['webauthn_challenges', 'passkeys', 'mfa_tickets', 'recovery_codes', 'totp_factors', 'email_tokens']) {
    await db.schema.dropTable(table).execute();
  }
  await db.schema.alterTable('sessions').dropColumn('amr').execute();
  await db.schema.alterTable('users').dropColumn('email_verified_at').execute();
}
