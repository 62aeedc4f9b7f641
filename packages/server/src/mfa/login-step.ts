import { lockoutReason, type LoginAttempt, type LoginLockout } from '../abuse/login-lockout.ts';
import { AppError, isAppError } from '../errors.ts';
import type { LoginDeps, LoginResult } from '../auth/login.ts';
import { assertMayLogIn } from '../auth/email-verification.ts';
import { notifySecurityEvent, type SecurityNoticeDeps } from '../auth/security-notices.ts';
import { startSession, type SessionClient } from '../auth/sessions.ts';
import type { RequestContext } from '../audit/events.ts';
import { findUserById } from '../storage/users.ts';
import { toPublicUser } from '../users/user.ts';
import { AMR_OF, spendSecondFactor, type MfaDeps, type SecondFactorMethod } from './factors.ts';
import { generateTicket, hashTicket, parseSecondFactorCode, passwordCheck } from './totp.ts';

/** How long the second step of a login may take: enough to open an app and type six digits. */
export const MFA_TICKET_TTL_SECONDS = 300;
/** Codes one ticket may try; then the user starts over with the password (which the lockout counts too). */
export const MFA_TICKET_MAX_ATTEMPTS = 5;

export type MfaLoginDeps = LoginDeps &
  MfaDeps &
  Pick<SecurityNoticeDeps, 'mailer'> & {
    shared: SecurityNoticeDeps['shared'];
    /**
     * Wrong codes of the second step, per account (and network, and in a row: SECOND_STEP_STREAK): only a
     * right code clears them, never the password, so the lock grows for someone who has the password and
     * guesses codes.
     */
    mfaLoginLockout: LoginLockout;
  };

export interface MfaChallenge {
  ticket: string;
  expiresInSeconds: number;
}

/**
 * The password was right and the user has TOTP on: a ticket for POST /login/mfa instead of tokens.
 * Only its hash is stored, with the client and audience the login asked for (the session opens for
 * those) and a fingerprint of the password hash checked (a password changed meanwhile voids it).
 */
export async function issueMfaTicket(deps: Pick<MfaLoginDeps, 'db' | 'clock'>, subject: { userId: number; passwordHash: string }, sessionClient: SessionClient): Promise<MfaChallenge> {
  const now = deps.clock.nowSeconds();
  const { ticket, hash } = generateTicket();
  // The user's spent and expired tickets go as a new one comes: the table stays as small as the logins in flight.
  await deps.db
    .deleteFrom('mfa_tickets')
    .where('user_id', '=', subject.userId)
    .where((eb) => eb.or([eb('expires_at', '<=', now), eb('used_at', 'is not', null)]))
    .execute();
  await deps.db
    .insertInto('mfa_tickets')
    .values({
      ticket_hash: hash,
      user_id: subject.userId,
      client_id: sessionClient.clientId,
      audience: sessionClient.audience,
      created_at: now,
      expires_at: now + MFA_TICKET_TTL_SECONDS,
      attempts: 0,
      used_at: null,
      password_check: passwordCheck(subject.passwordHash),
    })
    .execute();
  return { ticket, expiresInSeconds: MFA_TICKET_TTL_SECONDS };
}

/**
 * The second step of a login: a live ticket and a TOTP code (or a recovery code) for the session.
 * Each try is counted on the ticket before the code is checked (at most MFA_TICKET_MAX_ATTEMPTS),
 * and on the account's login lockout (a wrong code is a failed login); the success resets both.
 */
export async function completeMfaLogin(
  deps: MfaLoginDeps,
  input: { ticket: string; code: string; clientId?: string },
  client: { network: string; context?: RequestContext },
): Promise<LoginResult & { method: SecondFactorMethod }> {
  const code = parseSecondFactorCode(input.code);
  const now = deps.clock.nowSeconds();
  const ticketHash = hashTicket(input.ticket);
  const audit = (event: { action: 'user.mfa_failed' | 'user.lockout' | 'user.login_failed'; reason: string; userId?: number; details?: Record<string, unknown> }) =>
    deps.audit.record({
      action: event.action,
      outcome: 'failure',
      reason: event.reason,
      actor: { type: 'anonymous' },
      ...(event.userId !== undefined ? { subject: { type: 'user', id: String(event.userId) } } : {}),
      ...(client.context ? { context: client.context } : {}),
      details: { scope: 'login', ...event.details },
    });
  const invalidTicket = (reason: string, userId?: number) => {
    audit({ action: 'user.mfa_failed', reason, ...(userId !== undefined ? { userId } : {}) });
    return new AppError('mfa_ticket_invalid', 'the MFA ticket is invalid or expired');
  };

  // Counted before the code is checked, in one conditional update: concurrent tries cannot outrun the limit.
  const ticket = await deps.db
    .updateTable('mfa_tickets')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('ticket_hash', '=', ticketHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .where('attempts', '<', MFA_TICKET_MAX_ATTEMPTS)
    .returning(['user_id', 'client_id', 'audience', 'password_check'])
    .executeTakeFirst();
  if (!ticket) throw invalidTicket('ticket_invalid');
  const userId = Number(ticket.user_id);
  // The ticket is for the client that logged in; another client naming itself gets nothing.
  if (input.clientId !== undefined && input.clientId !== ticket.client_id) throw invalidTicket('ticket_other_client', userId);
  const user = await findUserById(deps.db, userId);
  if (!user || user.disabled_at !== null || ticket.password_check !== passwordCheck(user.password_hash)) {
    await deps.db.deleteFrom('mfa_tickets').where('ticket_hash', '=', ticketHash).execute();
    throw invalidTicket(!user ? 'user_gone' : user.disabled_at !== null ? 'disabled' : 'password_changed', userId);
  }
  // REQUIRE_EMAIL_VERIFICATION holds at the second step too (an address changed meanwhile is unverified again).
  assertMayLogIn(deps.config, user);

  // Counted on both budgets before the code is checked: the second step's own, and the login's (a wrong
  // code is a failed login; while either is locked, this answers 429, and so does the password step for the login's).
  let attempts: LoginAttempt[];
  try {
    attempts = await reserveBoth(deps, userId, user.email_normalized, client.network);
  } catch (error) {
    if (isAppError(error, 'rate_limited')) audit({ action: 'user.login_failed', reason: 'locked', userId, details: { method: 'mfa' } });
    throw error;
  }
  // The ticket is claimed and the code spent in one transaction, the ticket first: of requests finishing
  // one ticket at once, the losers wait on its row and then find it spent, so none of them uses up a
  // recovery code for nothing; a wrong code rolls the claim back (the ticket keeps its remaining tries).
  let outcome: SecondFactorMethod | 'ticket_spent' | undefined;
  try {
    outcome = await deps.db.transaction().execute(async (trx) => {
      const claimed = await trx.updateTable('mfa_tickets').set({ used_at: now }).where('ticket_hash', '=', ticketHash).where('used_at', 'is', null).executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) return 'ticket_spent' as const;
      const method = await spendSecondFactor({ ...deps, db: trx }, userId, code);
      if (!method) throw WRONG_CODE;
      return method;
    });
  } catch (error) {
    if (error !== WRONG_CODE) {
      // No code was judged (the database failed): the tries are given back, as when hashing refuses a password.
      await Promise.all(attempts.map((attempt) => attempt.abandoned()));
      throw error;
    }
    outcome = undefined;
  }
  if (outcome === 'ticket_spent') {
    // Another request finished this ticket first; this one's code was never checked.
    await Promise.all(attempts.map((attempt) => attempt.abandoned()));
    throw invalidTicket('ticket_spent', userId);
  }
  const method = outcome;
  if (!method) {
    audit({ action: 'user.mfa_failed', reason: 'wrong_code', userId, details: { code_kind: code.kind } });
    for (const [index, attempt] of attempts.entries()) {
      if (!attempt.lockoutIfFailed) continue;
      const { budget, seconds } = attempt.lockoutIfFailed;
      audit({ action: 'user.lockout', reason: lockoutReason(budget), userId, details: { scope: index === 0 ? 'mfa_login' : 'login', lock_seconds: seconds } });
      // Someone has the password and is guessing codes: the owner should change it, and hears so now.
      if (index === 0 && budget === 'streak') notifySecurityEvent(deps, userId, 'mfa_login_locked');
    }
    throw new AppError('mfa_invalid', 'incorrect code');
  }
  await Promise.all(attempts.map((attempt) => attempt.succeeded()));

  // Opened only while the user is enabled and has the password the ticket was won with (auth/sessions.ts).
  const sessionClient = { clientId: ticket.client_id, audience: ticket.audience };
  const started = await startSession(deps, { userId, passwordHash: user.password_hash, amr: AMR_OF[method] }, sessionClient);
  if (!started) throw invalidTicket('changed_during_login', userId);
  if (method === 'recovery_code') {
    deps.audit.record({
      action: 'user.recovery_code_used',
      actor: { type: 'user', id: String(userId) },
      subject: { type: 'user', id: String(userId) },
      ...(client.context ? { context: client.context } : {}),
      details: { purpose: 'login' },
    });
  }
  deps.audit.record({
    action: 'user.login',
    actor: { type: 'user', id: String(userId) },
    subject: { type: 'user', id: String(userId) },
    ...(client.context ? { context: client.context } : {}),
    details: { session_id: started.tokens.sessionId, client_id: ticket.client_id, method },
  });
  return { user: toPublicUser(started.user), tokens: started.tokens, method };
}

/** Thrown inside the transaction to roll the ticket's claim back. */
const WRONG_CODE = Symbol('wrong code');

/** The second step's attempt, then the login's; the first given back if the second refuses. */
async function reserveBoth(deps: MfaLoginDeps, userId: number, emailNormalized: string, network: string): Promise<LoginAttempt[]> {
  const own = await deps.mfaLoginLockout.reserve(`user:${userId}`, network);
  try {
    return [own, await deps.loginLockout.reserve(emailNormalized, network)];
  } catch (error) {
    await own.abandoned();
    throw error;
  }
}

/** Tickets nothing can use any more (expired or spent), for the periodic purge (background/tasks.ts). */
export async function deleteDeadMfaTickets(db: MfaLoginDeps['db'], now: number): Promise<number> {
  const result = await db
    .deleteFrom('mfa_tickets')
    .where((eb) => eb.or([eb('expires_at', '<=', now), eb('used_at', 'is not', null)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
