import { hashSync as argon2HashSync } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.ts';
import { createPasswordHasher, OWASP_ARGON2ID } from './hasher.ts';
import type { Argon2Parameters } from './hasher.ts';

// Low cost keeps the suite fast; only the OWASP test below pays the real price.
const FAST_PARAMETERS: Argon2Parameters = { memoryCost: 1024, timeCost: 1, parallelism: 1 };
const PASSPHRASE = 'correct horse battery staple';

const SEED_SCRYPT_HASH =
  'scrypt:32768:8:1$KNTfrQV4SHtEuCTp$eefb9c985a99e315f6e1451b3bec49a607fac995f65dc5e568d8d7164c4a3e75b9bb2492b73d6297f058cbf9f10501cddb01b49e9364ab0fa5864b64f5f4ea4d';
const WERKZEUG_PBKDF2_HASH =
  'pbkdf2:sha256:10000$HaWHiqkodBUSP4G0$3dc9ad9cb101a13b47dc8b689dab19b68d3865b7fa7e7b167fc95917b2673f8f';
const BCRYPT_HASH = '$2b$04$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK';

describe('createPasswordHasher', () => {
  const hasher = createPasswordHasher(FAST_PARAMETERS);

  it('hashes to an Argon2id PHC string that verifies', async () => {
    const storedHash = await hasher.hash(PASSPHRASE);
    expect(storedHash).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await hasher.verify(storedHash, PASSPHRASE)).toEqual({ matches: true, needsRehash: false });
    expect(await hasher.verify(storedHash, 'correct horse battery stapler')).toEqual({ matches: false, needsRehash: false });
  });

  it('salts every hash', async () => {
    expect(await hasher.hash(PASSPHRASE)).not.toBe(await hasher.hash(PASSPHRASE));
  });

  it('encodes the OWASP parameters m=19456, t=2, p=1 by default', async () => {
    expect(OWASP_ARGON2ID).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const owaspHasher = createPasswordHasher();
    const storedHash = await owaspHasher.hash(PASSPHRASE);
    expect(storedHash.startsWith('$argon2id$v=19$m=19456,t=2,p=1$')).toBe(true);
    expect(owaspHasher.needsRehash(storedHash)).toBe(false);
  });

  it('verifies the legacy formats through the same call', async () => {
    expect(await hasher.verify(SEED_SCRYPT_HASH, 'test123')).toEqual({ matches: true, needsRehash: true });
    expect(await hasher.verify(SEED_SCRYPT_HASH, 'test124')).toEqual({ matches: false, needsRehash: false });
    expect(await hasher.verify(WERKZEUG_PBKDF2_HASH, PASSPHRASE)).toEqual({ matches: true, needsRehash: true });
    expect(await hasher.verify(BCRYPT_HASH, PASSPHRASE)).toEqual({ matches: true, needsRehash: true });
  });

  it('refuses hostile rows quickly, without handing any work to a thread', async () => {
    const startedBefore = hasher.stats().started;
    const seedDigest = SEED_SCRYPT_HASH.split('$')[2];
    for (const hostile of [
      `scrypt:1048576:32:1$KNTfrQV4SHtEuCTp$${seedDigest}`, // 4 GiB of scrypt
      WERKZEUG_PBKDF2_HASH.replace(':10000$', ':999999999$'), // a billion PBKDF2 rounds
      BCRYPT_HASH.replace('$04$', '$31$'), // 2^31 bcrypt rounds
      '$argon2id$v=19$m=1048576,t=1,p=1$AVh4IHrSaABSdYA79deHgA$/uf6PZhSp/Rz5jCHj86sSaDnnLES24OAWvqdpKo0iac', // 1 GiB Argon2
      '$argon2id$v=19$m=65536,t=64,p=1$AVh4IHrSaABSdYA79deHgA$/uf6PZhSp/Rz5jCHj86sSaDnnLES24OAWvqdpKo0iac', // 64 passes of 64 MiB
      '$argon2id$v=19$m=65536,t=5,p=1$AVh4IHrSaABSdYA79deHgA$/uf6PZhSp/Rz5jCHj86sSaDnnLES24OAWvqdpKo0iac', // one pass past the cap
    ]) {
      expect(await hasher.verify(hostile, PASSPHRASE), hostile).toEqual({ matches: false, needsRehash: false });
    }
    expect(hasher.stats().started).toBe(startedBefore);
  });

  it("accepts imported Argon2 up to PHP password_hash's default (64 MiB, 4 passes)", async () => {
    const phpDefault = argon2HashSync(PASSPHRASE, { algorithm: 2, memoryCost: 65536, timeCost: 4, parallelism: 1 });
    expect(await hasher.verify(phpDefault, PASSPHRASE)).toEqual({ matches: true, needsRehash: true });
  });

  it.each([
    '',
    'garbage',
    '$argon2id$',
    '$argon2id$v=19$m=1024,t=1,p=1$notbase64!$notbase64!',
    '$argon2id$v=19$m=4294967295,t=1,p=1$AVh4IHrSaABSdYA79deHgA$/uf6PZhSp/Rz5jCHj86sSaDnnLES24OAWvqdpKo0iac',
    '$argon2id$v=19$m=1024,t=1,p=1$AVh4IHrSaABSdYA79deHgA', // digest missing
    '$1$md5crypt$unsupported',
  ])('verify returns false, without throwing, for %j', async (storedHash) => {
    await expect(hasher.verify(storedHash, PASSPHRASE)).resolves.toEqual({ matches: false, needsRehash: false });
  });

  it('lets a full queue surface as unavailable, never as a wrong password', async () => {
    const busyHasher = createPasswordHasher(FAST_PARAMETERS, { threads: 1, queueMax: 1 });
    try {
      const storedHash = await busyHasher.hash(PASSPHRASE);
      const accepted = [busyHasher.hash('first'), busyHasher.hash('second')];
      const refusal = await busyHasher.verify(storedHash, PASSPHRASE).catch((error: unknown) => error);
      expect(refusal).toBeInstanceOf(AppError);
      expect(refusal).toMatchObject({ code: 'unavailable', details: { retryAfterSeconds: expect.any(Number) } });
      await Promise.all(accepted);
    } finally {
      await busyHasher.close();
    }
  });
});

describe('Unicode normalisation (NFKC)', () => {
  const hasher = createPasswordHasher(FAST_PARAMETERS);
  const composed = 'un café au lait, s’il vous plaît'; // é and î as single code points
  const decomposed = composed.normalize('NFD'); // e + U+0301, i + U+0302

  it('hashes the NFKC form, so composed and decomposed text are the same password', async () => {
    expect(decomposed).not.toBe(composed);
    expect(await hasher.verify(await hasher.hash(composed), decomposed)).toEqual({ matches: true, needsRehash: false });
    expect(await hasher.verify(await hasher.hash(decomposed), composed)).toEqual({ matches: true, needsRehash: false });
  });

  it('maps compatibility characters: fullwidth letters and ligatures', async () => {
    const storedHash = await hasher.hash('ｆｕｌｌｗｉｄｔｈ ﬁsh and chips');
    expect((await hasher.verify(storedHash, 'fullwidth fish and chips')).matches).toBe(true);
  });

  it('still accepts the raw form of a hash made before normalisation, and asks for a rehash', async () => {
    const raw = 'ｆｕｌｌｗｉｄｔｈ ﬁsh and chips';
    // What the previous version stored: Argon2id of the text exactly as typed.
    const storedHash = argon2HashSync(raw, { algorithm: 2, ...FAST_PARAMETERS });
    expect(await hasher.verify(storedHash, raw)).toEqual({ matches: true, needsRehash: true });
    expect(await hasher.verify(storedHash, 'fullwidth fish and chips')).toEqual({ matches: false, needsRehash: false });
    expect(await hasher.verify(storedHash, 'ｆｕｌｌｗｉｄｔｈ ﬁsh and chipz')).toEqual({ matches: false, needsRehash: false });
  });
});

describe('needsRehash', () => {
  const hasher = createPasswordHasher(FAST_PARAMETERS);

  it('is false for a hash made with the configured parameters', async () => {
    expect(hasher.needsRehash(await hasher.hash(PASSPHRASE))).toBe(false);
  });

  it('is true for every legacy format', () => {
    expect(hasher.needsRehash(SEED_SCRYPT_HASH)).toBe(true);
    expect(hasher.needsRehash(WERKZEUG_PBKDF2_HASH)).toBe(true);
    expect(hasher.needsRehash(BCRYPT_HASH)).toBe(true);
  });

  it.each<[string, Argon2Parameters]>([
    ['memory cost', { ...FAST_PARAMETERS, memoryCost: 2048 }],
    ['time cost', { ...FAST_PARAMETERS, timeCost: 2 }],
    ['parallelism', { ...FAST_PARAMETERS, parallelism: 2 }],
  ])('is true for Argon2id with a different %s', async (_, otherParameters) => {
    const storedHash = await createPasswordHasher(otherParameters).hash(PASSPHRASE);
    expect(hasher.needsRehash(storedHash)).toBe(true);
    expect(await hasher.verify(storedHash, PASSPHRASE)).toEqual({ matches: true, needsRehash: true });
  });

  it('is true for garbage, which can never verify', () => {
    expect(hasher.needsRehash('garbage')).toBe(true);
    expect(hasher.needsRehash('$argon2id$v=19$broken')).toBe(true);
  });
});

describe('verifyDummy', () => {
  const hasher = createPasswordHasher(FAST_PARAMETERS);

  it('resolves for any password', async () => {
    await expect(hasher.verifyDummy(PASSPHRASE)).resolves.toBeUndefined();
    await expect(hasher.verifyDummy('')).resolves.toBeUndefined();
  });

  it('does the work of a failed verify: one Argon2 job, two when the NFKC form differs', async () => {
    const storedHash = await hasher.hash(PASSPHRASE);
    const jobsFor = async (check: () => Promise<unknown>) => {
      const before = hasher.stats().started;
      await check();
      return hasher.stats().started - before;
    };
    expect(await jobsFor(() => hasher.verifyDummy(PASSPHRASE))).toBe(1);
    expect(await jobsFor(() => hasher.verify(storedHash, 'wrong password'))).toBe(1);
    expect(await jobsFor(() => hasher.verifyDummy('ﬁve ｗｒｏｎｇ'))).toBe(2);
    expect(await jobsFor(() => hasher.verify(storedHash, 'ﬁve ｗｒｏｎｇ'))).toBe(2);
  });

  it('waits in the same bounded queue as a real verify', async () => {
    const busyHasher = createPasswordHasher(FAST_PARAMETERS, { threads: 1, queueMax: 1 });
    try {
      await busyHasher.verifyDummy('warm up'); // the dummy hash exists
      const accepted = [busyHasher.hash('first'), busyHasher.hash('second')];
      await expect(busyHasher.verifyDummy(PASSPHRASE)).rejects.toMatchObject({ code: 'unavailable' });
      await Promise.all(accepted);
    } finally {
      await busyHasher.close();
    }
  });
});

describe('event loop', () => {
  it('keeps the event loop running while several hashes compute', async () => {
    const hasher = createPasswordHasher(OWASP_ARGON2ID);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    try {
      // A synchronous hash would resolve all of these before any timer could fire, leaving ticks at 0.
      await Promise.all(Array.from({ length: 8 }, () => hasher.hash(PASSPHRASE)));
    } finally {
      clearInterval(ticker);
    }
    expect(ticks).toBeGreaterThan(0);
  });
});
