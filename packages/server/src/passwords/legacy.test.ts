import { afterAll, describe, expect, it } from 'vitest';
import { createHashingPool } from './hashing-pool.ts';
import { detectLegacyHashFormat, parseLegacyHash } from './legacy.ts';

// The checks run on the hashing pool, as in production; its counters show whether work was done.
const pool = createHashingPool({ threads: 2, queueMax: 64 });
afterAll(() => pool.close());

/** True when the password matches; false, without a job, for a hash that parsing refuses. */
async function verifyLegacyHash(storedHash: string, password: string): Promise<boolean> {
  const check = parseLegacyHash(storedHash);
  if (check === null) return false;
  return pool.verify({ ...check, password }).catch(() => false);
}

// From the Flask seed: werkzeug generate_password_hash('test123') with its default method.
const SEED_SCRYPT_HASH =
  'scrypt:32768:8:1$KNTfrQV4SHtEuCTp$eefb9c985a99e315f6e1451b3bec49a607fac995f65dc5e568d8d7164c4a3e75b9bb2492b73d6297f058cbf9f10501cddb01b49e9364ab0fa5864b64f5f4ea4d';

const PASSPHRASE = 'correct horse battery staple';
const UNICODE_PASSWORD = 'pässwörd 🔑';

// Made with werkzeug 3.1.8 (installed locally) and checked with its check_password_hash:
//   python3 -c "from werkzeug.security import generate_password_hash as g; print(g(PASSWORD, method=METHOD))"
const WERKZEUG_FIXTURES = {
  pbkdf2Sha256: 'pbkdf2:sha256:10000$HaWHiqkodBUSP4G0$3dc9ad9cb101a13b47dc8b689dab19b68d3865b7fa7e7b167fc95917b2673f8f',
  pbkdf2Sha512:
    'pbkdf2:sha512:5000$7OhPTowcLACbAD1R$2f46865a2f24531e4ed89d891fe0e8f2e62a8331884d3d63c3ebfac95023f23a1c9c8df1639a300532da2ae33af99d15b5a310b50e27d6709bf36fce7b7f91af',
  pbkdf2Sha1: 'pbkdf2:sha1:5000$MzZDj8GZ13d8jbAT$cab6eff37e74e23ce20d6eb6fecfbf468a6b5b00',
  scrypt16384:
    'scrypt:16384:8:1$yZmoun2zSt51aDdC$9d353aa9030c32be5fbab4cd0835b63698da6699835c264ce0dd88d9541cc4219554326013972abe370582efd5e87808806b092b34f5398d9a03d086c8cc5bda',
  unicodeScrypt:
    'scrypt:16384:8:1$AF5rIDHYYsAJ4wYd$3c750609e23f8c431ffdd352e91b3f64df9879a8e27c8f426519cdd80924da08c4c3ede26cae61840b0a7d21efff56becfed50ca9e1d00edb47ab832bfb492be',
  unicodePbkdf2: 'pbkdf2:sha256:10000$33vKEtqBPI94stsq$2687926e27692231497b2e9dd93819b204366b2292010d043b3d50068d0364a2',
  // method='pbkdf2' (werkzeug wrote pbkdf2:sha256:1000000) with the iteration count then removed by hand;
  // werkzeug's check_password_hash accepts it, falling back to its default of 1,000,000 iterations.
  pbkdf2DefaultIterations: 'pbkdf2:sha256$ojbQ3GN2itRZhsWt$fc3b5cc981b2fd1ef8b374daa51ebd7c8c8f7f7792cd9c3b575931a91be41503',
  // werkzeug 2.3–3.0's default pbkdf2 count, and scrypt at the 64 MiB memory cap (N=2^16, r=8).
  pbkdf2Sha256600000: 'pbkdf2:sha256:600000$8rLJ3KideJlp8KMU$6deb9306f0ee1cfc7c50890576f8e0371535e79e538f7e64f4526a2ccf322b54',
  scrypt65536:
    'scrypt:65536:8:1$r4U0rSQndimUsmMm$d6309a5626fd9364ac672124ffbd57d95f3a5199432458ba672c491f9247dca5f6a514ed924a38d796e4e3d0fc2c522c71de2ea610c2abffda2ee112afd0e3b7',
};

// Made with bcryptjs 3.0.3: await bcrypt.hash(PASSPHRASE, 4), and bcrypt.hash('test123', '$2a$05$abcdefghijklmnopqrstuv');
// $2y$ is the same algorithm as $2b$ (PHP's name for the fixed variant), so only the prefix differs.
const BCRYPT_FIXTURES = {
  passphrase2b: '$2b$04$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK',
  passphrase2y: '$2y$04$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK',
  test123With2a: '$2a$05$abcdefghijklmnopqrstuuiSxrCHLVwpmVwT4EU3KSeUZ1NHx9EI2',
};

describe('werkzeug scrypt', () => {
  it('verifies the seed hash for test123 and rejects a wrong password', async () => {
    expect(await verifyLegacyHash(SEED_SCRYPT_HASH, 'test123')).toBe(true);
    expect(await verifyLegacyHash(SEED_SCRYPT_HASH, 'test124')).toBe(false);
  });

  it('verifies other cost parameters and UTF-8 passwords', async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.scrypt16384, PASSPHRASE)).toBe(true);
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.unicodeScrypt, UNICODE_PASSWORD)).toBe(true);
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.unicodeScrypt, 'passwörd 🔑')).toBe(false);
  });

  it('verifies werkzeug hashes up to the 64 MiB memory cap', async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.scrypt65536, PASSPHRASE)).toBe(true);
  });

  it('refuses absurd or malformed parameters instead of computing', async () => {
    const digest = SEED_SCRYPT_HASH.split('$')[2];
    const startedBefore = pool.stats().started;
    for (const method of [
      'scrypt:1048576:32:1', // 4 GiB
      'scrypt:2097152:8:1', // 2 GiB
      'scrypt:131072:8:1', // 128 MiB: over the 64 MiB cap
      'scrypt:32768:32:1', // 128 MiB through r
      'scrypt:32768:8:100', // 32 MiB but a hundred times the work
      'scrypt:32768:8:3', // three times werkzeug's default work: over the 2× cap
      'scrypt:30000:8:1',
      'scrypt:32768:8',
      'scrypt:a:b:c',
    ]) {
      expect(parseLegacyHash(`${method}$KNTfrQV4SHtEuCTp$${digest}`), method).toBeNull();
      expect(await verifyLegacyHash(`${method}$KNTfrQV4SHtEuCTp$${digest}`, 'test123')).toBe(false);
    }
    expect(pool.stats().started).toBe(startedBefore); // not one job reached a thread
  });
});

describe('werkzeug pbkdf2', () => {
  it('verifies sha256, sha512 and sha1 hashes', async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2Sha256, PASSPHRASE)).toBe(true);
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2Sha512, PASSPHRASE)).toBe(true);
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2Sha1, PASSPHRASE)).toBe(true);
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2Sha256, 'correct horse battery stapler')).toBe(false);
  });

  it('hashes the password as UTF-8', async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.unicodePbkdf2, UNICODE_PASSWORD)).toBe(true);
  });

  it("verifies werkzeug 2.3's default of 600,000 iterations", async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2Sha256600000, PASSPHRASE)).toBe(true);
  });

  it("uses werkzeug's default iteration count when the hash omits it", async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2DefaultIterations, PASSPHRASE)).toBe(true);
  });

  it('refuses absurd iteration counts and unknown digests without computing', async () => {
    const [, salt, digest] = WERKZEUG_FIXTURES.pbkdf2Sha256.split('$');
    const sha512Digest = WERKZEUG_FIXTURES.pbkdf2Sha512.split('$')[2];
    const startedBefore = pool.stats().started;
    for (const hash of [
      `pbkdf2:sha256:4000000000$${salt}$${digest}`,
      `pbkdf2:sha256:1000001$${salt}$${digest}`, // one past werkzeug 3.1's default
      `pbkdf2:sha512:1000000$${salt}$${sha512Digest}`, // SHA-512 iterations cost 3× here: capped at 330,000
      `pbkdf2:sha256:0$${salt}$${digest}`,
      `pbkdf2:sha256:-5$${salt}$${digest}`,
      `pbkdf2:md4:10000$${salt}$${digest}`,
      `pbkdf2:sha256:10000:extra$${salt}$${digest}`,
    ]) {
      expect(parseLegacyHash(hash), hash).toBeNull();
      expect(await verifyLegacyHash(hash, PASSPHRASE)).toBe(false);
    }
    expect(pool.stats().started).toBe(startedBefore);
  });

  it('accepts every werkzeug default count up to the cap', () => {
    const [, salt, digest] = WERKZEUG_FIXTURES.pbkdf2Sha256.split('$');
    for (const iterations of [150_000, 260_000, 600_000, 1_000_000]) {
      expect(parseLegacyHash(`pbkdf2:sha256:${iterations}$${salt}$${digest}`)).toMatchObject({ kind: 'pbkdf2_verify', iterations });
    }
  });
});

describe('bcrypt', () => {
  it('verifies $2b$, $2y$ and $2a$ hashes', async () => {
    expect(await verifyLegacyHash(BCRYPT_FIXTURES.passphrase2b, PASSPHRASE)).toBe(true);
    expect(await verifyLegacyHash(BCRYPT_FIXTURES.passphrase2y, PASSPHRASE)).toBe(true);
    expect(await verifyLegacyHash(BCRYPT_FIXTURES.test123With2a, 'test123')).toBe(true);
    expect(await verifyLegacyHash(BCRYPT_FIXTURES.passphrase2b, 'wrong password')).toBe(false);
  });

  it('refuses a cost past 13 without computing', async () => {
    const startedBefore = pool.stats().started;
    for (const cost of ['31', '20', '14']) {
      const hostile = BCRYPT_FIXTURES.passphrase2b.replace('$04$', `$${cost}$`);
      expect(parseLegacyHash(hostile), cost).toBeNull();
      expect(await verifyLegacyHash(hostile, PASSPHRASE)).toBe(false);
    }
    expect(pool.stats().started).toBe(startedBefore);
  });

  it('accepts the costs frameworks use (10 to 13)', () => {
    for (const cost of ['10', '12', '13']) {
      const storedHash = BCRYPT_FIXTURES.passphrase2b.replace('$04$', `$${cost}$`);
      expect(parseLegacyHash(storedHash)).toEqual({ kind: 'bcrypt_verify', storedHash });
    }
  });

  it('runs on the hashing pool, not on the event loop or the libuv pool', async () => {
    const startedBefore = pool.stats().started;
    expect(await verifyLegacyHash(BCRYPT_FIXTURES.passphrase2b, PASSPHRASE)).toBe(true);
    expect(pool.stats().started).toBe(startedBefore + 1);
  });
});

describe('malformed hashes', () => {
  const malformed = [
    '',
    'garbage',
    'scrypt$$',
    'scrypt:32768:8:1$salt$nothex!',
    'scrypt:32768:8:1$salt$abcd', // digest of the wrong length
    'md5$salt$0123456789abcdef0123456789abcdef', // werkzeug < 2.3 plain digests are not supported
    '$2b$04$tooShort',
    '$2x$04$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK',
  ];

  it.each(malformed)('returns false for %j', async (storedHash) => {
    expect(await verifyLegacyHash(storedHash, 'test123')).toBe(false);
  });

  it('detects only the supported formats', () => {
    expect(detectLegacyHashFormat(SEED_SCRYPT_HASH)).toBe('werkzeug_scrypt');
    expect(detectLegacyHashFormat(WERKZEUG_FIXTURES.pbkdf2Sha256)).toBe('werkzeug_pbkdf2');
    expect(detectLegacyHashFormat(BCRYPT_FIXTURES.passphrase2y)).toBe('bcrypt');
    expect(detectLegacyHashFormat('$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA')).toBeNull();
    expect(detectLegacyHashFormat('garbage')).toBeNull();
  });
});
