import type { Kysely } from 'kysely';

// Frozen in time: Kysely<any>, no imports of application code.
// An MFA ticket remembers which password it was won with (SHA-256 of the stored hash, never the hash
// itself): a password changed or reset between the two steps of a login voids the ticket.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mfa_tickets').addColumn('password_check', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mfa_tickets').dropColumn('password_check').execute();
}
