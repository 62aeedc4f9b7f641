import type { Kysely } from 'kysely';
import { AppError } from '../errors.ts';
import { extendLiveSession, findRefreshToken, findSession, insertRefreshToken, spendRefreshToken, type RefreshTokenRow, type SessionRow } from '../storage/sessions.ts';
import type { Database } from '../storage/schema.ts';
import { findUserById } from '../storage/users.ts';
import type { Denylist } from '../tokens/denylist.ts';
import { deriveChildRefreshToken, hashRefreshToken, looksLikeRefreshToken } from '../tokens/refresh-tokens.ts';
import { parseRoles, toPublicUser, type PublicUser } from '../users/user.ts';
import { revokeAndDeny, type RevocationDeps } from './revocation.ts';
import { sessionExpiresAt, type SessionDeps, type SessionTokens } from './sessions.ts';

export interface RefreshDeps extends SessionDeps, RevocationDeps {
  denylist: Denylist;
  refreshDerivationSecret: Buffer;
}

export interface RefreshResult {
  user: PublicUser;
  tokens: SessionTokens;
}

/**
 * Rotation with reuse detection. The presented token is spent and its child issued
 * in the same session. A token already spent is either a retry (within the grace
 * window, before the child was used: the same child is returned again) or reuse
 * (the whole session is revoked).
 */
export async function refreshSession(deps: RefreshDeps, presentedToken: string): Promise<RefreshResult> {
  if (!looksLikeRefreshToken(presentedToken)) throw refreshInvalid();
  const now = deps.clock.nowSeconds();
  const tokenHash = hashRefreshToken(presentedToken);
  const childToken = deriveChildRefreshToken(presentedToken, deps.refreshDerivationSecret);
  const childHash = hashRefreshToken(childToken);

  const token = await findRefreshToken(deps.db, tokenHash);
  if (!token) throw refreshInvalid();
  const session = await findSession(deps.db, token.session_id);
  const maxAgeCutoff = now - deps.config.sessions.maxAgeSeconds;
  if (!session || session.revoked_at !== null || session.expires_at <= now || session.created_at <= maxAgeCutoff || token.expires_at <= now) {
    throw refreshInvalid();
  }
  const user = await findUserById(deps.db, session.user_id);
  if (!user || user.disabled_at !== null) throw refreshInvalid();

  const outcome = token.used_at === null ? await spendAndIssueChild(deps, token, session, childHash, now) : 'already_spent';
  // Revoked (or expired) after the read above: refuse rather than hand out tokens of a dead session.
  if (outcome === 'session_ended') throw refreshInvalid();
  if (outcome === 'already_spent') {
    // Spent before (or by a concurrent request a moment ago): a retry, or reuse.
    const spent = await findRefreshToken(deps.db, tokenHash);
    const child = spent?.child_hash ? await findRefreshToken(deps.db, spent.child_hash) : undefined;
    const isRetry =
      spent?.used_at != null &&
      now - spent.used_at < deps.config.jwt.refreshReuseGraceSeconds &&
      spent.child_hash === childHash &&
      child !== undefined &&
      child.used_at === null;
    if (!isRetry) {
      await revokeAndDeny(deps, { sessionId: session.id }, 'refresh_token_reuse');
      throw refreshInvalid();
    }
  }

  const access = await deps.accessTokens.issue({ userId: user.id, email: user.email, roles: parseRoles(user.roles), sessionId: session.id });
  return {
    user: toPublicUser(user),
    tokens: { accessToken: access.token, expiresInSeconds: access.expiresInSeconds, refreshToken: childToken, sessionId: session.id },
  };
}

type SpendOutcome = 'spent' | 'already_spent' | 'session_ended';

/**
 * Spends the token, stores its child and extends the session in one transaction.
 * 'already_spent' when another request spent the token first; 'session_ended' (nothing
 * written) when the session was revoked or expired since it was read.
 */
async function spendAndIssueChild(
  deps: Pick<RefreshDeps, 'db' | 'config'>,
  token: RefreshTokenRow,
  session: SessionRow,
  childHash: string,
  now: number,
): Promise<SpendOutcome> {
  const expiresAt = sessionExpiresAt(deps.config, Number(session.created_at), now);
  try {
    return await deps.db.transaction().execute(async (trx) => {
      if (!(await spendRefreshToken(trx, token.token_hash, childHash, now))) return 'already_spent';
      const extended = await extendLiveSession(trx, token.session_id, { now, expiresAt, createdAfter: now - deps.config.sessions.maxAgeSeconds });
      // Throwing rolls the spend back: the token stays as it was, of a session that is over.
      if (!extended) throw SESSION_ENDED;
      await insertRefreshToken(trx, {
        token_hash: childHash,
        session_id: token.session_id,
        parent_hash: token.token_hash,
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
        child_hash: null,
      });
      return 'spent';
    });
  } catch (error) {
    if (error === SESSION_ENDED) return 'session_ended';
    throw error;
  }
}

const SESSION_ENDED = new Error('session ended during refresh');

function refreshInvalid(): AppError {
  return new AppError('refresh_invalid', 'refresh token is invalid');
}
