import { randomBytes } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { DEFAULT_CLIENT_ID } from '../clients/clients.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import type { KeyStore } from '../keys/key-store.ts';

export const ACCESS_TOKEN_TYPE = 'at+jwt';
/** The `gty` claim of a client token: no user stands behind it. */
export const CLIENT_CREDENTIALS_GRANT = 'client_credentials';
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'exp', 'iat', 'jti'];
/** An unknown kid may mean another instance rotated keys; look again at most this often. */
const KEY_RELOAD_INTERVAL_SECONDS = 10;
/** Verified tokens remembered, so a client reusing its token pays for one signature check, not one per request. */
const VERIFIED_CACHE_ENTRIES = 10_000;
const USER_ID = /^[1-9]\d{0,15}$/;

interface CommonClaims {
  clientId: string;
  /** The `aud` claim: JWT_AUDIENCE, or the audience the client asked for and may ask for. */
  audience: string;
  tokenId: string;
  issuedAt: number;
  expiresAt: number;
}

/** A user's token: has sid, no gty, a numeric sub. */
export interface UserAccessClaims extends CommonClaims {
  kind: 'user';
  userId: number;
  sessionId: string;
  email: string;
  roles: string[];
  /** RFC 8176 methods the session was opened with (`pwd`, `otp`, `mfa`, `hwk`, `user`…); `["pwd"]` for older tokens. */
  amr: string[];
  /** OIDC's email_verified: false for tokens issued before it was carried. */
  emailVerified: boolean;
}

/** A service's own token (client_credentials): gty, sub equal to client_id, no sid. */
export interface ClientAccessClaims extends CommonClaims {
  kind: 'client';
  scopes: string[];
}

export type AccessClaims = UserAccessClaims | ClientAccessClaims;

export interface IssuedAccessToken {
  token: string;
  tokenId: string;
  expiresInSeconds: number;
}

export interface UserTokenSubject {
  userId: number;
  email: string;
  roles: string[];
  sessionId: string;
  /** DEFAULT_CLIENT_ID when absent. */
  clientId?: string;
  /** JWT_AUDIENCE when absent; the caller has checked the client may ask for it. */
  audience?: string | null;
  /** How the session was opened (RFC 8176); `["pwd"]` when absent. */
  amr?: readonly string[];
  /** Whether the user's email address is verified (the `email_verified` claim). */
  emailVerified?: boolean;
}

export interface ClientTokenSubject {
  clientId: string;
  scopes: readonly string[];
  audience?: string | null;
}

export interface AccessTokens {
  issueUserToken(subject: UserTokenSubject): Promise<IssuedAccessToken>;
  issueClientToken(subject: ClientTokenSubject): Promise<IssuedAccessToken>;
  /**
   * Any token Gatehouse issued, for any audience (introspection, revocation): signature, iss, typ,
   * exp and one of the two claim shapes. Throws AppError token_invalid or token_expired;
   * liveness (revocation, user and client status) is auth/access-check.ts's business.
   */
  verify(token: string): Promise<AccessClaims>;
  /** What Gatehouse's own routes accept: a user token whose aud is JWT_AUDIENCE. */
  verifyUserToken(token: string): Promise<UserAccessClaims>;
}

export interface AccessTokensDeps {
  keys: KeyStore;
  clock: Clock;
  config: Pick<Config, 'jwt'>;
}

export function createAccessTokens(deps: AccessTokensDeps): AccessTokens {
  const { issuer, audience: ownAudience, accessTokenTtlSeconds, clientTokenTtlSeconds } = deps.config.jwt;
  let lastReloadSeconds = 0;
  // Keyed by the exact token text: any other encoding of a token is verified from scratch.
  // Only the signature and claims checks are cached; revocation is the caller's check on every request.
  const verified = new Map<string, AccessClaims>();

  async function resolveKey(header: JWTHeaderParameters) {
    if (typeof header.kid !== 'string') throw new AppError('token_invalid', 'token has no kid');
    let key = deps.keys.verificationKey(header.kid);
    const now = deps.clock.nowSeconds();
    if (!key && now - lastReloadSeconds >= KEY_RELOAD_INTERVAL_SECONDS) {
      lastReloadSeconds = now;
      await deps.keys.reload();
      key = deps.keys.verificationKey(header.kid);
    }
    // Each key verifies only its own algorithm: no key confusion across algorithms.
    if (!key || key.algorithm !== header.alg) throw new AppError('token_invalid', 'unknown key');
    return key.publicKey;
  }

  async function sign(claims: JWTPayload, subject: string, audience: string, ttlSeconds: number): Promise<IssuedAccessToken> {
    const key = deps.keys.current();
    const issuedAt = deps.clock.nowSeconds();
    const tokenId = randomBytes(16).toString('base64url');
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.algorithm, typ: ACCESS_TOKEN_TYPE, kid: key.kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(subject)
      .setJti(tokenId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + ttlSeconds)
      .sign(key.privateKey);
    return { token, tokenId, expiresInSeconds: ttlSeconds };
  }

  async function verify(token: string): Promise<AccessClaims> {
    const now = deps.clock.now();
    const nowSeconds = Math.floor(now.getTime() / 1000);
    const cached = verified.get(token);
    if (cached) {
      if (cached.expiresAt > nowSeconds && cached.issuedAt <= nowSeconds) return cached;
      verified.delete(token);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, resolveKey, {
        algorithms: deps.keys.acceptedAlgorithms(),
        issuer,
        typ: ACCESS_TOKEN_TYPE,
        requiredClaims: REQUIRED_CLAIMS,
        currentDate: now,
        clockTolerance: 0,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new AppError('token_expired', 'token has expired', {}, { cause: error });
      if (error instanceof AppError) throw error;
      throw new AppError('token_invalid', 'token failed verification', {}, { cause: error });
    }
    const claims = readClaims(payload, nowSeconds);
    if (verified.size >= VERIFIED_CACHE_ENTRIES) verified.delete(verified.keys().next().value as string);
    verified.set(token, claims);
    return claims;
  }

  return {
    issueUserToken(subject) {
      const claims = {
        client_id: subject.clientId ?? DEFAULT_CLIENT_ID,
        email: subject.email,
        email_verified: subject.emailVerified ?? false,
        roles: subject.roles,
        sid: subject.sessionId,
        amr: subject.amr ?? ['pwd'],
      };
      return sign(claims, String(subject.userId), subject.audience ?? ownAudience, accessTokenTtlSeconds);
    },

    issueClientToken(subject) {
      const claims = {
        client_id: subject.clientId,
        gty: CLIENT_CREDENTIALS_GRANT,
        // RFC 9068 section 2.2.3: space-separated; left out rather than empty.
        ...(subject.scopes.length > 0 ? { scope: subject.scopes.join(' ') } : {}),
      };
      return sign(claims, subject.clientId, subject.audience ?? ownAudience, clientTokenTtlSeconds);
    },

    verify,

    async verifyUserToken(token) {
      const claims = await verify(token);
      // A service's token, or a user's token meant for another API, opens nothing here.
      if (claims.kind !== 'user' || claims.audience !== ownAudience) throw new AppError('token_invalid', 'not a user token for this audience');
      return claims;
    },
  };
}

const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value.length > 0;

/** jose checked signature, iss, exp, nbf, typ and that the registered claims are present; these are the checks it leaves to us. */
function readClaims(payload: JWTPayload, nowSeconds: number): AccessClaims {
  const { sub, sid, jti, iat, exp, aud, email, roles, client_id: clientId, gty, scope, amr, email_verified: emailVerified } = payload;
  const common =
    typeof sub === 'string' && isNonEmptyString(jti) && isNonEmptyString(aud) && typeof iat === 'number' && iat <= nowSeconds && typeof exp === 'number';
  if (!common) throw malformed();
  if (gty !== undefined) {
    // A client token: never mistaken for a user's, whatever else it carries.
    const valid = gty === CLIENT_CREDENTIALS_GRANT && isNonEmptyString(clientId) && sub === clientId && sid === undefined && (scope === undefined || typeof scope === 'string');
    if (!valid) throw malformed();
    return Object.freeze({
      kind: 'client' as const,
      clientId,
      audience: aud,
      tokenId: jti,
      issuedAt: iat,
      expiresAt: exp,
      scopes: Object.freeze(typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []) as string[],
    });
  }
  const valid =
    USER_ID.test(sub) &&
    isNonEmptyString(sid) &&
    // Tokens signed before clients existed carry no client_id: they stood for the default client.
    (clientId === undefined || isNonEmptyString(clientId)) &&
    (roles === undefined || (Array.isArray(roles) && roles.every((role) => typeof role === 'string'))) &&
    (amr === undefined || (Array.isArray(amr) && amr.every((method) => typeof method === 'string'))) &&
    (emailVerified === undefined || typeof emailVerified === 'boolean');
  if (!valid) throw malformed();
  return Object.freeze({
    kind: 'user' as const,
    userId: Number(sub),
    sessionId: sid,
    clientId: clientId ?? DEFAULT_CLIENT_ID,
    audience: aud,
    tokenId: jti,
    email: typeof email === 'string' ? email : '',
    roles: Object.freeze([...((roles as string[] | undefined) ?? [])]) as string[],
    amr: Object.freeze([...((amr as string[] | undefined) ?? ['pwd'])]) as string[],
    emailVerified: emailVerified === true,
    issuedAt: iat,
    expiresAt: exp,
  });
}

function malformed(): AppError {
  return new AppError('token_invalid', 'token claims are malformed or issued in the future');
}
