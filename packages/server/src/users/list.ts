import type { Kysely } from 'kysely';
import { AppError } from '../errors.ts';
import type { Database } from '../storage/schema.ts';
import { findUserById, listUsersAfter, searchUsers } from '../storage/users.ts';
import { toAdminUser, type AdminUser } from './admin-service.ts';
import { normalizeEmail } from './user.ts';

export interface UserPage {
  users: Array<{ id: number; email: string }>;
  next_cursor: string | null;
}

/** Cursors are opaque to clients; today they wrap the last id seen. */
export function encodeCursor(lastId: number): string {
  return Buffer.from(`u:${lastId}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const match = /^u:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new AppError('invalid_input', 'bad cursor', { fieldErrors: [{ field: 'cursor', message: 'cursor is not a valid cursor' }] });
  return Number(match[1]);
}

/**
 * Who may list whom: admins see every user; other users see only their own entry unless
 * USERS_LIST=all (the tutorial's behaviour). A full list hands any signed-in user every
 * email to lock out or phish.
 */
export function mayListEveryone(usersList: 'self' | 'all', roles: readonly string[]): boolean {
  return usersList === 'all' || roles.includes('admin');
}

/** The caller's own entry in the list shape, honouring the cursor so a client paging through stops. */
export async function listOnlyUser(
  db: Kysely<Database>,
  userId: number,
  options: { cursor?: string | undefined },
): Promise<UserPage> {
  const afterId = options.cursor ? decodeCursor(options.cursor) : 0;
  if (userId <= afterId) return { users: [], next_cursor: null };
  const row = await findUserById(db, userId);
  return { users: row ? [{ id: Number(row.id), email: row.email }] : [], next_cursor: null };
}

export async function listUsers(db: Kysely<Database>, options: { limit: number; cursor?: string | undefined }): Promise<UserPage> {
  const afterId = options.cursor ? decodeCursor(options.cursor) : 0;
  // One extra row tells whether another page exists without a COUNT.
  const rows = await listUsersAfter(db, afterId, options.limit + 1);
  const users = rows.slice(0, options.limit).map((row) => ({ id: Number(row.id), email: row.email }));
  const last = users.at(-1);
  return { users, next_cursor: rows.length > options.limit && last ? encodeCursor(last.id) : null };
}

/** What an admin may filter GET /users (and `gatehouse users list`) by. */
export interface UserFilters {
  /** Prefix of the email, matched case-insensitively. */
  email?: string | undefined;
  role?: string | undefined;
  disabled?: boolean | undefined;
}

export function hasFilters(filters: UserFilters): boolean {
  return filters.email !== undefined || filters.role !== undefined || filters.disabled !== undefined;
}

/** The admin's view of the list: every field but the hash, filtered, by the same cursor as the seed's list. */
export async function searchUsersPage(
  db: Kysely<Database>,
  filters: UserFilters,
  options: { limit: number; cursor?: string | undefined },
): Promise<{ users: AdminUser[]; next_cursor: string | null }> {
  const afterId = options.cursor ? decodeCursor(options.cursor) : 0;
  const rows = await searchUsers(db, {
    emailPrefix: filters.email === undefined ? undefined : normalizeEmail(filters.email),
    role: filters.role,
    disabled: filters.disabled,
    afterId,
    limit: options.limit + 1,
  });
  const users = rows.slice(0, options.limit).map(toAdminUser);
  const last = users.at(-1);
  return { users, next_cursor: rows.length > options.limit && last ? encodeCursor(last.id) : null };
}
