import type { RequestContext } from '../audit/events.ts';
import { invalidInput } from '../errors.ts';
import type { JobOptions, PasswordHasher, PasswordPolicy } from '../passwords/index.ts';
import { revokeSessions } from '../storage/sessions.ts';
import { findUserById, findUserByNormalizedEmail, takeSqliteWriteLock } from '../storage/users.ts';
import { normalizeEmail } from '../users/user.ts';
import { notifySecurityEvent } from './security-notices.ts';
import { addresseeName, countClientRequest, emailLink, linkInvalid, mayMailAddress, withContext, type EmailFlowDeps } from './email-common.ts';
import { findLiveEmailToken, issueEmailToken, spendEmailToken, spendUserEmailTokens, ttlInWords } from './email-tokens.ts';
import { announceRevocations, type RevocationDeps, type RevocationReason } from './revocation.ts';

export interface PasswordResetDeps extends Omit<EmailFlowDeps, 'shared'>, Omit<RevocationDeps, 'shared'> {
  shared: EmailFlowDeps['shared'] & RevocationDeps['shared'];
  hasher: PasswordHasher;
  passwordPolicy: PasswordPolicy;
}

/**
 * POST /password/forgot: the answer is the same, and as fast, for every address. Before it only
 * the per-client count runs (keyed by the network, never by the account); finding the account,
 * the per-address budget, the token and the message all happen after the answer has gone.
 * Disabled and unknown accounts get no message (audited, with the reason).
 */
export async function forgotPassword(deps: PasswordResetDeps, email: string, network: string, context: RequestContext | undefined): Promise<void> {
  await countClientRequest(deps, 'password-forgot', network);
  deps.mailer.afterAnswer(async () => {
    const emailNormalized = normalizeEmail(email);
    // Counted for unknown addresses too, so the budget is no oracle either.
    const allowed = await mayMailAddress(deps, 'reset_password', emailNormalized);
    const user = await findUserByNormalizedEmail(deps.db, emailNormalized);
    const reason = !user ? 'unknown_email' : user.disabled_at !== null ? 'disabled' : !allowed ? 'throttled' : undefined;
    deps.audit.record({
      action: 'user.password_reset_request',
      ...(reason ? { outcome: 'failure' as const, reason } : {}),
      actor: { type: 'anonymous' },
      ...(user ? { subject: { type: 'user', id: String(user.id) } } : {}),
      ...withContext(context),
      // The typed address only for registered accounts: the log is not a list of addresses people tried.
      ...(user ? { details: { email: user.email } } : {}),
    });
    if (!user || reason) return;
    const token = await issueEmailToken(deps.db, { purpose: 'reset_password', userId: Number(user.id), email: user.email, now: deps.clock.nowSeconds() });
    deps.mailer.send({
      to: { name: addresseeName(user), address: user.email },
      template: 'reset_password',
      values: { name: addresseeName(user), email: user.email, link: emailLink(deps.config, 'reset_password', token), expires: ttlInWords('reset_password'), new_email: '' },
    });
  }, 'reset_password');
}

/**
 * POST /password/reset: a live link and a password the policy accepts set the password, spend
 * every reset link of the user and end every session. A refused password leaves the link usable
 * (the user tries another); a disabled account's link is spent and refused.
 */
export async function resetPassword(
  deps: PasswordResetDeps,
  input: { token: string; new_password: string },
  context: RequestContext | undefined,
  options: JobOptions = {},
): Promise<{ userId: number; revokedSessions: number }> {
  const audit = (userId: number, event: { outcome?: 'failure'; reason?: string; details?: Record<string, unknown> }) =>
    deps.audit.record({ action: 'user.password_reset', ...event, actor: { type: 'user', id: String(userId) }, subject: { type: 'user', id: String(userId) }, ...withContext(context) });
  const found = await findLiveEmailToken(deps.db, input.token, 'reset_password', deps.clock.nowSeconds());
  if (!found) throw linkInvalid();
  const user = await findUserById(deps.db, found.user_id);
  if (!user || user.disabled_at !== null || found.email === null || normalizeEmail(found.email) !== user.email_normalized) {
    await spendEmailToken(deps.db, input.token, 'reset_password', deps.clock.nowSeconds());
    audit(found.user_id, { outcome: 'failure', reason: !user ? 'no_such_user' : user.disabled_at !== null ? 'disabled' : 'address_changed' });
    throw linkInvalid();
  }
  // The hasher stores NFKC forms, so the policy judges those too (as signup and password change do).
  const newPassword = input.new_password.normalize('NFKC');
  const problem = await deps.passwordPolicy.check(newPassword, { email: user.email, name: user.name });
  if (problem) throw invalidInput([{ field: 'new_password', message: problem.message.replace(/^password/, 'new_password') }]);
  const passwordHash = await deps.hasher.hash(newPassword, options);

  const now = deps.clock.nowSeconds();
  const revoked = await deps.db.transaction().execute(async (trx) => {
    await takeSqliteWriteLock(trx);
    // Spent here, in the same transaction as the change: of two resets racing with one link exactly one applies.
    const spent = await spendEmailToken(trx, input.token, 'reset_password', now);
    if (!spent) return undefined;
    const changed = await trx
      .updateTable('users')
      .set({
        password_hash: passwordHash,
        updated_at: now,
        // The link reached the mailbox: the address is proved as well.
        email_verified_at: user.email_verified_at ?? now,
        legacy_factors_at: null,
      })
      .where('id', '=', user.id)
      // Still enabled and still at that address: an admin who disabled the account meanwhile wins.
      .where('disabled_at', 'is', null)
      .where('email_normalized', '=', user.email_normalized)
      .executeTakeFirst();
    if (Number(changed.numUpdatedRows) !== 1) return 'changed' as const;
    if (user.legacy_factors_at !== null) {
      // The first proof of the mailbox on an account that added factors before any (older versions allowed that;
      // migration 0009 marked them): they may be whoever signed up with this address first, and must not outlive
      // the password they came with. Not "the address is not verified": an admin's move to a new address clears
      // that too, and a reset through the new mailbox must not strip the owner's second factor.
      for (const table of ['passkeys', 'recovery_codes', 'totp_factors', 'mfa_tickets', 'webauthn_challenges'] as const) {
        await trx.deleteFrom(table).where('user_id', '=', Number(user.id)).execute();
      }
    }
    // The user's other reset links, and a pending move to another address: it may be the very takeover this reset recovers from.
    await spendUserEmailTokens(trx, Number(user.id), ['reset_password', 'change_email'], now);
    const reason: RevocationReason = 'password_reset';
    return revokeSessions(trx, { userId: Number(user.id) }, now, reason);
  });
  if (revoked === undefined) throw linkInvalid();
  if (revoked === 'changed') {
    audit(Number(user.id), { outcome: 'failure', reason: 'changed_meanwhile' });
    throw linkInvalid();
  }
  announceRevocations(deps, revoked, now);
  audit(Number(user.id), { details: { revoked_sessions: revoked.length } });
  // The second step's run of wrong codes is NOT forgotten here (a change from a session with a second factor is): a reset
  // proves the mailbox only, and whoever reads it could otherwise reset, guess ten codes, reset again.
  notifySecurityEvent(deps, Number(user.id), 'password_reset');
  return { userId: Number(user.id), revokedSessions: revoked.length };
}
