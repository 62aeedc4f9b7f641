import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { HOTP, Secret, TOTP } from 'otpauth';
import { invalidInput } from '../errors.ts';
import { openStoredSecret, sealSecret, type EncryptionSecrets, type StoredSecret } from '../keys/at-rest.ts';

/** RFC 6238 as every authenticator app reads it: SHA-1, 6 digits, 30 s steps. */
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** One step either side of now: a phone clock a little off, or a code typed as it turned over. */
export const TOTP_WINDOW = 1;
/** 160 bits, the RFC 4226 recommendation (and what authenticators expect). */
const SECRET_BYTES = 20;

export const RECOVERY_CODE_COUNT = 10;
// Lowercase letters and digits without 0/o, 1/l/i: read off paper and typed by hand. 31 symbols,
// 10 of them ≈ 49.5 bits: an online guess against a throttled endpoint is hopeless.
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const RECOVERY_LENGTH = 10;

/** The label that binds a sealed TOTP secret to its user: a ciphertext copied to another row does not open. */
export function totpSecretLabel(userId: number | string): string {
  return `totp-secret:${userId}`;
}

export function generateTotpSecret(): string {
  return new Secret({ size: SECRET_BYTES }).base32;
}

export function sealTotpSecret(base32: string, userId: number, secrets: EncryptionSecrets): StoredSecret {
  return sealSecret(base32, secrets, totpSecretLabel(userId));
}

export function openTotpSecret(stored: { secret: string; secret_encryption: string | null }, userId: number, secrets: EncryptionSecrets): string {
  return openStoredSecret({ value: stored.secret, encryption: stored.secret_encryption }, secrets, totpSecretLabel(userId), `TOTP secret of user ${userId}`).plaintext;
}

/** The otpauth:// URI an authenticator app scans (Key Uri Format). */
export function otpauthUri(base32: string, issuer: string, accountName: string): string {
  return new TOTP({ issuer, label: accountName, secret: Secret.fromBase32(base32), algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS }).toString();
}

/** The time step a moment falls in. */
export function totpStep(nowSeconds: number): number {
  return Math.floor(nowSeconds / TOTP_PERIOD_SECONDS);
}

/**
 * The step of the window whose code this is, the latest first; undefined when none matches. Steps
 * at or before `lastUsedStep` are never matched: a code is good once, and so is any older one.
 */
export function matchTotpStep(base32: string, code: string, nowSeconds: number, lastUsedStep: number | null): number | undefined {
  const secret = Secret.fromBase32(base32);
  const now = totpStep(nowSeconds);
  const typed = Buffer.from(code);
  let matched: number | undefined;
  // Every step of the window is computed and compared, so the time taken says nothing about which matched.
  for (let step = now + TOTP_WINDOW; step >= now - TOTP_WINDOW; step -= 1) {
    const expected = Buffer.from(HOTP.generate({ secret, counter: step, digits: TOTP_DIGITS, algorithm: 'SHA1' }));
    const equal = expected.length === typed.length && timingSafeEqual(expected, typed);
    if (equal && matched === undefined && (lastUsedStep === null || step > lastUsedStep)) matched = step;
  }
  return matched;
}

export type SecondFactorCode = { kind: 'totp'; code: string } | { kind: 'recovery'; code: string };

/**
 * What the user typed: six digits (spaces allowed, as apps show "123 456"), or a recovery code
 * (dashes and case ignored). Anything else is a 400 saying so, before anything is counted.
 */
export function parseSecondFactorCode(raw: string, field = 'code', options: { recovery: boolean } = { recovery: true }): SecondFactorCode {
  const compact = raw.replace(/[\s-]/g, '').toLowerCase();
  if (/^\d+$/.test(compact) && compact.length === TOTP_DIGITS) return { kind: 'totp', code: compact };
  if (options.recovery && compact.length === RECOVERY_LENGTH && [...compact].every((char) => RECOVERY_ALPHABET.includes(char))) {
    return { kind: 'recovery', code: compact };
  }
  throw invalidInput([{ field, message: options.recovery ? `${field} must be a ${TOTP_DIGITS}-digit code or a recovery code` : `${field} must be a ${TOTP_DIGITS}-digit code` }]);
}

/** Ten fresh recovery codes as shown to the user (xxxxx-xxxxx). */
export function generateRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const chars = Array.from({ length: RECOVERY_LENGTH }, () => RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)]).join('');
    return `${chars.slice(0, 5)}-${chars.slice(5)}`;
  });
}

/**
 * What is stored of a recovery code: an HMAC-SHA-256 of the user id and the code's compact form under a
 * server secret (kept in the database, encrypted at rest with KEY_ENCRYPTION_SECRET). ~50 random bits
 * make a slow hash pointless, but a plain hash of so few bits is one pass over 8·10^14 candidates for
 * every user at once from a copy of the database; keyed and per user, a copy alone gives nothing.
 * Prefixed `k1:` (the plain SHA-256 of older versions is still accepted until the codes are regenerated).
 */
export function hashRecoveryCode(code: string, userId: number, key: Buffer): string {
  return `k1:${createHmac('sha256', key).update(`recovery-code:${userId}:${compactRecoveryCode(code)}`).digest('hex')}`;
}

/** The stored form of older versions: unkeyed SHA-256 of the compact code. */
export function legacyRecoveryCodeHash(code: string): string {
  return createHash('sha256').update(compactRecoveryCode(code)).digest('hex');
}

function compactRecoveryCode(code: string): string {
  return code.replace(/[\s-]/g, '').toLowerCase();
}

/** An MFA ticket: 256 random bits handed to the client; only its SHA-256 is stored. */
export function generateTicket(): { ticket: string; hash: string } {
  const ticket = randomBytes(32).toString('base64url');
  return { ticket, hash: hashTicket(ticket) };
}

export function hashTicket(ticket: string): string {
  return createHash('sha256').update(ticket).digest('hex');
}

/** What a ticket remembers of the password its login checked: a change in between voids it. */
export function passwordCheck(passwordHash: string): string {
  return createHash('sha256').update(passwordHash).digest('hex');
}
