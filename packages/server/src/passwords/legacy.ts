import { pbkdf2, scrypt, timingSafeEqual } from 'node:crypto';
import { verify as bcryptVerify } from '@node-rs/bcrypt';

/**
 * Verification of hashes imported from the Flask seed (werkzeug) and from bcrypt.
 * Only verification: new hashes are always Argon2id, and a legacy hash is replaced on the next successful login.
 */
export type LegacyHashFormat = 'werkzeug_scrypt' | 'werkzeug_pbkdf2' | 'bcrypt';

// Refuse parameters no real deployment used, so a corrupted or hostile row cannot burn CPU or memory.
const MAX_SCRYPT_COST_N = 2 ** 20;
const MAX_SCRYPT_BLOCK_SIZE_R = 32;
const MAX_SCRYPT_PARALLELISM_P = 16;
const MAX_PBKDF2_ITERATIONS = 10_000_000;
const MAX_BCRYPT_COST = 15; // cost 15 is already seconds of CPU per attempt

// werkzeug's defaults when the method string leaves them out (werkzeug 3.1 security.py).
const WERKZEUG_SCRYPT_DEFAULTS = { costN: 2 ** 15, blockSizeR: 8, parallelismP: 1 };
const WERKZEUG_DEFAULT_PBKDF2_DIGEST = 'sha256';
const WERKZEUG_DEFAULT_PBKDF2_ITERATIONS = 1_000_000;
const WERKZEUG_SCRYPT_KEY_BYTES = 64; // hashlib.scrypt's default dklen, which werkzeug does not override

// hashlib digest name → Node digest name and output size; pbkdf2_hmac's dklen defaults to the digest size.
const PBKDF2_DIGESTS: ReadonlyMap<string, { nodeDigest: string; keyBytes: number }> = new Map([
  ['sha1', { nodeDigest: 'sha1', keyBytes: 20 }],
  ['sha224', { nodeDigest: 'sha224', keyBytes: 28 }],
  ['sha256', { nodeDigest: 'sha256', keyBytes: 32 }],
  ['sha384', { nodeDigest: 'sha384', keyBytes: 48 }],
  ['sha512', { nodeDigest: 'sha512', keyBytes: 64 }],
  ['sha3_224', { nodeDigest: 'sha3-224', keyBytes: 28 }],
  ['sha3_256', { nodeDigest: 'sha3-256', keyBytes: 32 }],
  ['sha3_384', { nodeDigest: 'sha3-384', keyBytes: 48 }],
  ['sha3_512', { nodeDigest: 'sha3-512', keyBytes: 64 }],
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

/** True when the password matches; false for a wrong password and for any malformed, unknown or absurd hash. */
export async function verifyLegacyHash(storedHash: string, password: string): Promise<boolean> {
  try {
    switch (detectLegacyHashFormat(storedHash)) {
      case 'werkzeug_scrypt':
        return await verifyWerkzeugScrypt(splitWerkzeugHash(storedHash)!, password);
      case 'werkzeug_pbkdf2':
        return await verifyWerkzeugPbkdf2(splitWerkzeugHash(storedHash)!, password);
      case 'bcrypt':
        return await verifyBcrypt(storedHash, password);
      default:
        return false;
    }
  } catch {
    return false; // a hash that node:crypto or bcrypt rejects is malformed, not a server error
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

async function verifyWerkzeugScrypt(werkzeugHash: WerkzeugHash, password: string): Promise<boolean> {
  const parameters = parseScryptParameters(werkzeugHash.methodArguments.slice(1));
  if (parameters === null) return false;
  const { costN, blockSizeR, parallelismP } = parameters;
  const expected = decodeHexDigest(werkzeugHash.hexDigest, WERKZEUG_SCRYPT_KEY_BYTES);
  if (expected === null) return false;
  const derived = await scryptAsync(utf8(password), utf8(werkzeugHash.salt), WERKZEUG_SCRYPT_KEY_BYTES, {
    N: costN,
    r: blockSizeR,
    p: parallelismP,
    // OpenSSL needs 128·r·(N+p+2) bytes; Node's default 32 MiB cap is exactly too small for werkzeug's N=2^15, r=8.
    maxmem: 128 * blockSizeR * (costN + parallelismP + 2) + 1024 * 1024,
  });
  return timingSafeEqual(derived, expected);
}

function parseScryptParameters(methodArguments: string[]): typeof WERKZEUG_SCRYPT_DEFAULTS | null {
  if (methodArguments.length === 0) return WERKZEUG_SCRYPT_DEFAULTS;
  if (methodArguments.length !== 3) return null;
  const [costN, blockSizeR, parallelismP] = methodArguments.map(parsePositiveInteger) as [number, number, number];
  const costIsPowerOfTwo = costN >= 2 && (costN & (costN - 1)) === 0;
  if (!costIsPowerOfTwo || costN > MAX_SCRYPT_COST_N) return null;
  if (!(blockSizeR >= 1 && blockSizeR <= MAX_SCRYPT_BLOCK_SIZE_R)) return null;
  if (!(parallelismP >= 1 && parallelismP <= MAX_SCRYPT_PARALLELISM_P)) return null;
  return { costN, blockSizeR, parallelismP };
}

async function verifyWerkzeugPbkdf2(werkzeugHash: WerkzeugHash, password: string): Promise<boolean> {
  const [, digestName = WERKZEUG_DEFAULT_PBKDF2_DIGEST, iterationsText, ...extra] = werkzeugHash.methodArguments;
  if (extra.length > 0) return false;
  const digest = PBKDF2_DIGESTS.get(digestName);
  const iterations = iterationsText === undefined ? WERKZEUG_DEFAULT_PBKDF2_ITERATIONS : parsePositiveInteger(iterationsText);
  if (digest === undefined || !(iterations <= MAX_PBKDF2_ITERATIONS)) return false;
  const expected = decodeHexDigest(werkzeugHash.hexDigest, digest.keyBytes);
  if (expected === null) return false;
  const derived = await pbkdf2Async(utf8(password), utf8(werkzeugHash.salt), iterations, digest.keyBytes, digest.nodeDigest);
  return timingSafeEqual(derived, expected);
}

async function verifyBcrypt(storedHash: string, password: string): Promise<boolean> {
  const cost = Number(BCRYPT_HASH_PATTERN.exec(storedHash)?.[1]);
  if (!(cost >= 4 && cost <= MAX_BCRYPT_COST)) return false;
  // @node-rs/bcrypt runs on the libuv pool, like Argon2id: the event loop never waits on it.
  return bcryptVerify(password, storedHash);
}

function decodeHexDigest(hexDigest: string, expectedBytes: number): Buffer | null {
  return hexDigest.length === expectedBytes * 2 ? Buffer.from(hexDigest, 'hex') : null;
}

// NaN for anything but a plain positive decimal, so every bound check on it fails.
function parsePositiveInteger(text: string): number {
  return DECIMAL_PATTERN.test(text) ? Number(text) : Number.NaN;
}

// Python's str.encode() is UTF-8, so both password and salt are hashed as UTF-8 bytes.
function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

interface ScryptCost {
  N: number;
  r: number;
  p: number;
  maxmem: number;
}

function scryptAsync(password: Buffer, salt: Buffer, keyBytes: number, cost: ScryptCost): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyBytes, cost, (error, derivedKey) => (error ? reject(error) : resolve(derivedKey)));
  });
}

function pbkdf2Async(password: Buffer, salt: Buffer, iterations: number, keyBytes: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, keyBytes, digest, (error, derivedKey) => (error ? reject(error) : resolve(derivedKey)));
  });
}
