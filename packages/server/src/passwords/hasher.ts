import { randomBytes } from 'node:crypto';
import { parseOptions as parseArgon2Options } from '@node-rs/argon2';
import type { Algorithm, Options as Argon2Options, ParsedHashOptions, Version } from '@node-rs/argon2';
import { createArgon2Pool, type Argon2Pool } from './argon2-pool.ts';
import { detectLegacyHashFormat, verifyLegacyHash } from './legacy.ts';

export interface Argon2Parameters {
  memoryCost: number; // KiB
  timeCost: number; // iterations
  parallelism: number; // lanes
}

/** OWASP Password Storage Cheat Sheet, Argon2id option 2. */
export const OWASP_ARGON2ID: Argon2Parameters = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

export interface PasswordHasher {
  /** Argon2id PHC string, computed on low-priority worker threads, never on the event loop. */
  hash(password: string): Promise<string>;
  /** Argon2 and the legacy formats; false, never a throw, for a malformed or unknown hash. */
  verify(storedHash: string, password: string): Promise<boolean>;
  /** True for any legacy format, or Argon2 that is not Argon2id with the configured parameters. */
  needsRehash(storedHash: string): boolean;
  /** The same work as a real verify, for a login with an unknown email. */
  verifyDummy(password: string): Promise<void>;
  /** Stops the hashing threads. */
  close(): Promise<void>;
}

// @node-rs/argon2 declares these as ambient const enums, which isolatedModules cannot read, so use their values.
const ARGON2ID: Algorithm = 2;
const ARGON2_VERSION_0X13: Version = 1;
const HASH_OUTPUT_BYTES = 32;
const MINIMUM_SALT_BYTES = 16;

// Refuse stored parameters no real deployment used, so a corrupted row cannot exhaust memory or CPU.
const MAX_STORED_MEMORY_COST_KIB = 1024 * 1024;
const MAX_STORED_TIME_COST = 64;
const MAX_STORED_PARALLELISM = 16;

export function createPasswordHasher(parameters: Argon2Parameters = OWASP_ARGON2ID, pool: Argon2Pool = createArgon2Pool()): PasswordHasher {
  const hashOptions: Argon2Options = {
    algorithm: ARGON2ID,
    version: ARGON2_VERSION_0X13,
    memoryCost: parameters.memoryCost,
    timeCost: parameters.timeCost,
    parallelism: parameters.parallelism,
    outputLen: HASH_OUTPUT_BYTES,
  };

  const hash = (password: string): Promise<string> => pool.hash(password, hashOptions);
  const verifyArgon2 = async (storedHash: string, password: string): Promise<boolean> => {
    const stored = parseStoredArgon2(storedHash);
    if (stored === null || !hasSaneCost(stored)) return false;
    try {
      return await pool.verify(storedHash, password);
    } catch {
      return false; // the binding rejects undecodable hashes; that is a wrong hash, not a server error
    }
  };

  // Computed once, at creation, so even the first unknown-email login costs the same as a wrong password.
  const dummyHash = hash(randomBytes(32).toString('base64url'));
  dummyHash.catch(() => {}); // verifyDummy awaits it; this only keeps an early failure from being an unhandled rejection

  return {
    hash,

    async verify(storedHash, password) {
      if (storedHash.startsWith('$argon2')) return verifyArgon2(storedHash, password);
      if (detectLegacyHashFormat(storedHash) !== null) return verifyLegacyHash(storedHash, password);
      return false;
    },

    needsRehash(storedHash) {
      const stored = parseStoredArgon2(storedHash);
      if (stored === null) return true;
      return (
        stored.algorithm !== ARGON2ID ||
        stored.version !== ARGON2_VERSION_0X13 ||
        stored.memoryCost !== parameters.memoryCost ||
        stored.timeCost !== parameters.timeCost ||
        stored.parallelism !== parameters.parallelism ||
        stored.outputLen !== HASH_OUTPUT_BYTES ||
        stored.saltLen < MINIMUM_SALT_BYTES
      );
    },

    async verifyDummy(password) {
      await verifyArgon2(await dummyHash, password);
    },

    close: () => pool.close(),
  };
}

function parseStoredArgon2(storedHash: string): ParsedHashOptions | null {
  if (!storedHash.startsWith('$argon2')) return null;
  try {
    return parseArgon2Options(storedHash);
  } catch {
    return null;
  }
}

function hasSaneCost(stored: ParsedHashOptions): boolean {
  return (
    stored.memoryCost <= MAX_STORED_MEMORY_COST_KIB &&
    stored.timeCost <= MAX_STORED_TIME_COST &&
    stored.parallelism <= MAX_STORED_PARALLELISM
  );
}
