import { randomBytes } from 'node:crypto';
import { parseOptions as parseArgon2Options } from '@node-rs/argon2';
import type { Algorithm, Options as Argon2Options, ParsedHashOptions, Version } from '@node-rs/argon2';
import { AppError } from '../errors.ts';
import { createHashingPool, type HashingPool, type HashingPoolOptions, type HashingJobTiming, type HashingPoolStats, type JobOptions, type QueueFullReport } from './hashing-pool.ts';
import { parseLegacyHash } from './legacy.ts';

export interface Argon2Parameters {
  memoryCost: number; // KiB
  timeCost: number; // iterations
  parallelism: number; // lanes
}

/** OWASP Password Storage Cheat Sheet, Argon2id option 2. */
export const OWASP_ARGON2ID: Argon2Parameters = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

export interface VerifyResult {
  matches: boolean;
  /** The caller should store hash(password): a legacy format, other Argon2 parameters, or a hash of the un-normalised password. */
  needsRehash: boolean;
}

/**
 * Every method NFKC-normalises the password first (NIST SP 800-63B-4), so the same text typed
 * composed or decomposed, or with compatibility characters, is the same password.
 * Each throws AppError 'unavailable' (503 with Retry-After) when the hashing queue is full, or when
 * its `signal` aborted while the job waited.
 */
export interface PasswordHasher {
  /** Argon2id PHC string, computed on low-priority worker threads, never on the event loop. */
  hash(password: string, options?: JobOptions): Promise<string>;
  /** Argon2 and the legacy formats; no match, never a throw, for a malformed, unknown or over-cost hash. */
  verify(storedHash: string, password: string, options?: JobOptions): Promise<VerifyResult>;
  /** True for any legacy format, or Argon2 that is not Argon2id with the configured parameters. */
  needsRehash(storedHash: string): boolean;
  /** The same work as a failed verify of this password, for a login with an unknown email. */
  verifyDummy(password: string, options?: JobOptions): Promise<void>;
  /** Threads, busy threads, queue depth and refusals of the hashing pool (for logs and metrics). */
  stats(): HashingPoolStats;
  /** Reports (rate-limited) while the queue is full and jobs are refused; returns an unsubscribe. */
  onQueueFull(listener: (report: QueueFullReport) => void): () => void;
  /** Told of each hashing job a thread finished, with its queue wait and run time (metrics); returns an unsubscribe. */
  onJobDone(listener: (timing: HashingJobTiming) => void): () => void;
  /** Stops the hashing threads. */
  close(): Promise<void>;
}

// @node-rs/argon2 declares these as ambient const enums, which isolatedModules cannot read, so use their values.
const ARGON2ID: Algorithm = 2;
const ARGON2_VERSION_0X13: Version = 1;
const HASH_OUTPUT_BYTES = 32;
const MINIMUM_SALT_BYTES = 16;

// Refuse stored parameters no common default uses, so a corrupted or hostile row cannot take gigabytes or seconds.
// The costliest defaults accepted: PHP password_hash (64 MiB, t=4; 0.3 s measured here), argon2-cffi and
// RFC 9106's second option (64 MiB, t=3); OWASP's options are all lower.
const MAX_STORED_MEMORY_COST_KIB = 64 * 1024;
const MAX_STORED_MEMORY_TIME_PRODUCT = 64 * 1024 * 4;
const MAX_STORED_PARALLELISM = 8;

export function createPasswordHasher(parameters: Argon2Parameters = OWASP_ARGON2ID, poolOptions: HashingPoolOptions = {}): PasswordHasher {
  const pool: HashingPool = createHashingPool(poolOptions);
  const hashOptions: Argon2Options = {
    algorithm: ARGON2ID,
    version: ARGON2_VERSION_0X13,
    memoryCost: parameters.memoryCost,
    timeCost: parameters.timeCost,
    parallelism: parameters.parallelism,
    outputLen: HASH_OUTPUT_BYTES,
  };

  const hash = (password: string, options: JobOptions = {}): Promise<string> => pool.hash(password.normalize('NFKC'), hashOptions, options);

  // One check of one form of the password; false for anything that cannot verify.
  async function matches(storedHash: string, password: string, options: JobOptions): Promise<boolean> {
    const job = storedHash.startsWith('$argon2') ? argon2Check(storedHash) : parseLegacyHash(storedHash);
    if (job === null) return false;
    try {
      return await pool.verify({ ...job, password }, options);
    } catch (error) {
      if (error instanceof AppError) throw error; // queue full or client gone: not a wrong password
      return false; // the binding rejects undecodable hashes; that is a wrong hash, not a server error
    }
  }

  // Hashes made before normalisation hold the raw text: when the NFKC form fails, the raw form is tried too.
  async function verify(storedHash: string, password: string, options: JobOptions = {}): Promise<VerifyResult> {
    const normalized = password.normalize('NFKC');
    if (await matches(storedHash, normalized, options)) return { matches: true, needsRehash: needsRehash(storedHash) };
    if (normalized !== password && (await matches(storedHash, password, options))) return { matches: true, needsRehash: true };
    return { matches: false, needsRehash: false };
  }

  function needsRehash(storedHash: string): boolean {
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
  }

  // Computed once, at creation, so even the first unknown-email login costs the same as a wrong password.
  // The pool's queue bound does not apply to it yet (nothing else is queued at creation).
  const dummyHash = hash(randomBytes(32).toString('base64url'));
  dummyHash.catch(() => {}); // verifyDummy awaits it; this only keeps an early failure from being an unhandled rejection

  return {
    hash,
    verify,
    needsRehash,
    async verifyDummy(password, options = {}) {
      // Through verify itself, so a password whose NFKC form differs pays for its second check here too.
      await verify(await dummyHash, password, options);
    },
    stats: () => pool.stats(),
    onQueueFull: (listener) => pool.onQueueFull(listener),
    onJobDone: (listener) => pool.onJobDone(listener),
    close: () => pool.close(),
  };
}

function argon2Check(storedHash: string): { kind: 'argon2_verify'; storedHash: string } | null {
  const stored = parseStoredArgon2(storedHash);
  return stored !== null && hasSaneCost(stored) ? { kind: 'argon2_verify', storedHash } : null;
}

export function parseStoredArgon2(storedHash: string): ParsedHashOptions | null {
  if (!storedHash.startsWith('$argon2')) return null;
  try {
    return parseArgon2Options(storedHash);
  } catch {
    return null;
  }
}

/** Within the costs a login will verify (a stored hash past them never matches). */
export function hasSaneCost(stored: ParsedHashOptions): boolean {
  return (
    stored.memoryCost <= MAX_STORED_MEMORY_COST_KIB &&
    stored.memoryCost * stored.timeCost <= MAX_STORED_MEMORY_TIME_PRODUCT &&
    stored.parallelism <= MAX_STORED_PARALLELISM
  );
}
