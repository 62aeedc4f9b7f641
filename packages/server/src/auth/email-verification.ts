import type { RequestContext } from '../audit/events.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import { findUserById, findUserByNormalizedEmail, type UserRow } from '../storage/users.ts';
import { normalizeEmail } from '../users/user.ts';
import { countClientRequest, emailLink, linkInvalid, mayMailAddress, withContext, type EmailFlowDeps } from './email-common.ts';
import { issueEmailToken, spendEmailToken, spendUserEmailTokens, ttlInWords } from './email-tokens.ts';

/**
 * REQUIRE_EMAIL_VERIFICATION: called by every way of signing in (password login, the OAuth password
 * grant, passkeys) once the credential has been checked, so the refusal tells only the account's
 * owner something, never a guesser.
 */
export function assertMayLogIn(config: Pick<Config, 'requireEmailVerification'>, user: { email_verified_at: number | null }): void {
  if (config.requireEmailVerification && user.email_verified_at === null) {
    throw new AppError('email_not_verified', 'email address not verified - open the link we sent, or ask for a new one with POST /email/verify/resend');
  }
}

/** Issues a verification link for the user's current address and queues the message, within the address's hourly budget. */
async function sendVerification(deps: EmailFlowDeps, user: UserRow, context: RequestContext | undefined, audited: boolean): Promise<void> {
  if (user.disabled_at !== null || user.email_verified_at !== null) return;
  if (!(await mayMailAddress(deps, 'verify_email', user.email_normalized))) {
    if (audited) record(deps, user, context, { outcome: 'failure', reason: 'throttled' });
    return;
  }
  const token = await issueEmailToken(deps.db, { purpose: 'verify_email', userId: Number(user.id), email: user.email, now: deps.clock.nowSeconds() });
  deps.mailer.send({
    // Unverified by definition: no name (see addresseeName).
    to: { name: '', address: user.email },
    template: 'verify_email',
    values: { name: '', email: user.email, link: emailLink(deps.config, 'verify_email', token), expires: ttlInWords('verify_email'), new_email: '' },
  });
  if (audited) record(deps, user, context, {});
}

function record(deps: EmailFlowDeps, user: UserRow, context: RequestContext | undefined, event: { outcome?: 'failure'; reason?: string }) {
  deps.audit.record({
    action: 'user.email_verification_sent',
    ...event,
    actor: { type: 'user', id: String(user.id) },
    subject: { type: 'user', id: String(user.id) },
    ...withContext(context),
  });
}

/**
 * The message that follows a signup, sent after the signup's answer (which stays the seed's).
 * Not audited on its own: user.signup already says the account, and so its first link, exists.
 */
export function verifyAfterSignup(deps: EmailFlowDeps, userId: number): void {
  deps.mailer.afterAnswer(async () => {
    const user = await findUserById(deps.db, userId);
    if (user) await sendVerification(deps, user, undefined, false);
  }, 'verify_email');
}

/** POST /email/verify/resend, signed in: the user knows their own account, so the answer may say it is verified already. */
export async function resendForUser(deps: EmailFlowDeps, userId: number, context: RequestContext | undefined): Promise<'sent' | 'already_verified'> {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  if (user.email_verified_at !== null) return 'already_verified';
  // The lookups are done; the send itself need not hold the answer.
  deps.mailer.afterAnswer(() => sendVerification(deps, user, context, true), 'verify_email');
  return 'sent';
}

/**
 * POST /email/verify/resend {email}: the same answer, at the same speed, for any address. Only the
 * per-client count happens before the answer; the lookup and the message after it.
 */
export async function resendForAddress(deps: EmailFlowDeps, email: string, network: string, context: RequestContext | undefined): Promise<void> {
  await countClientRequest(deps, 'verify-resend', network);
  deps.mailer.afterAnswer(async () => {
    const user = await findUserByNormalizedEmail(deps.db, normalizeEmail(email));
    if (user) await sendVerification(deps, user, context, true);
  }, 'verify_email');
}

/** POST /email/verify: spends the link and marks the address verified, if it is still the account's address. */
export async function verifyEmail(deps: EmailFlowDeps, token: string, context: RequestContext | undefined): Promise<{ userId: number; email: string }> {
  const now = deps.clock.nowSeconds();
  const spent = await spendEmailToken(deps.db, token, 'verify_email', now);
  if (!spent) throw linkInvalid();
  const user = await findUserById(deps.db, spent.user_id);
  // A link for an address the account no longer has proves nothing about the new one.
  const stale = !user || user.disabled_at !== null || spent.email === null || normalizeEmail(spent.email) !== user.email_normalized;
  if (!user || stale) {
    deps.audit.record({
      action: 'user.email_verify',
      outcome: 'failure',
      reason: !user ? 'no_such_user' : user.disabled_at !== null ? 'disabled' : 'address_changed',
      actor: { type: 'user', id: String(spent.user_id) },
      subject: { type: 'user', id: String(spent.user_id) },
      ...withContext(context),
    });
    throw linkInvalid();
  }
  await deps.db
    .updateTable('users')
    // The first proof of the address: factors from before it (migration 0009) are the owner's from now on.
    .set({ email_verified_at: now, legacy_factors_at: null, updated_at: now })
    .where('id', '=', user.id)
    .where('email_normalized', '=', user.email_normalized)
    .where('email_verified_at', 'is', null)
    .execute();
  await spendUserEmailTokens(deps.db, Number(user.id), ['verify_email'], now);
  deps.audit.record({
    action: 'user.email_verify',
    actor: { type: 'user', id: String(user.id) },
    subject: { type: 'user', id: String(user.id) },
    ...withContext(context),
    details: { email: user.email },
  });
  return { userId: Number(user.id), email: user.email };
}
