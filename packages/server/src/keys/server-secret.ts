import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { isUniqueViolation } from '../storage/db.ts';
import type { Database } from '../storage/schema.ts';
import { ENCRYPTION_SCHEME, decryptSecret, encryptSecret } from './encryption.ts';

/**
 * A random secret shared by every instance through the database, created once.
 * Encrypted at rest when KEY_ENCRYPTION_SECRET is set.
 */
export async function loadServerSecret(
  deps: { db: Kysely<Database>; clock: Clock; keyEncryptionSecret: string | undefined },
  name: string,
): Promise<Buffer> {
  const existing = await deps.db.selectFrom('server_secrets').selectAll().where('name', '=', name).executeTakeFirst();
  if (existing) {
    if (existing.encryption === null) return Buffer.from(existing.value, 'base64url');
    if (!deps.keyEncryptionSecret) throw new Error(`server secret ${name} is encrypted; set KEY_ENCRYPTION_SECRET`);
    return Buffer.from(decryptSecret(existing.value, deps.keyEncryptionSecret, name), 'base64url');
  }
  const value = randomBytes(32).toString('base64url');
  try {
    await deps.db
      .insertInto('server_secrets')
      .values({
        name,
        value: deps.keyEncryptionSecret ? encryptSecret(value, deps.keyEncryptionSecret, name) : value,
        encryption: deps.keyEncryptionSecret ? ENCRYPTION_SCHEME : null,
        created_at: deps.clock.nowSeconds(),
      })
      .execute();
  } catch (error) {
    // Another instance created it first: use theirs.
    if (isUniqueViolation(error)) return loadServerSecret(deps, name);
    throw error;
  }
  return Buffer.from(value, 'base64url');
}
