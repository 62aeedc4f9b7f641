/** Bulk queries for `gatehouse users import|export`. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { UserRow } from './users.ts';

export interface ImportedUserRow {
  email: string;
  emailNormalized: string;
  name: string;
  passwordHash: string;
  roles: string[];
  createdAt: number;
  disabledAt: number | null;
}

/**
 * One multi-row INSERT; a row whose email is already registered is skipped by the unique index (the
 * others still go in, atomically). Returns the normalised emails actually inserted.
 */
export async function insertUsersSkippingExisting(db: Kysely<Database>, rows: ImportedUserRow[], now: number): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const inserted = await db
    .insertInto('users')
    .values(
      rows.map((row) => ({
        email: row.email,
        email_normalized: row.emailNormalized,
        name: row.name,
        password_hash: row.passwordHash,
        roles: JSON.stringify(row.roles),
        created_at: row.createdAt,
        updated_at: now,
        disabled_at: row.disabledAt,
      })),
    )
    .onConflict((conflict) => conflict.column('email_normalized').doNothing())
    .returning('email_normalized')
    .execute();
  return new Set(inserted.map((row) => row.email_normalized));
}

/** Which of these normalised emails are registered (a dry run's "would be skipped"). */
export async function findRegisteredEmails(db: Kysely<Database>, emailsNormalized: string[]): Promise<Set<string>> {
  if (emailsNormalized.length === 0) return new Set();
  const rows = await db.selectFrom('users').select('email_normalized').where('email_normalized', 'in', emailsNormalized).execute();
  return new Set(rows.map((row) => row.email_normalized));
}

/** A page of whole user rows by id (keyset, so an export streams in constant memory). */
export async function listUserRowsAfter(db: Kysely<Database>, afterId: number, limit: number): Promise<UserRow[]> {
  return db.selectFrom('users').selectAll().where('id', '>', afterId).orderBy('id').limit(limit).execute();
}
