import { PostgresAdapter, sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { precompiledQuery } from './precompiled.ts';
import type { Database, UsersTable } from './schema.ts';

export type UserRow = Selectable<UsersTable>;
type Executor = Kysely<Database> | Transaction<Database>;

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

const selectUserStatus = precompiledQuery((db) => db.selectFrom('users').select('disabled_at').where('id', '=', 0));

/** The cheap check the auth guard runs on every request: does the user still exist, and is it disabled. */
export async function findUserStatus(db: Kysely<Database>, id: number): Promise<{ disabled_at: number | null } | undefined> {
  return (await selectUserStatus(db, [id]))[0];
}

/** Sets the hash; with `replacing`, only if the stored hash is still that one (true when it was set). */
export async function updatePasswordHash(db: Kysely<Database>, id: number, passwordHash: string, now: number, options: { replacing?: string } = {}): Promise<boolean> {
  let query = db.updateTable('users').set({ password_hash: passwordHash, updated_at: now }).where('id', '=', id);
  if (options.replacing !== undefined) query = query.where('password_hash', '=', options.replacing);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

// One statement per page size, with the LIMIT written into the SQL: SQLite runs this query in
// 5.7 µs with a literal LIMIT and 10.2 µs with a bound one (better-sqlite3, 5 rows, measured here).
const selectUsersAfterByLimit = new Map<number, ReturnType<typeof precompiledQuery<{ id: number; email: string }>>>();

/** Keyset pagination by id: stable under inserts, no OFFSET scans. */
export async function listUsersAfter(db: Kysely<Database>, afterId: number, limit: number): Promise<Array<{ id: number; email: string }>> {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`page size out of range: ${limit}`);
  let query = selectUsersAfterByLimit.get(limit);
  if (!query) {
    query = precompiledQuery((db) => db.selectFrom('users').select(['id', 'email']).where('id', '>', 0).orderBy('id').limit(sql.lit(limit)));
    selectUsersAfterByLimit.set(limit, query);
  }
  return query(db, [afterId]);
}

/** What an admin may search users by; every filter optional, keyset pagination by id. */
export interface UserSearch {
  /** Prefix of the normalised email. */
  emailPrefix?: string | undefined;
  role?: string | undefined;
  disabled?: boolean | undefined;
  afterId: number;
  limit: number;
}

/** A LIKE pattern that matches the text literally (with ESCAPE '\'): `_` is legal in role names, `%` in emails. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}

/** The roles column holds JSON text written by JSON.stringify, and role names hold no quote: `"role"` matches exactly one role. */
function hasRole(role: string) {
  return sql<boolean>`roles like ${`%${likeLiteral(JSON.stringify(role))}%`} escape '\\'`;
}

export async function searchUsers(db: Kysely<Database>, search: UserSearch): Promise<UserRow[]> {
  let query = db.selectFrom('users').selectAll().where('id', '>', search.afterId);
  // Normalised on both sides, so the prefix matches case-insensitively on both dialects (PostgreSQL's LIKE is case-sensitive).
  if (search.emailPrefix !== undefined) query = query.where(sql<boolean>`email_normalized like ${`${likeLiteral(search.emailPrefix)}%`} escape '\\'`);
  if (search.role !== undefined) query = query.where(hasRole(search.role));
  if (search.disabled !== undefined) query = query.where('disabled_at', search.disabled ? 'is not' : 'is', null);
  return query.orderBy('id').limit(search.limit).execute();
}

/**
 * The ids of every enabled admin. On PostgreSQL inside a transaction, `lock` takes their row locks
 * in id order: two admins demoting each other queue on the same locks in the same order, and the
 * second re-reads the rows the first committed (so it counts one admin fewer) instead of both
 * seeing the other still an admin and leaving none.
 */
export async function listEnabledAdminIds(db: Executor, options: { lock: boolean }): Promise<number[]> {
  const query = db.selectFrom('users').select('id').where('disabled_at', 'is', null).where(hasRole('admin')).orderBy('id');
  const rows = await (options.lock && isPostgres(db) ? query.forUpdate() : query).execute();
  return rows.map((row) => Number(row.id));
}

/**
 * SQLite: makes the transaction a writer from its first statement (an UPDATE that changes nothing),
 * so a concurrent writer in another process (the CLI beside the service) waits on busy_timeout
 * rather than the read-then-write upgrade failing with SQLITE_BUSY. PostgreSQL locks rows instead.
 */
export async function takeSqliteWriteLock(db: Transaction<Database>): Promise<void> {
  if (!isPostgres(db)) await db.updateTable('users').set({ updated_at: sql`updated_at` }).where('id', '=', 0).execute();
}

export async function findUserForUpdate(db: Transaction<Database>, id: number): Promise<UserRow | undefined> {
  const query = db.selectFrom('users').selectAll().where('id', '=', id);
  return (isPostgres(db) ? query.forUpdate() : query).executeTakeFirst();
}

export function isPostgres(db: Executor): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

export async function updateUserRow(
  db: Executor,
  id: number,
  changes: Partial<Pick<UsersTable, 'email' | 'email_normalized' | 'email_verified_at' | 'name' | 'roles' | 'disabled_at' | 'updated_at'>>,
): Promise<UserRow> {
  return db.updateTable('users').set(changes).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
}

/** Deletes the user; sessions and refresh tokens go with it (ON DELETE CASCADE). */
export async function deleteUserRow(db: Executor, id: number): Promise<boolean> {
  const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}
