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

/** Revokes sessions in the database, then refuses their access tokens at once in this process. */
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

export async function logout(deps: RevocationDeps, auth: { userId: number; sessionId: string }, options: { all: boolean }): Promise<void> {
  // The auth guard already refused revoked sessions, so the current one is among those revoked here.
  if (options.all) await revokeAndDeny(deps, { userId: auth.userId }, 'logout_all');
  else await revokeAndDeny(deps, { sessionId: auth.sessionId }, 'logout');
}
