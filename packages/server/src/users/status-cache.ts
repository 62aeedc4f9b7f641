import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Database } from '../storage/schema.ts';
import { findUserStatus } from '../storage/users.ts';

export type UserStatus = 'active' | 'disabled' | 'missing';

/** How long a user's status is trusted before the database is asked again. */
export const USER_STATUS_TTL_MS = 1000;
const MAX_ENTRIES = 50_000;

export interface UserStatusCache {
  /** The status as of at most USER_STATUS_TTL_MS ago. */
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
  return {
    async statusOf(userId) {
      const nowMs = deps.clock.now().getTime();
      const cached = entries.get(userId);
      if (cached && nowMs - cached.checkedAtMs < USER_STATUS_TTL_MS) return cached.status;
      const row = await findUserStatus(deps.db, userId);
      const status: UserStatus = !row ? 'missing' : row.disabled_at === null ? 'active' : 'disabled';
      entries.delete(userId);
      if (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value as number);
      entries.set(userId, { status, checkedAtMs: nowMs });
      return status;
    },
  };
}
