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
  | 'refresh_token_reuse'
  | 'account_disabled'
  /** POST /revoke (RFC 7009). */
  | 'token_revocation'
  /** `gatehouse clients delete`: the client's sessions end with it. */
  | 'client_deleted'
  /** `gatehouse clients disable`: its sessions end for good. */
  | 'client_disabled';

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
  deps.denylist.addSessions(revoked, now);
  // The other workers and instances hear of it now rather than at their next database sync.
  if (revoked.length > 0) deps.shared.revocations.publish({ sessionIds: revoked, revokedAt: now });
  return revoked;
}
