import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { revokeSessions } from '../storage/sessions.ts';
import type { Database } from '../storage/schema.ts';
import type { Denylist } from '../tokens/denylist.ts';

export type RevocationReason = 'logout' | 'logout_all' | 'password_change' | 'refresh_token_reuse' | 'account_disabled';

export interface RevocationDeps {
  db: Kysely<Database>;
  clock: Clock;
  denylist: Denylist;
}

/** Revokes sessions in the database (the source of truth), then refuses their access tokens at once in this process. */
export async function revokeAndDeny(
  deps: RevocationDeps,
  filter: { sessionId?: string; userId?: number; exceptSessionId?: string },
  reason: RevocationReason,
): Promise<string[]> {
  const now = deps.clock.nowSeconds();
  const revoked = await revokeSessions(deps.db, filter, now, reason);
  deps.denylist.addSessions(revoked, now);
  return revoked;
}
