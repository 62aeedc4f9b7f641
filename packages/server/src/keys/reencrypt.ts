import type { Kysely } from 'kysely';
import type { Database } from '../storage/schema.ts';
import { listServerSecrets, updateServerSecretValue } from '../storage/server-secrets.ts';
import { listAllSigningKeys, updatePrivateKey } from '../storage/signing-keys.ts';
import { openStoredSecret, sealSecret, type EncryptionSecrets, type StoredUnder } from './at-rest.ts';
import { SIGNING_KEY_LABEL } from './key-store.ts';
import { totpSecretLabel } from '../mfa/totp.ts';

export interface ReencryptReport {
  signingKeys: number;
  serverSecrets: number;
  totpSecrets: number;
  /** How many records were stored under what before. */
  from: Record<StoredUnder, number>;
}

/**
 * Re-encrypts every signing key, server secret and TOTP secret under KEY_ENCRYPTION_SECRET, reading each
 * from plaintext, the current or the previous secret. One transaction: a record that opens
 * under neither secret aborts the whole run, and nothing is half rotated.
 */
export async function reencryptAtRest(db: Kysely<Database>, secrets: EncryptionSecrets): Promise<ReencryptReport> {
  if (!secrets.keyEncryptionSecret) throw new Error('keys reencrypt needs KEY_ENCRYPTION_SECRET (the secret to encrypt under)');
  return db.transaction().execute(async (trx) => {
    const report: ReencryptReport = { signingKeys: 0, serverSecrets: 0, totpSecrets: 0, from: { plaintext: 0, current: 0, previous: 0 } };
    for (const row of await listAllSigningKeys(trx)) {
      const stored = { value: row.private_jwk, encryption: row.private_key_encryption };
      const { plaintext, storedUnder } = openStoredSecret(stored, secrets, SIGNING_KEY_LABEL, `signing key ${row.kid}`);
      const sealed = sealSecret(plaintext, secrets, SIGNING_KEY_LABEL);
      await updatePrivateKey(trx, row.kid, sealed.value, sealed.encryption);
      report.signingKeys += 1;
      report.from[storedUnder] += 1;
    }
    for (const row of await listServerSecrets(trx)) {
      const { plaintext, storedUnder } = openStoredSecret(row, secrets, row.name, `server secret ${row.name}`);
      const sealed = sealSecret(plaintext, secrets, row.name);
      await updateServerSecretValue(trx, row.name, sealed.value, sealed.encryption);
      report.serverSecrets += 1;
      report.from[storedUnder] += 1;
    }
    // Enrolled and confirmed alike; each sealed under a label naming its user.
    for (const row of await trx.selectFrom('totp_factors').select(['user_id', 'secret', 'secret_encryption']).orderBy('user_id').execute()) {
      const label = totpSecretLabel(row.user_id);
      const { plaintext, storedUnder } = openStoredSecret({ value: row.secret, encryption: row.secret_encryption }, secrets, label, `TOTP secret of user ${row.user_id}`);
      const sealed = sealSecret(plaintext, secrets, label);
      await trx.updateTable('totp_factors').set({ secret: sealed.value, secret_encryption: sealed.encryption }).where('user_id', '=', row.user_id).execute();
      report.totpSecrets += 1;
      report.from[storedUnder] += 1;
    }
    return report;
  });
}
