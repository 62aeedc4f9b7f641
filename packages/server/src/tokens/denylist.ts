import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { listRecentlyRevokedSessions } from '../storage/sessions.ts';
import type { Database } from '../storage/schema.ts';

/**
 * Sessions and token ids whose access tokens Gatehouse refuses before they expire.
 * Checked on every authenticated request, so it lives in memory: a Map lookup, no query.
 * The database stays the source of truth: entries are loaded at start and polled
 * from it, so a revocation made by another instance arrives within one poll.
 * Keyed by sid and jti, never by token text, so a re-encoded token cannot slip past.
 */
export interface Denylist {
  isRevoked(sessionId: string, tokenId: string): boolean;
  /** Remember sessions revoked now; their access tokens die at most accessTokenTtlSeconds later. */
  addSessions(sessionIds: readonly string[], revokedAt: number): void;
  /** Re-read revocations from the database (start, and periodically for other instances' revocations). */
  sync(): Promise<void>;
  /** Drop entries whose access tokens have all expired. */
  prune(): void;
  readonly size: number;
}

export interface DenylistDeps {
  db: Kysely<Database>;
  clock: Clock;
  accessTokenTtlSeconds: number;
}

export function createDenylist(deps: DenylistDeps): Denylist {
  /** session id → the time after which no access token of it can still be valid. */
  const revokedSessions = new Map<string, number>();
  const revokedTokenIds = new Map<string, number>();
  let syncedUpTo: number | undefined;

  function remember(map: Map<string, number>, key: string, until: number): void {
    if ((map.get(key) ?? 0) < until) map.set(key, until);
  }

  return {
    isRevoked(sessionId, tokenId) {
      return revokedSessions.has(sessionId) || revokedTokenIds.has(tokenId);
    },
    addSessions(sessionIds, revokedAt) {
      for (const id of sessionIds) remember(revokedSessions, id, revokedAt + deps.accessTokenTtlSeconds);
    },
    async sync() {
      const now = deps.clock.nowSeconds();
      // Overlap the previous window a little: clocks of instances differ slightly.
      const since = syncedUpTo === undefined ? now - deps.accessTokenTtlSeconds : Math.min(syncedUpTo, now) - 5;
      for (const session of await listRecentlyRevokedSessions(deps.db, since)) {
        remember(revokedSessions, session.id, session.revoked_at + deps.accessTokenTtlSeconds);
      }
      const tokens = await deps.db.selectFrom('revoked_tokens').select(['jti', 'expires_at']).where('expires_at', '>', now).execute();
      for (const token of tokens) remember(revokedTokenIds, token.jti, Number(token.expires_at));
      syncedUpTo = now;
    },
    prune() {
      const now = deps.clock.nowSeconds();
      for (const map of [revokedSessions, revokedTokenIds]) {
        for (const [key, until] of map) if (until <= now) map.delete(key);
      }
    },
    get size() {
      return revokedSessions.size + revokedTokenIds.size;
    },
  };
}
