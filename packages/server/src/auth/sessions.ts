import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { insertSessionWithToken } from '../storage/sessions.ts';
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

export interface SessionSubject {
  userId: number;
  email: string;
  roles: string[];
}

/** A new session: its first refresh token (stored hashed) and an access token bound to it by sid. */
export async function startSession(deps: SessionDeps, subject: SessionSubject): Promise<SessionTokens> {
  const now = deps.clock.nowSeconds();
  const sessionId = randomBytes(16).toString('base64url');
  const refreshToken = generateRefreshToken();
  const expiresAt = sessionExpiresAt(deps.config, now, now);
  await insertSessionWithToken(
    deps.db,
    { id: sessionId, user_id: subject.userId, created_at: now, last_refreshed_at: now, expires_at: expiresAt, revoked_at: null, revoked_reason: null },
    { token_hash: hashRefreshToken(refreshToken), session_id: sessionId, parent_hash: null, created_at: now, expires_at: expiresAt, used_at: null, child_hash: null },
  );
  const access = await deps.accessTokens.issue({ ...subject, sessionId });
  return { accessToken: access.token, expiresInSeconds: access.expiresInSeconds, refreshToken, sessionId };
}

/**
 * A session slides: each refresh extends it by REFRESH_TOKEN_TTL, but never past
 * SESSION_MAX_AGE after login, so a client refreshing forever still has to sign in again.
 */
export function sessionExpiresAt(config: Pick<Config, 'jwt' | 'sessions'>, createdAt: number, now: number): number {
  return Math.min(now + config.jwt.refreshTokenTtlSeconds, createdAt + config.sessions.maxAgeSeconds);
}
