import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { revokeSessions } from '../storage/sessions.ts';
import type { Database } from '../storage/schema.ts';
import type { RevocationBus } from '../shared/index.ts';
import type { Denylist } from '../tokens/denylist.ts';

export type RevocationReason =
  | 'logout'
  | 'logout_all'
  | 'password_change'
  /** POST /password/reset: every session of the user ends. */
  | 'password_reset'
  | 'refresh_token_reuse'
  | 'account_disabled'
  /** POST /revoke (RFC 7009). */
  | 'token_revocation'
  /** `gatehouse clients delete`: the client's sessions end with it. */
  | 'client_deleted'
  /** `gatehouse clients disable`: its sessions end for good. */
  | 'client_disabled'
  /** Admin API / CLI: the account was deleted (its sessions are revoked before the rows go). */
  | 'account_deleted'
  /** Admin API / CLI: a role was taken away, so tokens carrying it must not live on. */
  | 'roles_changed'
  /** Admin API / CLI: the email, which tokens carry, changed. */
  | 'email_changed'
  /** Admin API / CLI: an admin ended this session, or every session of the user. */
  | 'admin_revoked';

export interface RevocationDeps {
  db: Kysely<Database>;
  clock: Clock;
  denylist: Denylist;
  shared: { revocations: RevocationBus };
}

/** Revokes sessions in the database (the source of truth), refuses their access tokens at once here, and tells the other processes. */
export async function revokeAndDeny(
  deps: RevocationDeps,
  filter: { sessionId?: string; userId?: number; clientId?: string; exceptSessionId?: string },
  reason: RevocationReason,
): Promise<string[]> {
  const now = deps.clock.nowSeconds();
  const revoked = await revokeSessions(deps.db, filter, now, reason);
  announceRevocations(deps, revoked, now);
  return revoked;
}

/**
 * For sessions revoked inside a caller's transaction, once it has committed: refuse their access
 * tokens here at once (and so in this process's revocation feed), and tell the other processes.
 */
export function announceRevocations(
  deps: { denylist: Pick<Denylist, 'addSessions'>; shared: { revocations: RevocationBus } },
  sessionIds: readonly string[],
  revokedAt: number,
): void {
  deps.denylist.addSessions(sessionIds, revokedAt);
  // The other workers and instances hear of it now rather than at their next database sync.
  if (sessionIds.length > 0) deps.shared.revocations.publish({ sessionIds: [...sessionIds], revokedAt });
}
