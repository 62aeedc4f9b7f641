import type { Kysely } from 'kysely';
import { checkReserved, lockoutReason, type LoginLockout } from '../abuse/login-lockout.ts';
import type { AuditLog, RequestContext } from '../audit/events.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { AppError, isAppError } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import type { Database } from '../storage/schema.ts';
import { findUserById } from '../storage/users.ts';

export interface ReauthenticationDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: { sessions: Pick<Config['sessions'], 'reauthMaxAgeSeconds'> };
  hasher: PasswordHasher;
  /** The password-change budgets (keyed by user): every password check behind an access token shares them. */
  passwordChangeLockout: LoginLockout;
  audit: Pick<AuditLog, 'record'>;
}

/** What is about to be added; goes into the audit event of a refusal. */
export type ReauthenticationPurpose = 'totp_enrol' | 'passkey_register';

/**
 * Adding a way to sign in (a TOTP factor, a passkey) is what a thief holding a stolen access token
 * would do to keep the account, so an access token alone is not enough: the session must have been
 * signed into within REAUTH_MAX_AGE (by whatever the account signs in with: password, password and
 * code, passkey), or the request carries the password. The password check is counted before it is
 * made, on the budget password change and email change share, so this is no free password oracle.
 * Refreshing a session does not make it recent: `created_at` is when the user last proved who they are.
 */
export async function requireReauthentication(
  deps: ReauthenticationDeps,
  auth: { userId: number; sessionId: string },
  password: string | undefined,
  purpose: ReauthenticationPurpose,
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<'password' | 'recent_sign_in'> {
  const audit = (reason: string) =>
    deps.audit.record({
      action: 'user.reauthentication_failed',
      outcome: 'failure',
      reason,
      actor: { type: 'user', id: String(auth.userId) },
      subject: { type: 'user', id: String(auth.userId) },
      ...(client.context ? { context: client.context } : {}),
      details: { purpose },
    });
  if (password === undefined) {
    const session = await deps.db.selectFrom('sessions').select('created_at').where('id', '=', auth.sessionId).executeTakeFirst();
    const maxAge = deps.config.sessions.reauthMaxAgeSeconds;
    if (session && maxAge > 0 && deps.clock.nowSeconds() - Number(session.created_at) <= maxAge) return 'recent_sign_in';
    audit('not_recent');
    throw new AppError('reauthentication_required', 'password required', { data: { reauthentication_required: true, max_age: maxAge } });
  }
  const user = await findUserById(deps.db, auth.userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  let attempt;
  try {
    attempt = await deps.passwordChangeLockout.reserve(`user:${user.id}`, client.network);
  } catch (error) {
    if (isAppError(error, 'rate_limited')) audit('locked');
    throw error;
  }
  const verified = await checkReserved(attempt, (onStarted) => deps.hasher.verify(user.password_hash, password, { ...options, onStarted }));
  if (!verified.matches) {
    audit('wrong_password');
    if (attempt.lockoutIfFailed) {
      const { budget, seconds } = attempt.lockoutIfFailed;
      deps.audit.record({
        action: 'user.lockout',
        outcome: 'failure',
        reason: lockoutReason(budget),
        actor: { type: 'user', id: String(auth.userId) },
        subject: { type: 'user', id: String(auth.userId) },
        ...(client.context ? { context: client.context } : {}),
        details: { scope: 'password_change', lock_seconds: seconds },
      });
    }
    throw new AppError('wrong_password', 'password is incorrect');
  }
  await attempt.succeeded();
  return 'password';
}
