import { checkReserved, lockoutReason, type LoginAttempt, type LoginLockout } from '../abuse/login-lockout.ts';
import type { AuditLog, RequestContext } from '../audit/events.ts';
import type { Config } from '../config.ts';
import { AppError, isAppError } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import { findUserByNormalizedEmail, updatePasswordHash } from '../storage/users.ts';
import { normalizeEmail, parseRoles, toPublicUser, type PublicUser } from '../users/user.ts';
import { DEFAULT_CLIENT_ID } from '../clients/clients.ts';
import { hasConfirmedTotp } from '../mfa/factors.ts';
import { issueMfaTicket, type MfaChallenge } from '../mfa/login-step.ts';
import { assertMayLogIn } from './email-verification.ts';
import { startSession, type SessionClient, type SessionDeps, type SessionTokens } from './sessions.ts';

export interface LoginDeps extends Omit<SessionDeps, 'config'> {
  config: SessionDeps['config'] & Pick<Config, 'requireEmailVerification'>;
  hasher: PasswordHasher;
  loginLockout: LoginLockout;
  audit: Pick<AuditLog, 'record'>;
}

/** Why a login failed: stored in the audit log, never told to the client (one answer for all of them). */
export type LoginFailureReason = 'unknown_email' | 'wrong_password' | 'disabled' | 'locked' | 'changed_during_login' | 'email_not_verified' | 'mfa_required';

export interface LoginResult {
  user: PublicUser;
  tokens: SessionTokens;
}

/** The password was right but the user has a second factor: no tokens yet (POST /login/mfa); no ticket for `mfa: 'refuse'`. */
export interface MfaRequired {
  mfaRequired: true;
  challenge?: MfaChallenge;
}

const DEFAULT_SESSION_CLIENT: SessionClient = Object.freeze({ clientId: DEFAULT_CLIENT_ID, audience: null });

/**
 * Email and password for a new session. `sessionClient` (the client signed in through and the
 * audience asked for) has been checked by the caller: a public client named by /login, or the client
 * the token endpoint identified or authenticated.
 */
export async function login(
  deps: LoginDeps,
  input: { email: string; password: string; sessionClient?: SessionClient; mfa?: 'ticket' | 'refuse' },
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<LoginResult | MfaRequired> {
  const emailNormalized = normalizeEmail(input.email);
  const clientId = input.sessionClient?.clientId ?? DEFAULT_CLIENT_ID;
  const failed = (reason: LoginFailureReason, userId?: number | string) =>
    deps.audit.record({
      action: 'user.login_failed',
      outcome: 'failure',
      reason,
      actor: { type: 'anonymous' },
      ...(userId !== undefined ? { subject: { type: 'user', id: String(userId) } } : {}),
      ...(client.context ? { context: client.context } : {}),
      // The email as typed (the account tried), only when it looks like one: a password typed into the email field stays out.
      details: { ...typedEmail(input.email), client_id: clientId },
    });
  // Counted before the password is checked: concurrent guesses cannot outrun the limit.
  let attempt: LoginAttempt;
  try {
    attempt = await deps.loginLockout.reserve(emailNormalized, client.network);
  } catch (error) {
    if (isAppError(error, 'rate_limited')) failed('locked');
    throw error;
  }
  const { user, verified } = await checkReserved(attempt, async (onStarted) => {
    const jobOptions = { ...options, onStarted };
    const found = await findUserByNormalizedEmail(deps.db, emailNormalized);
    // Hash the password anyway so an unknown email costs what a wrong password costs.
    if (!found) {
      await deps.hasher.verifyDummy(input.password, jobOptions);
      return { user: undefined, verified: undefined };
    }
    return { user: found, verified: await deps.hasher.verify(found.password_hash, input.password, jobOptions) };
  });
  // Disabled accounts get the same answer, after the same work, as a wrong password.
  if (!user || !verified?.matches || user.disabled_at !== null) {
    failed(!user ? 'unknown_email' : !verified?.matches ? 'wrong_password' : 'disabled', user?.id);
    if (attempt.lockoutIfFailed) {
      deps.audit.record({
        action: 'user.lockout',
        outcome: 'failure',
        reason: lockoutReason(attempt.lockoutIfFailed.budget),
        actor: { type: 'anonymous' },
        ...(user ? { subject: { type: 'user', id: String(user.id) } } : {}),
        ...(client.context ? { context: client.context } : {}),
        details: { ...typedEmail(input.email), scope: 'login', lock_seconds: attempt.lockoutIfFailed.seconds },
      });
    }
    throw invalidCredentials(input.email);
  }
  await attempt.succeeded();
  // REQUIRE_EMAIL_VERIFICATION: only once the password matched, so the distinct answer tells only the owner.
  try {
    assertMayLogIn(deps.config, user);
  } catch (error) {
    failed('email_not_verified', user.id);
    throw error;
  }
  // A right password clears the password budgets even with a second factor pending: wrong codes are
  // counted on a budget of their own too, which only a right code clears (mfa/login-step.ts), so
  // someone who has the password gains no code guesses by logging in again.
  const mfa = await hasConfirmedTotp(deps.db, Number(user.id));

  let checkedHash = user.password_hash;
  if (verified.needsRehash) {
    // Imported (werkzeug, bcrypt), outdated or un-normalised hashes become Argon2id of the NFKC form once the
    // password is known. Best effort: a full hashing queue must not turn a verified login into a 503.
    checkedHash = await rehash(deps, user.id, input.password, checkedHash);
  }
  if (mfa) {
    // The OAuth password grant has no second step to offer: the client is told to use POST /login.
    if (input.mfa === 'refuse') {
      failed('mfa_required', user.id);
      return { mfaRequired: true };
    }
    return { mfaRequired: true, challenge: await issueMfaTicket(deps, { userId: Number(user.id), passwordHash: checkedHash }, input.sessionClient ?? DEFAULT_SESSION_CLIENT) };
  }
  // Opened only if the account is still there, enabled, with the password just checked: an admin
  // change or a password change made while the hash was being checked wins (auth/sessions.ts).
  const started = await startSession(deps, { userId: Number(user.id), passwordHash: checkedHash }, input.sessionClient ?? DEFAULT_SESSION_CLIENT);
  if (!started) {
    failed('changed_during_login', user.id);
    throw invalidCredentials(input.email);
  }
  const { tokens } = started;
  deps.audit.record({
    action: 'user.login',
    actor: { type: 'user', id: String(user.id) },
    subject: { type: 'user', id: String(user.id) },
    ...(client.context ? { context: client.context } : {}),
    details: { session_id: tokens.sessionId, client_id: clientId },
  });
  return { user: toPublicUser(started.user), tokens };
}

/**
 * The hash the user has afterwards: the new one, or the checked one when hashing was refused (the
 * next login tries again) or the password changed meanwhile (the update is conditional on the
 * checked hash, so an old password never overwrites a new one).
 */
async function rehash(deps: LoginDeps, userId: number, password: string, checkedHash: string): Promise<string> {
  let passwordHash: string;
  try {
    passwordHash = await deps.hasher.hash(password);
  } catch (error) {
    if (isAppError(error, 'unavailable')) return checkedHash;
    throw error;
  }
  const replaced = await updatePasswordHash(deps.db, userId, passwordHash, deps.clock.nowSeconds(), { replacing: checkedHash });
  return replaced ? passwordHash : checkedHash;
}

const EMAIL_SHAPE = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;

/** What the audit log keeps of the email a failed login typed: the address if it is one, else only that it was not. */
export function typedEmail(email: string): { email: string } | { email_invalid: true } {
  return email.length <= 254 && EMAIL_SHAPE.test(email) ? { email } : { email_invalid: true };
}

/** The seed echoes the email (never the password) in the failure body. */
function invalidCredentials(email: string): AppError {
  return new AppError('invalid_credentials', 'incorrect user email or password', { data: { email } });
}
