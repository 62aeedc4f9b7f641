import type { Kysely, Selectable } from 'kysely';
import type { Database, SigningKeysTable } from './schema.ts';

export type SigningKeyRow = Selectable<SigningKeysTable>;

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

export async function updatePrivateKey(
  db: Kysely<Database>,
  kid: string,
  privateJwk: string,
  privateKeyEncryption: string | null,
): Promise<void> {
  await db.updateTable('signing_keys').set({ private_jwk: privateJwk, private_key_encryption: privateKeyEncryption }).where('kid', '=', kid).execute();
}
