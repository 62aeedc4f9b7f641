import { sql, type Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
// Versions before this one let an account add TOTP or a passkey before its address was proved: the factor may
// belong to whoever signed up first with someone else's address. Such accounts are marked once, here, and the
// first password reset through the mailbox removes those factors (and clears the mark). Marking them now,
// rather than testing "not verified" at every reset, keeps the factors of an account that was proved and then
// moved to a new, not yet proved address by an admin: a reset through that new mailbox must not strip them.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('legacy_factors_at', 'bigint').execute();
  const now = Math.floor(Date.now() / 1000);
  await db
    .updateTable('users')
    .set({ legacy_factors_at: now })
    .where('email_verified_at', 'is', null)
    .where((eb) =>
      eb.or(
        ['totp_factors', 'passkeys', 'recovery_codes'].map((table) =>
          eb.exists(eb.selectFrom(table).select(sql.lit(1).as('one')).whereRef(`${table}.user_id`, '=', 'users.id')),
        ),
      ),
    )
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('legacy_factors_at').execute();
}
