import { checkReserved, lockoutReason, type LoginLockout } from '../abuse/login-lockout.ts';
import type { AuditLog, RequestContext } from '../audit/events.ts';
import { AppError, invalidInput, isAppError } from '../errors.ts';
import type { JobOptions, PasswordHasher, PasswordPolicy } from '../passwords/index.ts';
import { findUserById, updatePasswordHash } from '../storage/users.ts';
import { spendUserEmailTokens } from './email-tokens.ts';
import { revokeAndDeny, type RevocationDeps } from './revocation.ts';
import { notifySecurityEvent, type SecurityNoticeDeps } from './security-notices.ts';

export interface ChangePasswordDeps extends RevocationDeps, Omit<SecurityNoticeDeps, 'shared'> {
  shared: RevocationDeps['shared'] & SecurityNoticeDeps['shared'];
  hasher: PasswordHasher;
  passwordPolicy: PasswordPolicy;
  /** Its own budgets (scope password-change), keyed by user id: a stolen access token is no free password oracle. */
  passwordChangeLockout: LoginLockout;
  /**
   * The second step's budgets (and its run of wrong codes) end with the old password only when the session
   * changing it was opened with a second factor (amr has mfa, e.g. a passkey sign-in): that is how an owner
   * kept out by a guesser ends the lock. A session opened with the password alone proves nothing the guesser
   * lacks, so its change leaves the run as it is (else: ten guesses, change, ten more). A reset by email never ends it.
   */
  mfaLoginLockout: Pick<LoginLockout, 'forget'>;
  audit: Pick<AuditLog, 'record'>;
}

/**
 * Verifies the current password, stores the new one, and ends every other session of the user.
 * Everything that can be said about the new password is said before the current one is checked,
 * so no answer depends on whether a guessed current password was right except the success itself,
 * and every check of it is counted first.
 */
export async function changePassword(
  deps: ChangePasswordDeps,
  auth: { userId: number; sessionId: string; amr: readonly string[] },
  input: { current_password: string; new_password: string },
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<void> {
  const audit = (event: { outcome?: 'failure'; reason?: string; details?: Record<string, unknown> }, action: 'user.password_change' | 'user.lockout' = 'user.password_change') =>
    deps.audit.record({
      action,
      ...event,
      actor: { type: 'user', id: String(auth.userId) },
      subject: { type: 'user', id: String(auth.userId) },
      ...(client.context ? { context: client.context } : {}),
    });
  const user = await findUserById(deps.db, auth.userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  // The hasher stores NFKC forms, so the policy and the comparison judge those too.
  const newPassword = input.new_password.normalize('NFKC');
  const problem = await deps.passwordPolicy.check(newPassword, { email: user.email, name: user.name });
  if (problem) throw invalidInput([{ field: 'new_password', message: problem.message.replace(/^password/, 'new_password') }]);
  if (newPassword === input.current_password.normalize('NFKC')) {
    throw invalidInput([{ field: 'new_password', message: 'new_password must differ from current_password' }]);
  }
  let attempt;
  try {
    attempt = await deps.passwordChangeLockout.reserve(`user:${user.id}`, client.network);
  } catch (error) {
    if (isAppError(error, 'rate_limited')) audit({ outcome: 'failure', reason: 'locked' });
    throw error;
  }
  const verified = await checkReserved(attempt, (onStarted) => deps.hasher.verify(user.password_hash, input.current_password, { ...options, onStarted }));
  if (!verified.matches) {
    audit({ outcome: 'failure', reason: 'wrong_password' });
    if (attempt.lockoutIfFailed) {
      const { budget, seconds } = attempt.lockoutIfFailed;
      audit({ outcome: 'failure', reason: lockoutReason(budget), details: { scope: 'password_change', lock_seconds: seconds } }, 'user.lockout');
    }
    throw new AppError('wrong_password', 'current password is incorrect');
  }
  await attempt.succeeded();
  // Only over the hash just checked: of two changes racing with the same current password, the second is refused.
  const replaced = await updatePasswordHash(deps.db, user.id, await deps.hasher.hash(newPassword, options), deps.clock.nowSeconds(), { replacing: user.password_hash });
  if (!replaced) {
    audit({ outcome: 'failure', reason: 'changed_meanwhile' });
    throw new AppError('wrong_password', 'the password changed while this request was checked');
  }
  // Links asked for before the change (a reset, a move to another address) may be the thief's: spent.
  const now = deps.clock.nowSeconds();
  await spendUserEmailTokens(deps.db, user.id, ['reset_password', 'change_email'], now);
  const revoked = await revokeAndDeny(deps, { userId: user.id, exceptSessionId: auth.sessionId }, 'password_change');
  audit({ details: { session_id: auth.sessionId, revoked_sessions: revoked.length } });
  if (auth.amr.includes('mfa')) await deps.mfaLoginLockout.forget(`user:${user.id}`);
  notifySecurityEvent(deps, user.id, 'password_changed');
}
