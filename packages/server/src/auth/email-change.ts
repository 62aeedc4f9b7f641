import type { RequestContext } from '../audit/events.ts';
import { AppError, invalidInput } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import { isUniqueViolation } from '../storage/db.ts';
import { revokeSessions } from '../storage/sessions.ts';
import { findUserById, findUserByNormalizedEmail, takeSqliteWriteLock } from '../storage/users.ts';
import { normalizeEmail } from '../users/user.ts';
import { addresseeName, emailLink, linkInvalid, mayMailAddress, withContext, type EmailFlowDeps } from './email-common.ts';
import { issueEmailToken, spendEmailToken, spendUserEmailTokens, ttlInWords } from './email-tokens.ts';
import { requireReauthentication, type ReauthenticationDeps } from './reauthentication.ts';
import { announceRevocations, type RevocationDeps } from './revocation.ts';

export interface EmailChangeDeps extends Omit<EmailFlowDeps, 'shared' | 'config' | 'mailer'>, Omit<RevocationDeps, 'shared'>, Omit<ReauthenticationDeps, 'shared' | 'config' | 'mailer'> {
  shared: EmailFlowDeps['shared'] & RevocationDeps['shared'] & ReauthenticationDeps['shared'];
  config: EmailFlowDeps['config'] & ReauthenticationDeps['config'];
  mailer: EmailFlowDeps['mailer'] & ReauthenticationDeps['mailer'];
  hasher: PasswordHasher;
}

/**
 * POST /me/email: the password proves it is the owner, and with TOTP on a code too (the address is how
 * the account is recovered: a session and the password alone must not move it); each is counted before it
 * is checked, as for adding a sign-in factor. The new address gets a link and nothing changes until it is
 * opened. The answer is the same whether the new address is free or taken (a taken one gets no message),
 * so the route is no way to find out who is registered.
 */
export async function requestEmailChange(
  deps: EmailChangeDeps,
  auth: { userId: number; sessionId: string; amr: readonly string[] },
  input: { new_email: string; password: string; code?: string | undefined },
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<void> {
  const audit = (event: { outcome?: 'failure'; reason?: string; details?: Record<string, unknown> }) =>
    deps.audit.record({ action: 'user.email_change_request', ...event, actor: { type: 'user', id: String(auth.userId) }, subject: { type: 'user', id: String(auth.userId) }, ...withContext(client.context) });
  const user = await findUserById(deps.db, auth.userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  const newEmail = input.new_email.normalize('NFC').trim();
  const newNormalized = normalizeEmail(newEmail);
  if (newNormalized === user.email_normalized) throw invalidInput([{ field: 'new_email', message: 'new_email is the current address' }]);

  await requireReauthentication(deps, auth, { password: input.password, code: input.code }, 'email_change', client, options);

  deps.mailer.afterAnswer(async () => {
    const taken = await findUserByNormalizedEmail(deps.db, newNormalized);
    const allowed = await mayMailAddress(deps, 'change_email', newNormalized);
    if (taken || !allowed) {
      audit({ outcome: 'failure', reason: taken ? 'email_taken' : 'throttled' });
      return;
    }
    const token = await issueEmailToken(deps.db, { purpose: 'change_email', userId: Number(user.id), email: newEmail, now: deps.clock.nowSeconds() });
    deps.mailer.send({
      // The new address is not verified yet: no name (whoever holds this account may be a stranger to its reader).
      to: { name: '', address: newEmail },
      template: 'change_email',
      values: { name: '', email: user.email, new_email: newEmail, link: emailLink(deps.config, 'change_email', token), expires: ttlInWords('change_email') },
    });
    audit({ details: { new_email: newEmail } });
  }, 'change_email');
}

/**
 * POST /email/change/confirm: moves the account to the confirmed address (verified by this very
 * link), ends every session (their tokens carry the old email, as an admin's change does) and
 * tells the old address, whose owner may not be the one who asked.
 */
export async function confirmEmailChange(deps: EmailChangeDeps, token: string, context: RequestContext | undefined): Promise<{ userId: number; email: string }> {
  const now = deps.clock.nowSeconds();
  let outcome;
  try {
    outcome = await deps.db.transaction().execute(async (trx) => {
      await takeSqliteWriteLock(trx);
      const spent = await spendEmailToken(trx, token, 'change_email', now);
      if (!spent || spent.email === null) return undefined;
      const before = await trx.selectFrom('users').selectAll().where('id', '=', spent.user_id).executeTakeFirst();
      if (!before || before.disabled_at !== null) return { refused: before ? 'disabled' : 'no_such_user', userId: spent.user_id } as const;
      await trx
        .updateTable('users')
        .set({ email: spent.email, email_normalized: normalizeEmail(spent.email), email_verified_at: now, legacy_factors_at: null, updated_at: now })
        .where('id', '=', before.id)
        .execute();
      // Other pending changes and links to the old address are void now.
      await spendUserEmailTokens(trx, spent.user_id, ['change_email', 'verify_email', 'reset_password'], now);
      const revoked = await revokeSessions(trx, { userId: spent.user_id }, now, 'email_changed');
      return { before, email: spent.email, revoked };
    });
  } catch (error) {
    // Someone took the address between the request and the confirmation: the transaction rolled back, the link is still unspent.
    if (isUniqueViolation(error)) throw new AppError('email_taken', 'email already registered');
    throw error;
  }
  if (!outcome) throw linkInvalid();
  if ('refused' in outcome) {
    deps.audit.record({ action: 'user.email_change', outcome: 'failure', reason: outcome.refused, actor: { type: 'user', id: String(outcome.userId) }, subject: { type: 'user', id: String(outcome.userId) }, ...withContext(context) });
    throw linkInvalid();
  }
  const { before, email, revoked } = outcome;
  announceRevocations(deps, revoked, now);
  deps.audit.record({
    action: 'user.email_change',
    actor: { type: 'user', id: String(before.id) },
    subject: { type: 'user', id: String(before.id) },
    ...withContext(context),
    details: { before: { email: before.email }, after: { email }, revoked_sessions: revoked.length },
  });
  deps.mailer.send({
    to: { name: addresseeName(before), address: before.email },
    template: 'email_changed',
    values: { name: addresseeName(before), email: before.email, new_email: email, link: '', expires: '' },
  });
  return { userId: Number(before.id), email };
}
