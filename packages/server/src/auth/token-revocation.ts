import type { AuditLog, RequestContext } from '../audit/events.ts';
import { findActiveClient } from '../clients/clients.ts';
import { isAppError } from '../errors.ts';
import { findRefreshToken, findSession } from '../storage/sessions.ts';
import type { AccessTokens } from '../tokens/access-tokens.ts';
import { hashRefreshToken, looksLikeRefreshToken } from '../tokens/refresh-tokens.ts';
import { revokeAndDeny, type RevocationDeps } from './revocation.ts';

export interface TokenRevocationDeps extends RevocationDeps {
  accessTokens: AccessTokens;
  audit: Pick<AuditLog, 'record'>;
}

/**
 * RFC 7009: revokes the session behind a refresh token or an access token, when that token was
 * issued to the client asking. Anything else (unknown, malformed, expired, another client's, a
 * session already over) changes nothing and is no error: the answer never tells a token's state.
 * The token is told apart by its shape, so a wrong token_type_hint costs nothing.
 * A client token has no session to end: its own client learns so (`client_token`: the token
 * endpoint answers unsupported_token_type).
 * A caller that names no client (the seed's logout with the refresh token alone) may revoke the
 * session of any public client, as POST /token/refresh without client_id may refresh one: a public
 * client's tokens are bearer credentials, and refusing would leave a user believing they logged out.
 */
export async function revokeToken(
  deps: TokenRevocationDeps,
  token: string,
  caller: { clientId: string; anyPublicClient: boolean; authenticated?: boolean; context?: RequestContext },
): Promise<'revoked' | 'ignored' | 'client_token'> {
  // Only what was revoked is recorded: a token that changed nothing says nothing about anyone.
  const revoked = async (sessionId: string, userId: number | string, sessionClientId: string) => {
    const sessions = await revokeAndDeny(deps, { sessionId }, 'token_revocation');
    if (sessions.length === 0) return; // already over
    deps.audit.record({
      action: 'token.revoke',
      // The token is the credential: an authenticated confidential client acts as itself; a public one may be anyone holding the token.
      actor: caller.authenticated ? { type: 'client', id: caller.clientId } : { type: 'anonymous' },
      subject: { type: 'user', id: String(userId) },
      ...(caller.context ? { context: caller.context } : {}),
      details: { session_id: sessionId, client_id: sessionClientId },
    });
  };
  const mayRevoke = async (sessionClientId: string) =>
    sessionClientId === caller.clientId || (caller.anyPublicClient && (await findActiveClient(deps.db, sessionClientId))?.type === 'public');
  if (looksLikeRefreshToken(token)) {
    const row = await findRefreshToken(deps.db, hashRefreshToken(token));
    const session = row ? await findSession(deps.db, row.session_id) : undefined;
    if (!session || !(await mayRevoke(session.client_id))) return 'ignored';
    await revoked(session.id, session.user_id, session.client_id);
    return 'revoked';
  }
  let claims;
  try {
    claims = await deps.accessTokens.verify(token);
  } catch (error) {
    if (isAppError(error)) return 'ignored'; // malformed, foreign or expired: nothing left to revoke
    throw error;
  }
  if (claims.kind === 'client') return claims.clientId === caller.clientId ? 'client_token' : 'ignored';
  if (!(await mayRevoke(claims.clientId))) return 'ignored';
  await revoked(claims.sessionId, claims.userId, claims.clientId);
  return 'revoked';
}
