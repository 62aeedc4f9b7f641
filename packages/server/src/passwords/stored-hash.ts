/**
 * What an imported hash is, decided before it is stored: a row whose hash login could never verify
 * (an unknown format, or parameters past the cost caps) is refused at import, not kept as a dead account.
 */
import { hasSaneCost, parseStoredArgon2 } from './hasher.ts';
import { detectLegacyHashFormat, parseLegacyHash, type LegacyHashFormat } from './legacy.ts';

export type StoredHashFormat = LegacyHashFormat | 'argon2id' | 'argon2i' | 'argon2d';

export type StoredHashCheck = { ok: true; format: StoredHashFormat } | { ok: false; code: 'unknown_hash_format' | 'hash_parameters_out_of_range'; message: string };

// @node-rs/argon2's Algorithm values (an ambient const enum isolatedModules cannot read).
const ARGON2_NAMES: Record<number, StoredHashFormat> = { 0: 'argon2d', 1: 'argon2i', 2: 'argon2id' };

export function checkStoredHash(storedHash: string): StoredHashCheck {
  if (storedHash.startsWith('$argon2')) {
    const stored = parseStoredArgon2(storedHash);
    const format = stored === null ? undefined : ARGON2_NAMES[stored.algorithm];
    if (stored === null || format === undefined) return unknownFormat();
    if (!hasSaneCost(stored)) return { ok: false, code: 'hash_parameters_out_of_range', message: `${format} parameters over the cost Gatehouse verifies (m ≤ 65536 KiB, m·t ≤ 262144, p ≤ 8)` };
    return { ok: true, format };
  }
  const legacyFormat = detectLegacyHashFormat(storedHash);
  if (legacyFormat === null) return unknownFormat();
  // The format is known, so a refusal here is a cost over the cap or a malformed parameter.
  if (parseLegacyHash(storedHash) === null) return { ok: false, code: 'hash_parameters_out_of_range', message: `${legacyFormat} hash with parameters out of range (malformed, or over the cost Gatehouse verifies)` };
  return { ok: true, format: legacyFormat };
}

function unknownFormat(): StoredHashCheck {
  return { ok: false, code: 'unknown_hash_format', message: 'unknown password hash format (werkzeug scrypt/pbkdf2, bcrypt or Argon2 PHC expected)' };
}
