import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { isUniqueViolation } from '../storage/db.ts';
import type { Database } from '../storage/schema.ts';
import { findServerSecret, insertServerSecret, updateServerSecretValue } from '../storage/server-secrets.ts';
import { openStoredSecret, sealSecret, type EncryptionSecrets } from './at-rest.ts';

/**
 * A random secret shared by every instance through the database, created once.
 * Encrypted at rest when KEY_ENCRYPTION_SECRET is set; one stored in plaintext before
 * that is encrypted in place. The secret itself never changes: tokens derived from it stay valid.
 */
export async function loadServerSecret(
  deps: { db: Kysely<Database>; clock: Clock; keyEncryptionSecret: string | undefined; keyEncryptionSecretPrevious?: string | undefined },
  name: string,
): Promise<Buffer> {
  const secrets: EncryptionSecrets = { keyEncryptionSecret: deps.keyEncryptionSecret, keyEncryptionSecretPrevious: deps.keyEncryptionSecretPrevious };
  const existing = await findServerSecret(deps.db, name);
  if (existing) {
    const { plaintext, storedUnder } = openStoredSecret(existing, secrets, name, `server secret ${name}`);
    if (storedUnder === 'plaintext' && secrets.keyEncryptionSecret) {
      const sealed = sealSecret(plaintext, secrets, name);
      await updateServerSecretValue(deps.db, name, sealed.value, sealed.encryption);
    }
    return Buffer.from(plaintext, 'base64url');
  }
  const value = randomBytes(32).toString('base64url');
  const sealed = sealSecret(value, secrets, name);
  try {
    await insertServerSecret(deps.db, { name, value: sealed.value, encryption: sealed.encryption, created_at: deps.clock.nowSeconds() });
  } catch (error) {
    // Another instance created it first: use theirs.
    if (isUniqueViolation(error)) return loadServerSecret(deps, name);
    throw error;
  }
  return Buffer.from(value, 'base64url');
}
