import { DEFAULT_CLIENT_ID } from '../clients/clients.ts';
import { AppError } from '../errors.ts';
import type { ClientStatusCache } from '../clients/status-cache.ts';
import type { AccessClaims, AccessTokens, UserAccessClaims } from '../tokens/access-tokens.ts';
import type { Denylist } from '../tokens/denylist.ts';
import type { UserStatusCache } from '../users/status-cache.ts';

export interface AccessCheckDeps {
  accessTokens: AccessTokens;
  denylist: Pick<Denylist, 'isRevoked'>;
  userStatus: UserStatusCache;
  clientStatus: ClientStatusCache;
}

/** `own`: what Gatehouse's routes accept (a user token for JWT_AUDIENCE); `any`: every token Gatehouse issued (introspection). */
export type AccessCheckAudience = 'own' | 'any';

/**
 * Is this access token live: signed by us with the claims of a user token or a client token
 * (tokens/access-tokens.ts), and then
 * - a user token: its session not revoked (the in-memory denylist, no query), the client it was
 *   issued through still there and enabled, its user still there and enabled (status caches, at
 *   most a second old);
 * - a client token: its client still there and enabled (clients/status-cache.ts).
 * Throws AppError token_invalid, token_expired or token_revoked (unavailable when a status
 * cannot be read); the HTTP guard, /introspect and the revocation feed all ask here.
 */
export async function checkAccessToken(deps: AccessCheckDeps, token: string, audience: 'own'): Promise<UserAccessClaims>;
export async function checkAccessToken(deps: AccessCheckDeps, token: string, audience: AccessCheckAudience): Promise<AccessClaims>;
export async function checkAccessToken(deps: AccessCheckDeps, token: string, audience: AccessCheckAudience): Promise<AccessClaims> {
  const claims = audience === 'own' ? await deps.accessTokens.verifyUserToken(token) : await deps.accessTokens.verify(token);
  if (claims.kind === 'client') {
    if (!(await deps.clientStatus.isActive(claims.clientId))) throw new AppError('token_revoked', 'client deleted or disabled');
    return claims;
  }
  if (deps.denylist.isRevoked(claims.sessionId)) throw new AppError('token_revoked', 'session revoked');
  // Signed in through an application that has since been disabled (or deleted): its sessions are over.
  // The default client is never deleted, so the seed's tokens skip the lookup.
  if (claims.clientId !== DEFAULT_CLIENT_ID && !(await deps.clientStatus.isActive(claims.clientId))) throw new AppError('token_revoked', 'client deleted or disabled');
  const status = await deps.userStatus.statusOf(claims.userId);
  if (status === 'missing') throw new AppError('token_invalid', 'token subject no longer exists');
  if (status === 'disabled') throw new AppError('token_revoked', 'user is disabled');
  return claims;
}
