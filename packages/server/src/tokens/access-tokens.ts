import { randomBytes } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import type { KeyStore } from '../keys/key-store.ts';

export const ACCESS_TOKEN_TYPE = 'at+jwt';
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'exp', 'iat', 'jti', 'sid'];
/** An unknown kid may mean another instance rotated keys; look again at most this often. */
const KEY_RELOAD_INTERVAL_SECONDS = 10;
/** Verified tokens remembered, so a client reusing its token pays for one signature check, not one per request. */
const VERIFIED_CACHE_ENTRIES = 10_000;

export interface AccessClaims {
  userId: number;
  sessionId: string;
  tokenId: string;
  email: string;
  roles: string[];
  issuedAt: number;
  expiresAt: number;
}

export interface IssuedAccessToken {
  token: string;
  tokenId: string;
  expiresInSeconds: number;
}

export interface AccessTokens {
  issue(subject: { userId: number; email: string; roles: string[]; sessionId: string }): Promise<IssuedAccessToken>;
  /** Throws AppError token_invalid or token_expired; revocation is the caller's check. */
  verify(token: string): Promise<AccessClaims>;
}

export interface AccessTokensDeps {
  keys: KeyStore;
  clock: Clock;
  config: Pick<Config, 'jwt'>;
}

export function createAccessTokens(deps: AccessTokensDeps): AccessTokens {
  const { issuer, audience, accessTokenTtlSeconds } = deps.config.jwt;
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

  return {
    async issue(subject) {
      const key = deps.keys.current();
      const issuedAt = deps.clock.nowSeconds();
      const tokenId = randomBytes(16).toString('base64url');
      const token = await new SignJWT({ email: subject.email, roles: subject.roles, sid: subject.sessionId })
        .setProtectedHeader({ alg: key.algorithm, typ: ACCESS_TOKEN_TYPE, kid: key.kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(String(subject.userId))
        .setJti(tokenId)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + accessTokenTtlSeconds)
        .sign(key.privateKey);
      return { token, tokenId, expiresInSeconds: accessTokenTtlSeconds };
    },

    async verify(token) {
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
          audience,
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
    },
  };
}

/** jose checked signature, iss, aud, exp, nbf and typ; these are the checks it leaves to us. */
function readClaims(payload: JWTPayload, nowSeconds: number): AccessClaims {
  const { sub, sid, jti, iat, exp, email, roles } = payload;
  const valid =
    typeof sub === 'string' &&
    /^[1-9]\d{0,15}$/.test(sub) &&
    typeof sid === 'string' &&
    sid.length > 0 &&
    typeof jti === 'string' &&
    jti.length > 0 &&
    typeof iat === 'number' &&
    iat <= nowSeconds &&
    typeof exp === 'number' &&
    (roles === undefined || (Array.isArray(roles) && roles.every((role) => typeof role === 'string')));
  if (!valid) throw new AppError('token_invalid', 'token claims are malformed or issued in the future');
  return Object.freeze({
    userId: Number(sub),
    sessionId: sid,
    tokenId: jti,
    email: typeof email === 'string' ? email : '',
    roles: Object.freeze([...((roles as string[] | undefined) ?? [])]) as string[],
    issuedAt: iat,
    expiresAt: exp,
  });
}
