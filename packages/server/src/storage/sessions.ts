import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, RefreshTokensTable, SessionsTable } from './schema.ts';
import { findUserForUpdate, takeSqliteWriteLock, type UserRow } from './users.ts';

export type SessionRow = Selectable<SessionsTable>;
export type RefreshTokenRow = Selectable<RefreshTokensTable>;
type Executor = Kysely<Database> | Transaction<Database>;

/**
 * Opens the session only if its user may still have one: re-read under the row lock (PostgreSQL;
 * SQLite's write lock), it exists, is enabled, and (when given) still has the password hash the
 * caller checked. An admin change or a password change locks the same row and revokes the user's
 * sessions in its transaction, so a login in flight either commits first (and its session is
 * revoked with the others) or reads the row after the change (and is refused): it can never open a
 * session that outlives a disable, a demotion, a deletion or a new password. Returns the user as
 * read (its roles and email go into the tokens), or undefined when refused.
 */
export async function insertSessionForUser(
  db: Kysely<Database>,
  expected: { userId: number; passwordHash?: string | undefined },
  session: SessionRow,
  refreshToken: RefreshTokenRow,
): Promise<UserRow | undefined> {
  return db.transaction().execute(async (trx) => {
    await takeSqliteWriteLock(trx);
    const user = await findUserForUpdate(trx, expected.userId);
    if (!user || user.disabled_at !== null) return undefined;
    if (expected.passwordHash !== undefined && user.password_hash !== expected.passwordHash) return undefined;
    await trx.insertInto('sessions').values(session).execute();
    await trx.insertInto('refresh_tokens').values(refreshToken).execute();
    return user;
  });
}

export async function findRefreshToken(db: Executor, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  return db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

export async function findSession(db: Executor, sessionId: string): Promise<SessionRow | undefined> {
  return db.selectFrom('sessions').selectAll().where('id', '=', sessionId).executeTakeFirst();
}

/**
 * Marks a token spent only if nobody else did first; the conditional update is
 * what makes concurrent refreshes of one token produce a single child.
 */
export async function spendRefreshToken(db: Executor, tokenHash: string, childHash: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ used_at: now, child_hash: childHash })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function insertRefreshToken(db: Executor, row: RefreshTokenRow): Promise<void> {
  await db.insertInto('refresh_tokens').values(row).execute();
}

/**
 * Extends a session only if it is still live (not revoked, not expired, within its absolute
 * age); false when it is not. Inside the refresh transaction this is the revocation check that
 * counts: on PostgreSQL the row lock orders it against a concurrent revoking UPDATE, and the
 * condition is re-evaluated on the row that UPDATE committed.
 */
export async function extendLiveSession(
  db: Executor,
  sessionId: string,
  options: { now: number; expiresAt: number; createdAfter: number },
): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ last_refreshed_at: options.now, expires_at: options.expiresAt })
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', options.now)
    .where('created_at', '>', options.createdAfter)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Revokes the given sessions (not already revoked); returns the ids that changed. */
export async function revokeSessions(
  db: Executor,
  filter: { sessionId?: string; userId?: number; clientId?: string; exceptSessionId?: string },
  now: number,
  reason: string,
): Promise<string[]> {
  let query = db.updateTable('sessions').set({ revoked_at: now, revoked_reason: reason }).where('revoked_at', 'is', null);
  if (filter.sessionId !== undefined) query = query.where('id', '=', filter.sessionId);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.exceptSessionId !== undefined) query = query.where('id', '!=', filter.exceptSessionId);
  const rows = await query.returning('id').execute();
  return rows.map((row) => row.id);
}

/** Revoked sessions whose access tokens may still be alive: the denylist to load at start. */
export async function listRecentlyRevokedSessions(db: Executor, since: number): Promise<Array<{ id: string; revoked_at: number }>> {
  const rows = await db.selectFrom('sessions').select(['id', 'revoked_at']).where('revoked_at', '>=', since).execute();
  return rows.map((row) => ({ id: row.id, revoked_at: Number(row.revoked_at) }));
}

/**
 * Drops sessions (and their tokens, by cascade) that can no longer be used or matter to the denylist:
 * expired, or revoked, before the given time. The caller puts that time past the last access token's life.
 */
export async function deleteEndedSessions(db: Executor, endedBefore: number): Promise<number> {
  const result = await db
    .deleteFrom('sessions')
    .where((eb) => eb.or([eb('expires_at', '<', endedBefore), eb('revoked_at', '<', endedBefore)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function deleteExpiredRefreshTokens(db: Executor, expiredBefore: number): Promise<number> {
  const result = await db.deleteFrom('refresh_tokens').where('expires_at', '<', expiredBefore).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** A user's sessions, newest first, at most `limit`; `live`: only those not revoked, not expired, within the absolute age. */
export async function listUserSessions(
  db: Executor,
  userId: number,
  options: { limit: number; live?: { now: number; createdAfter: number; wanted: boolean } },
): Promise<SessionRow[]> {
  let query = db.selectFrom('sessions').selectAll().where('user_id', '=', userId);
  const live = options.live;
  if (live?.wanted === true) {
    query = query.where('revoked_at', 'is', null).where('expires_at', '>', live.now).where('created_at', '>', live.createdAfter);
  } else if (live?.wanted === false) {
    query = query.where((eb) => eb.or([eb('revoked_at', 'is not', null), eb('expires_at', '<=', live.now), eb('created_at', '<=', live.createdAfter)]));
  }
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(options.limit).execute();
}
