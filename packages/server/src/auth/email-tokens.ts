import { createHash, randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Database, EmailTokensTable } from '../storage/schema.ts';
import { findUserForUpdate, isPostgres } from '../storage/users.ts';

export type EmailTokenPurpose = EmailTokensTable['purpose'];
type Executor = Kysely<Database> | Transaction<Database>;

/** How long each emailed link works. */
export const EMAIL_TOKEN_TTL_SECONDS: Readonly<Record<EmailTokenPurpose, number>> = Object.freeze({
  verify_email: 24 * 3600,
  // Issue 12: a reset link is good for 15 minutes.
  reset_password: 15 * 60,
  change_email: 3600,
});

/** The TTL in words, for the message. */
export function ttlInWords(purpose: EmailTokenPurpose): string {
  const seconds = EMAIL_TOKEN_TTL_SECONDS[purpose];
  return seconds % 3600 === 0 ? `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}` : `${seconds / 60} minutes`;
}

/** Only the SHA-256 is stored: a copy of the database opens no mailbox's link. 256 random bits need no slow hash. */
export function hashEmailToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new secret for the link, stored hashed; the token itself exists only in the message. */
export async function issueEmailToken(
  db: Executor,
  input: { purpose: EmailTokenPurpose; userId: number; email: string; now: number },
): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await db
    .insertInto('email_tokens')
    .values({
      token_hash: hashEmailToken(token),
      purpose: input.purpose,
      user_id: input.userId,
      email: input.email,
      created_at: input.now,
      expires_at: input.now + EMAIL_TOKEN_TTL_SECONDS[input.purpose],
      used_at: null,
    })
    .execute();
  return token;
}

export type EmailTokenRow = Pick<EmailTokensTable, 'token_hash' | 'user_id' | 'email' | 'expires_at'>;

/** A live token of this purpose (not used, not expired), without spending it. */
export async function findLiveEmailToken(db: Executor, token: string, purpose: EmailTokenPurpose, now: number): Promise<EmailTokenRow | undefined> {
  const row = await db
    .selectFrom('email_tokens')
    .select(['token_hash', 'user_id', 'email', 'expires_at'])
    .where('token_hash', '=', hashEmailToken(token))
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return row ? { ...row, user_id: Number(row.user_id) } : undefined;
}

/**
 * Spends the token: one conditional UPDATE, so of two requests racing with the same link exactly
 * one gets the row. Undefined when it is unknown, of another purpose, expired or already used.
 */
export async function spendEmailToken(db: Executor, token: string, purpose: EmailTokenPurpose, now: number): Promise<EmailTokenRow | undefined> {
  if (db.isTransaction && isPostgres(db)) {
    // Lock order: the user's row, then its tokens, in every transaction that spends them (see LOCK ORDER below).
    const owner = await db.selectFrom('email_tokens').select('user_id').where('token_hash', '=', hashEmailToken(token)).executeTakeFirst();
    if (owner) await findUserForUpdate(db as Transaction<Database>, Number(owner.user_id));
  }
  const row = await db
    .updateTable('email_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', hashEmailToken(token))
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning(['token_hash', 'user_id', 'email', 'expires_at'])
    .executeTakeFirst();
  return row ? { ...row, user_id: Number(row.user_id) } : undefined;
}

/*
 * LOCK ORDER (PostgreSQL): every transaction that spends email tokens takes the user's row lock
 * (findUserForUpdate) before touching any token row (a reset, an email-change confirmation, an admin's
 * change of the address), so two of them queue on the user instead of each holding a token row the
 * other needs next: without it, two reset links redeemed at once deadlocked (40P01, a 500).
 */

/** Spends every other live token of the user for these purposes (a reset used, an address changed). */
export async function spendUserEmailTokens(db: Executor, userId: number, purposes: readonly EmailTokenPurpose[], now: number): Promise<void> {
  if (isPostgres(db)) {
    // A multi-row UPDATE outside a transaction could hold one token row while waiting for another that a
    // reset holds (which then waits for the first): in a transaction of its own, after the user's lock.
    if (!db.isTransaction) return db.transaction().execute((trx) => spendUserEmailTokens(trx, userId, purposes, now));
    await findUserForUpdate(db as Transaction<Database>, userId);
  }
  await db.updateTable('email_tokens').set({ used_at: now }).where('user_id', '=', userId).where('purpose', 'in', purposes).where('used_at', 'is', null).execute();
}

/** Links nobody can use any more (expired or spent): nothing reads them after that. Returns how many went. */
export async function deleteDeadEmailTokens(db: Executor, now: number): Promise<number> {
  const result = await db
    .deleteFrom('email_tokens')
    .where((eb) => eb.or([eb('expires_at', '<=', now), eb('used_at', 'is not', null)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
