import type { Kysely } from 'kysely';
import { AppError } from '../errors.ts';
import type { Database } from '../storage/schema.ts';
import { listUsersAfter } from '../storage/users.ts';

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

export async function listUsers(db: Kysely<Database>, options: { limit: number; cursor?: string | undefined }): Promise<UserPage> {
  const afterId = options.cursor ? decodeCursor(options.cursor) : 0;
  // One extra row tells whether another page exists without a COUNT.
  const rows = await listUsersAfter(db, afterId, options.limit + 1);
  const users = rows.slice(0, options.limit).map((row) => ({ id: Number(row.id), email: row.email }));
  const last = users.at(-1);
  return { users, next_cursor: rows.length > options.limit && last ? encodeCursor(last.id) : null };
}
