import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { insertSessionForUser } from '../storage/sessions.ts';
import type { UserRow } from '../storage/users.ts';
import { parseRoles } from '../users/user.ts';
import type { Database } from '../storage/schema.ts';
import type { AccessTokens } from '../tokens/access-tokens.ts';
import { generateRefreshToken, hashRefreshToken } from '../tokens/refresh-tokens.ts';

export interface SessionTokens {
  accessToken: string;
  expiresInSeconds: number;
  refreshToken: string;
  sessionId: string;
}

export interface SessionDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'jwt' | 'sessions'>;
  accessTokens: AccessTokens;
}

/** Whom the session is for; with passwordHash, only while the user still has that password (login). */
export interface SessionSubject {
  userId: number;
  passwordHash?: string;
  /** How the user signed in (RFC 8176): `["pwd"]` by default; kept on the session for every refresh. */
  amr?: readonly string[];
}

/** Who the session's tokens are for: the client signed in through, and the audience (null: JWT_AUDIENCE) it may ask for. */
export interface SessionClient {
  clientId: string;
  audience: string | null;
}

/**
 * A new session: its first refresh token (stored hashed) and an access token bound to it by sid,
 * carrying the email and roles the user has as the session opens (storage/sessions.ts
 * insertSessionForUser). The session remembers its client and audience, so every refresh issues
 * tokens for the same ones. Undefined when the user may not have a session any more (deleted,
 * disabled, or the password changed since it was checked).
 */
export async function startSession(deps: SessionDeps, subject: SessionSubject, sessionClient: SessionClient): Promise<{ tokens: SessionTokens; user: UserRow } | undefined> {
  const now = deps.clock.nowSeconds();
  const sessionId = randomBytes(16).toString('base64url');
  const refreshToken = generateRefreshToken();
  const expiresAt = sessionExpiresAt(deps.config, now, now);
  const user = await insertSessionForUser(
    deps.db,
    { userId: subject.userId, passwordHash: subject.passwordHash },
    {
      id: sessionId,
      user_id: subject.userId,
      created_at: now,
      last_refreshed_at: now,
      expires_at: expiresAt,
      revoked_at: null,
      revoked_reason: null,
      client_id: sessionClient.clientId,
      audience: sessionClient.audience,
      amr: JSON.stringify(subject.amr ?? ['pwd']),
    },
    { token_hash: hashRefreshToken(refreshToken), session_id: sessionId, parent_hash: null, created_at: now, expires_at: expiresAt, used_at: null, child_hash: null },
  );
  if (!user) return undefined;
  const access = await deps.accessTokens.issueUserToken({
    userId: subject.userId,
    email: user.email,
    emailVerified: user.email_verified_at !== null,
    roles: parseRoles(user.roles),
    amr: subject.amr ?? ['pwd'],
    sessionId,
    ...sessionClient,
  });
  return { tokens: { accessToken: access.token, expiresInSeconds: access.expiresInSeconds, refreshToken, sessionId }, user };
}

/**
 * A session slides: each refresh extends it by REFRESH_TOKEN_TTL, but never past
 * SESSION_MAX_AGE after login, so a client refreshing forever still has to sign in again.
 */
export function sessionExpiresAt(config: Pick<Config, 'jwt' | 'sessions'>, createdAt: number, now: number): number {
  return Math.min(now + config.jwt.refreshTokenTtlSeconds, createdAt + config.sessions.maxAgeSeconds);
}

/** Whether a session may still refresh: not revoked, not expired, within SESSION_MAX_AGE of login. */
export function isSessionLive(config: Pick<Config, 'sessions'>, session: { revoked_at: number | null; expires_at: number; created_at: number }, now: number): boolean {
  return session.revoked_at === null && session.expires_at > now && session.created_at > now - config.sessions.maxAgeSeconds;
}
