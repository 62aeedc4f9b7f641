import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export const ENCRYPTION_SCHEME = 'A256GCM-HKDF-SHA256';

/**
 * Encrypts secrets at rest under KEY_ENCRYPTION_SECRET. Each record gets its own
 * salt, so the data key differs per record; the label binds a ciphertext to its purpose.
 */
export function encryptSecret(plaintext: string, encryptionSecret: string, label: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(encryptionSecret, salt, label), iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return JSON.stringify({
    v: 1,
    salt: salt.toString('base64url'),
    iv: iv.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
  });
}

export function decryptSecret(envelope: string, encryptionSecret: string, label: string): string {
  const parsed = JSON.parse(envelope) as { salt: string; iv: string; tag: string; ciphertext: string };
  const decipher = createDecipheriv(
    'aes-256-gcm',
    deriveKey(encryptionSecret, Buffer.from(parsed.salt, 'base64url'), label),
    Buffer.from(parsed.iv, 'base64url'),
  );
  decipher.setAuthTag(Buffer.from(parsed.tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(parsed.ciphertext, 'base64url')), decipher.final()]).toString('utf8');
}

function deriveKey(encryptionSecret: string, salt: Buffer, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', encryptionSecret, salt, `gatehouse:${label}`, 32));
}
