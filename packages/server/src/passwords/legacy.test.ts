import { describe, expect, it } from 'vitest';
import { detectLegacyHashFormat, verifyLegacyHash } from './legacy.ts';

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

  it('refuses absurd or malformed parameters instead of computing', async () => {
    const digest = SEED_SCRYPT_HASH.split('$')[2];
    for (const method of ['scrypt:2097152:8:1', 'scrypt:32768:64:1', 'scrypt:32768:8:100', 'scrypt:30000:8:1', 'scrypt:32768:8', 'scrypt:a:b:c']) {
      expect(await verifyLegacyHash(`${method}$KNTfrQV4SHtEuCTp$${digest}`, 'test123')).toBe(false);
    }
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

  it("uses werkzeug's default iteration count when the hash omits it", async () => {
    expect(await verifyLegacyHash(WERKZEUG_FIXTURES.pbkdf2DefaultIterations, PASSPHRASE)).toBe(true);
  });

  it('refuses absurd iteration counts and unknown digests', async () => {
    const [, salt, digest] = WERKZEUG_FIXTURES.pbkdf2Sha256.split('$');
    for (const method of ['pbkdf2:sha256:10000001', 'pbkdf2:sha256:0', 'pbkdf2:sha256:-5', 'pbkdf2:md4:10000', 'pbkdf2:sha256:10000:extra']) {
      expect(await verifyLegacyHash(`${method}$${salt}$${digest}`, PASSPHRASE)).toBe(false);
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

  it('refuses an absurd cost', async () => {
    expect(await verifyLegacyHash(BCRYPT_FIXTURES.passphrase2b.replace('$04$', '$31$'), PASSPHRASE)).toBe(false);
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
