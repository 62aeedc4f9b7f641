/**
 * Hashes imported from the Flask seed (werkzeug) and from bcrypt: parsing and cost caps here, the
 * work itself on the hashing pool (hashing-pool.ts), off the event loop like Argon2.
 * Only verification: new hashes are always Argon2id, and a legacy hash is replaced on the next successful login.
 */
export type LegacyHashFormat = 'werkzeug_scrypt' | 'werkzeug_pbkdf2' | 'bcrypt';

/** What a worker needs to check a password against a legacy hash; plain data, sent to a worker thread. */
export type LegacyHashCheck =
  | { kind: 'scrypt_verify'; salt: string; expectedHex: string; keyBytes: number; costN: number; blockSizeR: number; parallelismP: number; maxmemBytes: number }
  | { kind: 'pbkdf2_verify'; salt: string; expectedHex: string; keyBytes: number; digest: string; iterations: number }
  | { kind: 'bcrypt_verify'; storedHash: string };

// Cost caps, so a corrupt or hostile row cannot take gigabytes or seconds of a hashing thread.
// Measured here (2 shared cores, loaded): werkzeug 3.1's default PBKDF2-SHA256 × 1,000,000 takes 1.0–1.6 s,
// the costliest default we must accept; every cap below allows about that much work and no more.
// scrypt's time grows with N·r·p and its memory is 128·N·r bytes: N·r·p ≤ 2^19, twice werkzeug's default
// (N=2^15, r=8, p=1: 32 MiB, 0.22 s), also caps memory at 64 MiB (N=2^16, r=8: 0.55 s; N=2^15, r=8, p=2: 0.69 s).
const MAX_SCRYPT_WORK = 2 ** 19;
// bcrypt cost 12 (the default of PHP 8.4, Laravel, Rails, Python's bcrypt) 1.1 s, 13 1.9 s, 14 3.6 s.
const MAX_BCRYPT_COST = 13;

// werkzeug's defaults when the method string leaves them out (werkzeug 3.1 security.py).
const WERKZEUG_SCRYPT_DEFAULTS = { costN: 2 ** 15, blockSizeR: 8, parallelismP: 1 };
const WERKZEUG_DEFAULT_PBKDF2_DIGEST = 'sha256';
const WERKZEUG_DEFAULT_PBKDF2_ITERATIONS = 1_000_000;
const WERKZEUG_SCRYPT_KEY_BYTES = 64; // hashlib.scrypt's default dklen, which werkzeug does not override

// hashlib digest name → Node digest name and output size (pbkdf2_hmac's dklen defaults to the digest size),
// and the iteration cap: 1,000,000 SHA-256 iterations' worth of time, by the measured cost per iteration
// (SHA-1 ≈ 2×, SHA-512 ≈ 3×, SHA3-512 ≈ 6.5× a SHA-256 iteration here).
const PBKDF2_DIGESTS: ReadonlyMap<string, { nodeDigest: string; keyBytes: number; maxIterations: number }> = new Map([
  ['sha1', { nodeDigest: 'sha1', keyBytes: 20, maxIterations: 500_000 }],
  ['sha224', { nodeDigest: 'sha224', keyBytes: 28, maxIterations: 1_000_000 }],
  ['sha256', { nodeDigest: 'sha256', keyBytes: 32, maxIterations: 1_000_000 }],
  ['sha384', { nodeDigest: 'sha384', keyBytes: 48, maxIterations: 330_000 }],
  ['sha512', { nodeDigest: 'sha512', keyBytes: 64, maxIterations: 330_000 }],
  ['sha3_224', { nodeDigest: 'sha3-224', keyBytes: 28, maxIterations: 150_000 }],
  ['sha3_256', { nodeDigest: 'sha3-256', keyBytes: 32, maxIterations: 150_000 }],
  ['sha3_384', { nodeDigest: 'sha3-384', keyBytes: 48, maxIterations: 150_000 }],
  ['sha3_512', { nodeDigest: 'sha3-512', keyBytes: 64, maxIterations: 150_000 }],
]);

const BCRYPT_HASH_PATTERN = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const DECIMAL_PATTERN = /^[1-9]\d{0,9}$/;
const HEX_PATTERN = /^[0-9a-f]+$/i;

interface WerkzeugHash {
  methodArguments: string[];
  salt: string;
  hexDigest: string;
}

export function detectLegacyHashFormat(storedHash: string): LegacyHashFormat | null {
  if (storedHash.startsWith('$2')) return BCRYPT_HASH_PATTERN.test(storedHash) ? 'bcrypt' : null;
  const werkzeugMethod = splitWerkzeugHash(storedHash)?.methodArguments[0];
  if (werkzeugMethod === 'scrypt') return 'werkzeug_scrypt';
  if (werkzeugMethod === 'pbkdf2') return 'werkzeug_pbkdf2';
  return null;
}

/** The check to run for a legacy hash; null for any malformed, unknown or over-cost hash, which can never verify. */
export function parseLegacyHash(storedHash: string): LegacyHashCheck | null {
  switch (detectLegacyHashFormat(storedHash)) {
    case 'werkzeug_scrypt':
      return parseWerkzeugScrypt(splitWerkzeugHash(storedHash)!);
    case 'werkzeug_pbkdf2':
      return parseWerkzeugPbkdf2(splitWerkzeugHash(storedHash)!);
    case 'bcrypt':
      return parseBcrypt(storedHash);
    default:
      return null;
  }
}

// werkzeug stores `method:arg:arg$salt$hexdigest`; its salts are alphanumeric, so `$` only separates.
function splitWerkzeugHash(storedHash: string): WerkzeugHash | null {
  const parts = storedHash.split('$');
  if (parts.length !== 3) return null;
  const [method, salt, hexDigest] = parts as [string, string, string];
  if (salt === '' || !HEX_PATTERN.test(hexDigest)) return null;
  return { methodArguments: method.split(':'), salt, hexDigest };
}

function parseWerkzeugScrypt(werkzeugHash: WerkzeugHash): LegacyHashCheck | null {
  const parameters = parseScryptParameters(werkzeugHash.methodArguments.slice(1));
  if (parameters === null || !hasHexLength(werkzeugHash.hexDigest, WERKZEUG_SCRYPT_KEY_BYTES)) return null;
  const { costN, blockSizeR, parallelismP } = parameters;
  return {
    kind: 'scrypt_verify',
    salt: werkzeugHash.salt,
    expectedHex: werkzeugHash.hexDigest,
    keyBytes: WERKZEUG_SCRYPT_KEY_BYTES,
    costN,
    blockSizeR,
    parallelismP,
    // OpenSSL needs 128·r·(N+p+2) bytes; Node's default 32 MiB cap is exactly too small for werkzeug's N=2^15, r=8.
    maxmemBytes: 128 * blockSizeR * (costN + parallelismP + 2) + 1024 * 1024,
  };
}

function parseScryptParameters(methodArguments: string[]): typeof WERKZEUG_SCRYPT_DEFAULTS | null {
  if (methodArguments.length === 0) return WERKZEUG_SCRYPT_DEFAULTS;
  if (methodArguments.length !== 3) return null;
  const [costN, blockSizeR, parallelismP] = methodArguments.map(parsePositiveInteger) as [number, number, number];
  const costIsPowerOfTwo = costN >= 2 && (costN & (costN - 1)) === 0;
  if (!costIsPowerOfTwo || !(blockSizeR >= 1) || !(parallelismP >= 1)) return null;
  if (costN * blockSizeR * parallelismP > MAX_SCRYPT_WORK) return null;
  return { costN, blockSizeR, parallelismP };
}

function parseWerkzeugPbkdf2(werkzeugHash: WerkzeugHash): LegacyHashCheck | null {
  const [, digestName = WERKZEUG_DEFAULT_PBKDF2_DIGEST, iterationsText, ...extra] = werkzeugHash.methodArguments;
  if (extra.length > 0) return null;
  const digest = PBKDF2_DIGESTS.get(digestName);
  const iterations = iterationsText === undefined ? WERKZEUG_DEFAULT_PBKDF2_ITERATIONS : parsePositiveInteger(iterationsText);
  if (digest === undefined || !(iterations <= digest.maxIterations)) return null;
  if (!hasHexLength(werkzeugHash.hexDigest, digest.keyBytes)) return null;
  return {
    kind: 'pbkdf2_verify',
    salt: werkzeugHash.salt,
    expectedHex: werkzeugHash.hexDigest,
    keyBytes: digest.keyBytes,
    digest: digest.nodeDigest,
    iterations,
  };
}

function parseBcrypt(storedHash: string): LegacyHashCheck | null {
  const cost = Number(BCRYPT_HASH_PATTERN.exec(storedHash)?.[1]);
  return cost >= 4 && cost <= MAX_BCRYPT_COST ? { kind: 'bcrypt_verify', storedHash } : null;
}

function hasHexLength(hexDigest: string, expectedBytes: number): boolean {
  return hexDigest.length === expectedBytes * 2;
}

// NaN for anything but a plain positive decimal, so every bound check on it fails.
function parsePositiveInteger(text: string): number {
  return DECIMAL_PATTERN.test(text) ? Number(text) : Number.NaN;
}
