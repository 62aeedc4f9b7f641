import type { Kysely, Selectable } from 'kysely';
import type { Database, UsersTable } from './schema.ts';

export type UserRow = Selectable<UsersTable>;

export interface NewUserRow {
  email: string;
  emailNormalized: string;
  name: string;
  passwordHash: string;
  roles: string[];
  now: number;
}

export async function insertUser(db: Kysely<Database>, user: NewUserRow): Promise<UserRow> {
  return db
    .insertInto('users')
    .values({
      email: user.email,
      email_normalized: user.emailNormalized,
      name: user.name,
      password_hash: user.passwordHash,
      roles: JSON.stringify(user.roles),
      created_at: user.now,
      updated_at: user.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findUserByNormalizedEmail(db: Kysely<Database>, emailNormalized: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email_normalized', '=', emailNormalized).executeTakeFirst();
}

export async function findUserById(db: Kysely<Database>, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The cheap check the auth guard runs: does the user still exist, and since when is it disabled. */
export async function findUserStatus(db: Kysely<Database>, id: number): Promise<{ disabled_at: number | null } | undefined> {
  return db.selectFrom('users').select('disabled_at').where('id', '=', id).executeTakeFirst();
}

export async function updatePasswordHash(db: Kysely<Database>, id: number, passwordHash: string, now: number): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash, updated_at: now }).where('id', '=', id).execute();
}

/** Keyset pagination by id: stable under inserts, no OFFSET scans. */
export async function listUsersAfter(
  db: Kysely<Database>,
  afterId: number,
  limit: number,
): Promise<Array<{ id: number; email: string }>> {
  return db.selectFrom('users').select(['id', 'email']).where('id', '>', afterId).orderBy('id').limit(limit).execute();
}
