import type { AuditLog, RequestContext } from '../audit/events.ts';
import { findActiveClient, mayRequestAudience } from '../clients/clients.ts';
import { AppError } from '../errors.ts';
import { extendLiveSession, findRefreshToken, findSession, insertRefreshToken, spendRefreshToken, type RefreshTokenRow, type SessionRow } from '../storage/sessions.ts';
import { findUserById } from '../storage/users.ts';
import type { Denylist } from '../tokens/denylist.ts';
import { deriveChildRefreshToken, hashRefreshToken, looksLikeRefreshToken } from '../tokens/refresh-tokens.ts';
import { parseRoles, toPublicUser, type PublicUser } from '../users/user.ts';
import { revokeAndDeny, type RevocationDeps } from './revocation.ts';
import { isSessionLive, sessionExpiresAt, type SessionDeps, type SessionTokens } from './sessions.ts';
import { audienceForClient, type RequestedAudience } from './token-request.ts';

export interface RefreshDeps extends SessionDeps, RevocationDeps {
  denylist: Denylist;
  refreshDerivationSecret: Buffer;
  audit: Pick<AuditLog, 'record'>;
}

export interface RefreshRequest {
  /**
   * The client asking: a public one named by client_id, or a confidential one that authenticated.
   * Absent: the session's own client, which must then be public.
   */
  client?: { id: string; authenticated: boolean };
  /** Another audience for this access token; the session keeps its own. */
  audience?: RequestedAudience;
  /** Where the request came from, for the audit log. */
  context?: RequestContext;
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
export async function refreshSession(deps: RefreshDeps, presentedToken: string, request: RefreshRequest = {}): Promise<RefreshResult> {
  if (!looksLikeRefreshToken(presentedToken)) throw refreshInvalid();
  const now = deps.clock.nowSeconds();
  const tokenHash = hashRefreshToken(presentedToken);
  const childToken = deriveChildRefreshToken(presentedToken, deps.refreshDerivationSecret);
  const childHash = hashRefreshToken(childToken);

  const token = await findRefreshToken(deps.db, tokenHash);
  if (!token) throw refreshInvalid();
  const session = await findSession(deps.db, token.session_id);
  if (!session || !isSessionLive(deps.config, session, now) || token.expires_at <= now) throw refreshInvalid();
  // Before anything is spent: a refusal here leaves the token as it was.
  const audience = await audienceOfRefresh(deps, session, request);
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
      // Whoever presented it may be the thief or the user: the actor is unknown, the session's user is the subject.
      deps.audit.record({
        action: 'session.refresh_reuse',
        outcome: 'failure',
        reason: 'refresh_token_reuse',
        actor: { type: 'anonymous' },
        subject: { type: 'user', id: String(user.id) },
        ...(request.context ? { context: request.context } : {}),
        details: { session_id: session.id, client_id: session.client_id },
      });
      throw refreshInvalid();
    }
  }

  const access = await deps.accessTokens.issueUserToken({
    userId: user.id,
    email: user.email,
    emailVerified: user.email_verified_at !== null,
    roles: parseRoles(user.roles),
    amr: parseAmr(session.amr),
    sessionId: session.id,
    clientId: session.client_id,
    audience,
  });
  deps.audit.record({
    action: 'session.refresh',
    actor: { type: 'user', id: String(user.id) },
    subject: { type: 'user', id: String(user.id) },
    ...(request.context ? { context: request.context } : {}),
    details: { session_id: session.id, client_id: session.client_id, ...(outcome === 'already_spent' ? { retry: true } : {}) },
  });
  return {
    user: toPublicUser(user),
    tokens: { accessToken: access.token, expiresInSeconds: access.expiresInSeconds, refreshToken: childToken, sessionId: session.id },
  };
}

/**
 * A refresh token is bound to the client it was issued to (RFC 6749 section 6): only that client may
 * spend it, only while it exists and is enabled, and a confidential client only with its secret.
 * Returns the audience of the new access token: the one asked for if the client may ask for it, else
 * the session's own, as long as the client may still ask for that.
 */
async function audienceOfRefresh(deps: RefreshDeps, session: SessionRow, request: RefreshRequest): Promise<string | null> {
  const client = await findActiveClient(deps.db, session.client_id);
  const wrongClient = request.client !== undefined && request.client.id !== session.client_id;
  if (!client || wrongClient || (client.type === 'confidential' && request.client?.authenticated !== true)) throw refreshInvalid();
  if (request.audience) return audienceForClient(client, request.audience, deps.config.jwt.audience);
  if (session.audience !== null && !mayRequestAudience(client, session.audience, deps.config.jwt.audience)) throw refreshInvalid();
  return session.audience;
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

/** The session's amr as stored (a JSON array of strings); `["pwd"]` if it is anything else. */
function parseAmr(stored: string): string[] {
  try {
    const amr: unknown = JSON.parse(stored);
    if (Array.isArray(amr) && amr.length > 0 && amr.every((method) => typeof method === 'string')) return amr;
  } catch {
    // fall through
  }
  return ['pwd'];
}
