import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import { isDatabaseUnavailable } from '../storage/db.ts';
import type { Database } from '../storage/schema.ts';
import { findUserStatus } from '../storage/users.ts';

export type UserStatus = 'active' | 'disabled' | 'missing';

/** How long a user's status is trusted before the database is asked again. */
export const USER_STATUS_TTL_MS = 1000;
/**
 * While the database is unreachable, a status read at most this long ago is still served. Long
 * enough to ride out a failover or a restart (typically 10–30 s) without refusing signed-in users;
 * short enough that a user disabled just before the outage is refused here within a minute, well
 * inside an access token's lifetime (other services accept it until exp anyway).
 */
export const USER_STATUS_STALE_LIMIT_MS = 60_000;
/** After a failed lookup, the database is not asked again for this long: stale answers are served at once. */
const DATABASE_PROBE_INTERVAL_MS = 1000;
const MAX_ENTRIES = 50_000;

export interface UserStatusCache {
  /**
   * The status as of at most USER_STATUS_TTL_MS ago; while the database is unreachable, as of at most
   * USER_STATUS_STALE_LIMIT_MS ago. Throws (→ 503) for a user not seen within that limit.
   */
  statusOf(userId: number): Promise<UserStatus>;
}

/**
 * Every authenticated request must refuse a deleted or disabled user. Asking the
 * database each time doubled the cost of a GET /users; remembering the answer for
 * one second bounds how late a change made elsewhere (another instance, a manual
 * UPDATE) takes effect here. Other services verifying locally accept the token
 * until exp (minutes) anyway.
 */
export function createUserStatusCache(deps: { db: Kysely<Database>; clock: Clock }): UserStatusCache {
  const entries = new Map<number, { status: UserStatus; checkedAtMs: number }>();
  let databaseDownUntilMs = 0;
  return {
    async statusOf(userId) {
      const nowMs = deps.clock.now().getTime();
      const cached = entries.get(userId);
      if (cached && nowMs - cached.checkedAtMs < USER_STATUS_TTL_MS) return cached.status;
      const stale = cached && nowMs - cached.checkedAtMs < USER_STATUS_STALE_LIMIT_MS ? cached : undefined;
      // Each lookup against an unreachable server may cost a connect timeout: ask at most once a second.
      if (nowMs < databaseDownUntilMs) {
        if (stale) return stale.status;
        throw new AppError('unavailable', 'database unavailable', { retryAfterSeconds: 5 });
      }
      let row;
      try {
        row = await findUserStatus(deps.db, userId);
      } catch (error) {
        if (!isDatabaseUnavailable(error)) throw error;
        databaseDownUntilMs = deps.clock.now().getTime() + DATABASE_PROBE_INTERVAL_MS;
        if (stale) return stale.status;
        throw error;
      }
      databaseDownUntilMs = 0;
      const status: UserStatus = !row ? 'missing' : row.disabled_at === null ? 'active' : 'disabled';
      entries.delete(userId);
      if (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value as number);
      entries.set(userId, { status, checkedAtMs: nowMs });
      return status;
    },
  };
}
