import { isAppError } from '../errors.ts';
import { checkAccessToken, type AccessCheckDeps } from './access-check.ts';

/** RFC 7662 section 2.2. Inactive tokens say nothing more, whatever the reason. */
export type Introspection =
  | { active: false }
  | {
      active: true;
      token_type: 'Bearer';
      iss: string;
      sub: string;
      aud: string;
      client_id: string;
      exp: number;
      iat: number;
      jti: string;
      /** Client tokens. */
      scope?: string;
      /** User tokens. */
      sid?: string;
      roles?: string[];
      email?: string;
      username?: string;
    };

const INACTIVE: Introspection = Object.freeze({ active: false });
const NOT_LIVE = new Set(['token_invalid', 'token_expired', 'token_revoked', 'token_missing']);

/**
 * What a resource server may learn of a token: its claims while it is live (auth/access-check.ts),
 * `{active:false}` for an expired, revoked, malformed or foreign one, a token of a deleted user or
 * client, or a refresh token (resource servers never hold those; the client that does learns by
 * using it). Only a failure to read a status (database away) is an error.
 */
export async function introspectToken(deps: AccessCheckDeps & { config: { jwt: { issuer: string } } }, token: string): Promise<Introspection> {
  let claims;
  try {
    claims = await checkAccessToken(deps, token, 'any');
  } catch (error) {
    if (isAppError(error) && NOT_LIVE.has(error.code)) return INACTIVE;
    throw error;
  }
  const common = {
    active: true as const,
    token_type: 'Bearer' as const,
    iss: deps.config.jwt.issuer,
    aud: claims.audience,
    client_id: claims.clientId,
    exp: claims.expiresAt,
    iat: claims.issuedAt,
    jti: claims.tokenId,
  };
  if (claims.kind === 'client') return { ...common, sub: claims.clientId, ...(claims.scopes.length > 0 ? { scope: claims.scopes.join(' ') } : {}) };
  return { ...common, sub: String(claims.userId), sid: claims.sessionId, roles: claims.roles, email: claims.email, username: claims.email };
}
