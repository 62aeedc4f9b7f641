import { checkReserved, lockoutReason, type LoginAttempt, type LoginLockout } from '../abuse/login-lockout.ts';
import type { RequestContext } from '../audit/events.ts';
import type { Config } from '../config.ts';
import { AppError, isAppError } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import { hasConfirmedTotp, spendSecondFactor, type MfaDeps } from '../mfa/factors.ts';
import { parseSecondFactorCode } from '../mfa/totp.ts';
import { findUserById } from '../storage/users.ts';
import { notifySecurityEvent, type SecurityNoticeDeps } from './security-notices.ts';

export interface ReauthenticationDeps extends MfaDeps, Pick<SecurityNoticeDeps, 'mailer' | 'shared'> {
  config: MfaDeps['config'] & { sessions: Pick<Config['sessions'], 'reauthMaxAgeSeconds'> };
  hasher: PasswordHasher;
  /** The password-change budgets (keyed by user): every password check behind an access token shares them. */
  passwordChangeLockout: LoginLockout;
  /** The code checks behind an access token (scope mfa, keyed by user): confirm, disable, regenerate share it. */
  mfaLockout: LoginLockout;
}

/** What is about to be added; goes into the audit event of a refusal. */
export type ReauthenticationPurpose = 'totp_enrol' | 'passkey_register' | 'email_change';

/**
 * Adding a way to sign in (a TOTP factor, a passkey) is what a thief holding a stolen access token
 * would do to keep the account, so an access token alone is not enough. Either the session was signed
 * into within REAUTH_MAX_AGE, or the request proves the user again:
 * - without TOTP: the password;
 * - with TOTP on: the password and a code (or a recovery code), and a recent session counts only if it
 *   was opened with a second factor (amr has mfa): a passkey signs in without TOTP, so adding one must
 *   ask as much as turning TOTP off does, or the password alone would buy a way around the code.
 * Each check is counted before it is made, the password on the budget password change and email change
 * share, the code on the one confirm/disable/regenerate share. Refreshing a session does not make it
 * recent: `created_at` is when the user last proved who they are.
 */
export async function requireReauthentication(
  deps: ReauthenticationDeps,
  auth: { userId: number; sessionId: string; amr: readonly string[] },
  proof: { password?: string | undefined; code?: string | undefined },
  purpose: ReauthenticationPurpose,
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<'password' | 'recent_sign_in'> {
  const audit = (action: 'user.reauthentication_failed' | 'user.lockout', reason: string, details: Record<string, unknown> = {}) =>
    deps.audit.record({
      action,
      outcome: 'failure',
      reason,
      actor: { type: 'user', id: String(auth.userId) },
      subject: { type: 'user', id: String(auth.userId) },
      ...(client.context ? { context: client.context } : {}),
      details: { purpose, ...details },
    });
  const maxAge = deps.config.sessions.reauthMaxAgeSeconds;
  // Only an account whose address was proved may add a way to sign in. Otherwise whoever signs up first with
  // someone else's address adds a passkey (or TOTP) and keeps it through the owner's password reset: the
  // reset proves the mailbox, replaces the password and ends sessions, but a factor would outlive all that.
  const owner = await findUserById(deps.db, auth.userId);
  if (!owner) throw new AppError('token_invalid', 'token subject no longer exists');
  // Moving to another address stays open to an unproved one: it is how a mistyped address is corrected.
  if (owner.email_verified_at === null && purpose !== 'email_change') {
    audit('user.reauthentication_failed', 'email_not_verified');
    throw new AppError('email_not_verified', 'verify the email address (open the link we sent) before adding a way to sign in');
  }
  const totpOn = await hasConfirmedTotp(deps.db, auth.userId);
  const required = (reason: string) => {
    audit('user.reauthentication_failed', reason);
    return new AppError('reauthentication_required', 'password required', {
      data: { reauthentication_required: true, max_age: maxAge, second_factor_required: totpOn },
    });
  };
  if (proof.password === undefined) {
    const session = await deps.db.selectFrom('sessions').select('created_at').where('id', '=', auth.sessionId).where('revoked_at', 'is', null).executeTakeFirst();
    const recent = session !== undefined && maxAge > 0 && deps.clock.nowSeconds() - Number(session.created_at) <= maxAge;
    if (recent && (!totpOn || auth.amr.includes('mfa'))) return 'recent_sign_in';
    throw required(recent ? 'second_factor_missing' : 'not_recent');
  }
  // Everything that can be said without checking a secret is said first: no answer tells whether the password was right.
  if (totpOn && proof.code === undefined) throw required('second_factor_missing');
  const code = totpOn ? parseSecondFactorCode(proof.code!) : undefined;
  const user = owner;

  const reserve = async (lockout: LoginLockout) => {
    try {
      return await lockout.reserve(`user:${user.id}`, client.network);
    } catch (error) {
      if (isAppError(error, 'rate_limited')) audit('user.reauthentication_failed', 'locked');
      throw error;
    }
  };
  const failed = (reason: string, attempt: LoginAttempt, scope: string) => {
    audit('user.reauthentication_failed', reason);
    if (attempt.lockoutIfFailed) {
      const { budget, seconds } = attempt.lockoutIfFailed;
      audit('user.lockout', lockoutReason(budget), { scope, lock_seconds: seconds });
      // The second step's run of wrong codes just locked (the password was right): the owner hears, as from /login/mfa.
      if (budget === 'streak') notifySecurityEvent(deps, auth.userId, 'mfa_login_locked');
    }
  };
  const passwordAttempt = await reserve(deps.passwordChangeLockout);
  const verified = await checkReserved(passwordAttempt, (onStarted) => deps.hasher.verify(user.password_hash, proof.password!, { ...options, onStarted }));
  if (!verified.matches) {
    failed('wrong_password', passwordAttempt, 'password_change');
    throw new AppError('wrong_password', 'password is incorrect');
  }
  await passwordAttempt.succeeded();
  if (code) {
    const codeAttempt = await reserve(deps.mfaLockout);
    if ((await spendSecondFactor(deps, user.id, code)) === undefined) {
      failed('wrong_code', codeAttempt, 'mfa');
      throw new AppError('mfa_invalid', 'incorrect code');
    }
    await codeAttempt.succeeded();
    if (code.kind === 'recovery') {
      deps.audit.record({
        action: 'user.recovery_code_used',
        actor: { type: 'user', id: String(auth.userId) },
        subject: { type: 'user', id: String(auth.userId) },
        ...(client.context ? { context: client.context } : {}),
        details: { purpose },
      });
    }
  }
  return 'password';
}
