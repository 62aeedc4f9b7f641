import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { isDatabaseUnavailable } from '../storage/db.ts';
import type { Database } from '../storage/schema.ts';
import { findActiveClient } from './clients.ts';

/** How long a client's status is trusted before the database is asked again (as for users). */
export const CLIENT_STATUS_TTL_MS = 1000;
const MAX_ENTRIES = 10_000;
/** While the database is unreachable, an answer this old still stands (as for users), rather than a 503 per request. */
const CLIENT_STATUS_STALE_LIMIT_MS = 60_000;

export interface ClientStatusCache {
  /** Whether the client exists and is not disabled, as of at most CLIENT_STATUS_TTL_MS ago. */
  isActive(clientId: string): Promise<boolean>;
}

/**
 * A client token stays live only while its client does. Introspecting one would otherwise cost a
 * query each time; a deleted or disabled client's tokens are refused here within a second.
 */
export function createClientStatusCache(deps: { db: Kysely<Database>; clock: Clock }): ClientStatusCache {
  const entries = new Map<string, { active: boolean; checkedAtMs: number }>();
  return {
    async isActive(clientId) {
      const nowMs = deps.clock.now().getTime();
      const cached = entries.get(clientId);
      if (cached && nowMs - cached.checkedAtMs < CLIENT_STATUS_TTL_MS) return cached.active;
      let active: boolean;
      try {
        active = (await findActiveClient(deps.db, clientId)) !== undefined;
      } catch (error) {
        if (cached && isDatabaseUnavailable(error) && nowMs - cached.checkedAtMs < CLIENT_STATUS_STALE_LIMIT_MS) return cached.active;
        throw error;
      }
      entries.delete(clientId);
      if (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value as string);
      entries.set(clientId, { active, checkedAtMs: nowMs });
      return active;
    },
  };
}
