import type { JWTPayload } from 'jose';
import { VerifyError } from './errors.ts';

interface CommonClaims {
  /** `iss`: the Gatehouse that issued the token. */
  readonly issuer: string;
  /** `aud`: the API the token is for (one of the verifier's audiences). */
  readonly audience: string | readonly string[];
  /** `sub`: a user id (decimal string) for user tokens, the client id for client tokens. */
  readonly subject: string;
  /** `client_id`: the application the user signed in through, or the service itself for a client token. */
  readonly clientId: string;
  /** `jti` */
  readonly tokenId: string;
  /** `iat`, epoch seconds. */
  readonly issuedAt: number;
  /** `exp`, epoch seconds. */
  readonly expiresAt: number;
  /** `scope`, split on spaces; empty when the token carries none. */
  readonly scopes: readonly string[];
  /** The whole verified payload, for claims this type does not name. */
  readonly payload: Readonly<JWTPayload>;
}

/** A token Gatehouse issued to a signed-in user (login or refresh): it has a session. */
export interface UserClaims extends CommonClaims {
  readonly kind: 'user';
  /** `sub` again: the user's id, a decimal string. */
  readonly userId: string;
  /** `sid`: the session; a logout revokes it. */
  readonly sessionId: string;
  readonly email: string;
  readonly roles: readonly string[];
}

/** A token a service obtained for itself (grant_type=client_credentials): no user, no session, no roles. */
export interface ClientClaims extends CommonClaims {
  readonly kind: 'client';
}

export type Claims = UserClaims | ClientClaims;

const USER_ID = /^[1-9]\d{0,15}$/;
/**
 * Gatehouse's access tokens before clients existed carry no client_id; every one of them was issued
 * through what is now the default public client, so a token minted during an upgrade still verifies.
 */
const DEFAULT_CLIENT_ID = 'gatehouse';

const invalid = (message: string) => new VerifyError('token_invalid', message);

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? [...value] : undefined;
}

/**
 * Tells the two kinds of Gatehouse access token apart, strictly, so neither passes for the other:
 * a user token has a `sid`, no `gty` and a numeric `sub`; a client token has
 * `gty: "client_credentials"`, `sub` equal to `client_id`, and no `sid`.
 * jose has checked the signature, typ, iss, aud, exp and the presence of the required claims.
 */
export function readClaims(payload: JWTPayload, nowSeconds: number, clockToleranceSeconds: number): Claims {
  const { iss, aud, sub, jti, iat, exp, sid, gty, scope } = payload;
  const clientIdClaim = payload.client_id;
  if (typeof iss !== 'string' || (typeof aud !== 'string' && !stringList(aud))) throw invalid('token has no issuer or audience');
  if (typeof sub !== 'string' || sub.length === 0 || typeof jti !== 'string' || jti.length === 0) throw invalid('token has no subject or token id');
  if (typeof iat !== 'number' || typeof exp !== 'number') throw invalid('token has no issue or expiry time');
  // jose checks iat only against a maximum age; a token from the future is refused here.
  if (iat > nowSeconds + clockToleranceSeconds) throw invalid('token is issued in the future');
  if (scope !== undefined && typeof scope !== 'string') throw invalid('token scope is malformed');
  if (clientIdClaim !== undefined && (typeof clientIdClaim !== 'string' || clientIdClaim.length === 0)) throw invalid('token client_id is malformed');
  const common = {
    issuer: iss,
    audience: typeof aud === 'string' ? aud : Object.freeze(stringList(aud)!),
    subject: sub,
    tokenId: jti,
    issuedAt: iat,
    expiresAt: exp,
    scopes: Object.freeze(scope ? scope.split(' ').filter(Boolean) : []),
    payload: Object.freeze({ ...payload }),
  };

  if (gty === 'client_credentials') {
    if (sid !== undefined) throw invalid('a client token has no session');
    if (clientIdClaim !== sub) throw invalid('a client token is its own subject');
    return Object.freeze({ kind: 'client', ...common, clientId: sub });
  }
  if (gty !== undefined) throw invalid('unknown grant type');
  if (typeof sid !== 'string' || sid.length === 0) throw invalid('a user token has a session');
  if (!USER_ID.test(sub)) throw invalid('a user token has a numeric subject');
  const roles = payload.roles === undefined ? [] : stringList(payload.roles);
  if (!roles) throw invalid('token roles are malformed');
  const email = payload.email === undefined ? '' : payload.email;
  if (typeof email !== 'string') throw invalid('token email is malformed');
  return Object.freeze({
    kind: 'user',
    ...common,
    clientId: (clientIdClaim as string | undefined) ?? DEFAULT_CLIENT_ID,
    userId: sub,
    sessionId: sid,
    email,
    roles: Object.freeze(roles),
  });
}
