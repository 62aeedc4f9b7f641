import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, SigningKeysTable } from './schema.ts';

export type SigningKeyRow = Selectable<SigningKeysTable>;
type Executor = Kysely<Database> | Transaction<Database>;

/** Keys still usable for verification: active ones and retired ones whose tokens may still be alive. */
export async function listVerificationKeys(db: Kysely<Database>, now: number): Promise<SigningKeyRow[]> {
  return db
    .selectFrom('signing_keys')
    .selectAll()
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at', 'desc')
    .orderBy('kid')
    .execute();
}

export async function insertSigningKey(db: Kysely<Database>, row: SigningKeyRow): Promise<void> {
  await db.insertInto('signing_keys').values(row).execute();
}

export async function retireSigningKeys(
  db: Kysely<Database>,
  options: { exceptKid: string | null; now: number; expiresAt: number },
): Promise<void> {
  let query = db
    .updateTable('signing_keys')
    .set({ retired_at: options.now, expires_at: options.expiresAt })
    .where('retired_at', 'is', null);
  if (options.exceptKid !== null) query = query.where('kid', '!=', options.exceptKid);
  await query.execute();
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
