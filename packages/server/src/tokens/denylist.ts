import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { listRecentlyRevokedSessions } from '../storage/sessions.ts';
import type { Database } from '../storage/schema.ts';

/**
 * Sessions whose access tokens Gatehouse refuses before they expire.
 * Checked on every authenticated request, so it lives in memory: a Map lookup, no query.
 * The database stays the source of truth: entries are loaded at start and polled
 * from it, so a revocation made by another instance arrives within one poll.
 * Keyed by the session id (the sid claim), never by token text, so a re-encoded token
 * cannot slip past. Every revocation Gatehouse makes (logout, password change, reuse,
 * disable) ends a session; none targets a single token.
 */
/**
 * How long past revocation + ACCESS_TOKEN_TTL a revoked session is still refused. An access token
 * can be issued a moment after the revocation committed (a refresh that passed its checks just
 * before, or another instance whose clock runs a little ahead), so it may expire that much later.
 */
export const REVOCATION_MARGIN_SECONDS = 60;

export interface Denylist {
  isRevoked(sessionId: string): boolean;
  /** Remember sessions revoked now; their access tokens die at most accessTokenTtlSeconds (+ the margin) later. */
  addSessions(sessionIds: readonly string[], revokedAt: number): void;
  /** Re-read revocations from the database (start, and periodically for other instances' revocations). */
  sync(): Promise<void>;
  /** Drop entries whose access tokens have all expired. */
  prune(): void;
  readonly size: number;
  /** Every session refused now: session id → the time after which its access tokens have all expired. */
  entries(): IterableIterator<[sessionId: string, refusedUntil: number]>;
  /**
   * Told of each session newly refused (or refused longer), however this process heard of it: its own
   * revocation, another process's news, or the database sync. The revocation feed's log is built on it.
   * Returns the function that stops the telling.
   */
  onRevoked(listener: (sessionId: string, refusedUntil: number) => void): () => void;
}

export interface DenylistDeps {
  db: Kysely<Database>;
  clock: Clock;
  accessTokenTtlSeconds: number;
}

export function createDenylist(deps: DenylistDeps): Denylist {
  /** session id → the time after which no access token of it can still be valid. */
  const revokedSessions = new Map<string, number>();
  let syncedUpTo: number | undefined;

  /** The last moment an access token of a session revoked at revokedAt can still be valid. */
  const refusedUntil = (revokedAt: number) => revokedAt + deps.accessTokenTtlSeconds + REVOCATION_MARGIN_SECONDS;

  const listeners = new Set<(sessionId: string, refusedUntil: number) => void>();

  function remember(sessionId: string, revokedAt: number): void {
    const until = refusedUntil(revokedAt);
    if ((revokedSessions.get(sessionId) ?? 0) >= until) return;
    revokedSessions.set(sessionId, until);
    for (const listener of listeners) listener(sessionId, until);
  }

  return {
    isRevoked(sessionId) {
      return revokedSessions.has(sessionId);
    },
    addSessions(sessionIds, revokedAt) {
      for (const id of sessionIds) remember(id, revokedAt);
    },
    async sync() {
      const now = deps.clock.nowSeconds();
      // Overlap the previous window by the margin: another instance's clock may run behind ours,
      // so a revocation it commits now can carry a revoked_at older than our last sync.
      const since = (syncedUpTo === undefined ? now - deps.accessTokenTtlSeconds : Math.min(syncedUpTo, now)) - REVOCATION_MARGIN_SECONDS;
      for (const session of await listRecentlyRevokedSessions(deps.db, since)) remember(session.id, session.revoked_at);
      syncedUpTo = now;
    },
    prune() {
      const now = deps.clock.nowSeconds();
      for (const [sessionId, until] of revokedSessions) if (until <= now) revokedSessions.delete(sessionId);
    },
    get size() {
      return revokedSessions.size;
    },
    entries() {
      return revokedSessions.entries();
    },
    onRevoked(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
