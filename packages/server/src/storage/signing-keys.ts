import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database, SigningKeysTable } from './schema.ts';

export type SigningKeyRow = Selectable<SigningKeysTable>;
type Executor = Kysely<Database> | Transaction<Database>;

// Newest first: by generation (null, for keys made before generations, counts as 0), then creation.
const byGenerationDesc = sql`coalesce(generation, 0)`;

/** Keys still published: pending, active, and retired ones whose tokens may still be alive. Newest first. */
export async function listVerificationKeys(db: Kysely<Database>, now: number): Promise<SigningKeyRow[]> {
  return db
    .selectFrom('signing_keys')
    .selectAll()
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy(byGenerationDesc, 'desc')
    .orderBy('created_at', 'desc')
    .orderBy('kid')
    .execute();
}

/** The key a rotation follows: the newest ever made, published or not. */
export async function findNewestSigningKey(db: Kysely<Database>): Promise<SigningKeyRow | undefined> {
  return db
    .selectFrom('signing_keys')
    .selectAll()
    .orderBy(byGenerationDesc, 'desc')
    .orderBy('created_at', 'desc')
    .orderBy('kid')
    .limit(1)
    .executeTakeFirst();
}

/** Throws a unique violation when another key already took this generation (a concurrent rotation). */
export async function insertSigningKey(db: Kysely<Database>, row: SigningKeyRow): Promise<void> {
  await db.insertInto('signing_keys').values(row).execute();
}

/**
 * Every key older than `generation` that would sign past `retiredAt` (unretired, or retired later:
 * an emergency rotation cuts a pending handover short) stops at `retiredAt`; idempotent.
 */
export async function retireKeysBefore(
  db: Kysely<Database>,
  options: { generation: number; retiredAt: number; expiresAt: number },
): Promise<void> {
  await db
    .updateTable('signing_keys')
    .set({ retired_at: options.retiredAt, expires_at: options.expiresAt })
    .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', options.retiredAt)]))
    .where(byGenerationDesc, '<', options.generation)
    .execute();
}

/** Every key, published or not: re-encryption covers them all. */
export async function listAllSigningKeys(db: Executor): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().orderBy('created_at').orderBy('kid').execute();
}

/** Keys whose private part is stored in plaintext (written before KEY_ENCRYPTION_SECRET was set). */
export async function listPlaintextSigningKeys(db: Executor): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().where('private_key_encryption', 'is', null).execute();
}

export async function updatePrivateKey(
  db: Executor,
  kid: string,
  privateJwk: string,
  privateKeyEncryption: string | null,
): Promise<void> {
  await db.updateTable('signing_keys').set({ private_jwk: privateJwk, private_key_encryption: privateKeyEncryption }).where('kid', '=', kid).execute();
}
