import type { Config } from '../config.ts';
import { ENCRYPTION_SCHEME, decryptSecret, encryptSecret } from './encryption.ts';

/**
 * Secrets stored in the database (signing keys' private parts, server secrets): plaintext,
 * or encrypted under KEY_ENCRYPTION_SECRET. During a rotation of that secret, records still
 * under KEY_ENCRYPTION_SECRET_PREVIOUS are read with it until `gatehouse keys reencrypt`.
 */
export type EncryptionSecrets = Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>;

export interface StoredSecret {
  value: string;
  /** The scheme of an encrypted value; null for plaintext. */
  encryption: string | null;
}

/** What a record was stored under: callers re-seal what is not under the current secret. */
export type StoredUnder = 'plaintext' | 'current' | 'previous';

/**
 * The plaintext of a stored record. `what` names the record in errors ("signing key <kid>");
 * errors never hold a secret or the record's value.
 */
export function openStoredSecret(
  stored: StoredSecret,
  secrets: EncryptionSecrets,
  label: string,
  what: string,
): { plaintext: string; storedUnder: StoredUnder } {
  if (stored.encryption === null) return { plaintext: stored.value, storedUnder: 'plaintext' };
  if (stored.encryption !== ENCRYPTION_SCHEME) throw new Error(`${what} uses an unknown encryption scheme`);
  const current = secrets.keyEncryptionSecret;
  if (!current) throw new Error(`${what} is encrypted; set KEY_ENCRYPTION_SECRET`);
  const underCurrent = tryDecrypt(stored.value, current, label);
  if (underCurrent !== undefined) return { plaintext: underCurrent, storedUnder: 'current' };
  const previous = secrets.keyEncryptionSecretPrevious;
  const underPrevious = previous ? tryDecrypt(stored.value, previous, label) : undefined;
  if (underPrevious !== undefined) return { plaintext: underPrevious, storedUnder: 'previous' };
  throw new Error(
    `${what} cannot be decrypted with this KEY_ENCRYPTION_SECRET${previous ? ' nor with KEY_ENCRYPTION_SECRET_PREVIOUS' : ''}` +
      ' (a wrong secret? when rotating, set the old one as KEY_ENCRYPTION_SECRET_PREVIOUS)',
  );
}

/** The value to store: encrypted under KEY_ENCRYPTION_SECRET when set, else plaintext. */
export function sealSecret(plaintext: string, secrets: EncryptionSecrets, label: string): StoredSecret {
  const current = secrets.keyEncryptionSecret;
  if (!current) return { value: plaintext, encryption: null };
  return { value: encryptSecret(plaintext, current, label), encryption: ENCRYPTION_SCHEME };
}

function tryDecrypt(envelope: string, secret: string, label: string): string | undefined {
  try {
    return decryptSecret(envelope, secret, label);
  } catch {
    return undefined; // the GCM tag does not match: another secret (or a damaged record)
  }
}
