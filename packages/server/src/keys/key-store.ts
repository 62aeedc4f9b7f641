import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Config, JwtAlgorithm } from '../config.ts';
import type { Database } from '../storage/schema.ts';
import { isUniqueViolation } from '../storage/db.ts';
import {
  findNewestSigningKey,
  insertSigningKey,
  listPlaintextSigningKeys,
  listVerificationKeys,
  retireKeysBefore,
  updatePrivateKey,
  type SigningKeyRow,
} from '../storage/signing-keys.ts';
import { openStoredSecret, sealSecret, type EncryptionSecrets } from './at-rest.ts';
import { KEY_ACTIVATION_DELAY_SECONDS, activationOf, publishedUntil, type RotationTimeline } from './rotation.ts';

export type KeyMaterial = CryptoKey | Uint8Array;

export interface SigningKey {
  kid: string;
  algorithm: JwtAlgorithm;
  privateKey: KeyMaterial;
}

export interface VerificationKey {
  kid: string;
  algorithm: JwtAlgorithm;
  publicKey: KeyMaterial;
}

export interface KeyStore {
  readonly algorithm: JwtAlgorithm;
  /** The key that signs now, by the clock: a pending key takes over at its activation without a reload. */
  current(): SigningKey;
  /** A key from our own store, looked up by kid; token headers never supply key material. */
  verificationKey(kid: string): VerificationKey | undefined;
  /** Algorithms of every key still accepted, for jose's pinned list. */
  acceptedAlgorithms(): JwtAlgorithm[];
  /** Pending, active and retired keys whose tokens may still be alive. */
  publicJwks(): { keys: JWK[] };
  /** Re-reads the keys table (another instance may have rotated); throttled by the caller. */
  reload(): Promise<void>;
  /**
   * A new key, published now, signing from now + KEY_ACTIVATION_DELAY_SECONDS on every instance
   * (`immediately`: from now, for a compromised key). Refused while another rotation is pending.
   */
  rotate(options?: { immediately?: boolean }): Promise<RotationTimeline>;
  /** Scheduled rotation (KEY_ROTATION_DAYS): rotates when the newest key is that old; one key however many instances call it. */
  rotateIfDue(): Promise<RotationTimeline | undefined>;
}

export interface KeyStoreDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'jwt'> & Partial<Pick<Config, 'keyRotationDays'>> & EncryptionSecrets;
}

export const SIGNING_KEY_LABEL = 'signing-key';
const SECONDS_PER_DAY = 86_400;

interface SigningCandidate extends SigningKey {
  activatesAt: number;
}

export async function openKeyStore(deps: KeyStoreDeps): Promise<KeyStore> {
  const { jwt } = deps.config;
  if (jwt.algorithm === 'HS256') return hmacKeyStore(jwt.secret ?? '');

  // Keys of the configured algorithm that sign now or will, by activation time (oldest first).
  let signingCandidates: SigningCandidate[] = [];
  let verification = new Map<string, VerificationKey>();
  let acceptedAlgorithms: JwtAlgorithm[] = [];
  let published: Array<{ jwk: JWK; expiresAt: number | null }> = [];
  // Imported once per kid: a reload every minute need not decrypt every private key again.
  let privateKeys = new Map<string, KeyMaterial>();

  async function load(attempt = 0): Promise<void> {
    const now = deps.clock.nowSeconds();
    const rows = await listVerificationKeys(deps.db, now);
    const newest = rows[0];
    // First start, or JWT_ALG changed: a key that signs at once (nothing can have cached it yet,
    // and tokens of the old algorithm keep verifying against the old key).
    if (!newest || newest.algorithm !== jwt.algorithm || newest.retired_at !== null) {
      if (attempt >= 3) throw new Error(`no signing key for JWT_ALG=${jwt.algorithm}: another instance keeps replacing it (is its JWT_ALG different?)`);
      await createKey(newest, now); // lost to another instance doing the same: use theirs
      return load(attempt + 1);
    }
    await retireSuperseded(rows, newest);

    const nextVerification = new Map<string, VerificationKey>();
    const nextPublished: typeof published = [];
    const nextCandidates: SigningCandidate[] = [];
    const nextPrivateKeys = new Map<string, KeyMaterial>();
    for (const row of rows) {
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      const algorithm = row.algorithm as JwtAlgorithm;
      nextVerification.set(row.kid, { kid: row.kid, algorithm, publicKey: await importJWK(publicJwk, algorithm) });
      nextPublished.push({ jwk: { ...publicJwk, kid: row.kid, alg: algorithm, use: 'sig' }, expiresAt: row.expires_at });
      if (algorithm === jwt.algorithm && (row.retired_at === null || row.retired_at > now)) {
        const privateKey = privateKeys.get(row.kid) ?? (await importPrivateKey(row));
        nextPrivateKeys.set(row.kid, privateKey);
        nextCandidates.push({ kid: row.kid, algorithm, privateKey, activatesAt: activationOf(row) });
      }
    }
    signingCandidates = nextCandidates.sort((a, b) => a.activatesAt - b.activatesAt);
    privateKeys = nextPrivateKeys;
    verification = nextVerification;
    acceptedAlgorithms = [...new Set([...nextVerification.values()].map((key) => key.algorithm))];
    published = nextPublished;
  }

  /**
   * Every older key still signing past the newest key's activation stops when the newest starts, and stays published until
   * its last token has expired. Whoever reads the table first writes it (the same values on every
   * instance), so a rotation cut short between its insert and this update is finished by the next reload.
   */
  async function retireSuperseded(rows: SigningKeyRow[], newest: SigningKeyRow): Promise<void> {
    const generation = newest.generation ?? 0;
    const retiredAt = activationOf(newest);
    const superseded = rows.filter((row) => signsPast(row, retiredAt) && (row.generation ?? 0) < generation);
    if (superseded.length === 0) return;
    const expiresAt = publishedUntil(retiredAt, jwt.accessTokenTtlSeconds);
    await retireKeysBefore(deps.db, { generation, retiredAt, expiresAt });
    for (const row of superseded) Object.assign(row, { retired_at: retiredAt, expires_at: expiresAt });
  }

  async function importPrivateKey(row: SigningKeyRow): Promise<KeyMaterial> {
    const { plaintext } = openStoredSecret(
      { value: row.private_jwk, encryption: row.private_key_encryption },
      deps.config,
      SIGNING_KEY_LABEL,
      `signing key ${row.kid}`,
    );
    return importJWK(JSON.parse(plaintext) as JWK, row.algorithm);
  }

  /**
   * Inserts the key that follows `newest`, signing from `activatesAt`. Undefined when another
   * instance inserted a successor of `newest` first: the unique generation lets only one win.
   */
  async function createKey(newest: SigningKeyRow | undefined, activatesAt: number): Promise<SigningKeyRow | undefined> {
    const pair = await generateKeyPair(jwt.algorithm, { extractable: true, ...(jwt.algorithm === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    const publicJwk = await exportJWK(pair.publicKey);
    const privateJwk = await exportJWK(pair.privateKey);
    const sealed = sealSecret(JSON.stringify(privateJwk), deps.config, SIGNING_KEY_LABEL);
    const row: SigningKeyRow = {
      kid: await calculateJwkThumbprint(publicJwk),
      algorithm: jwt.algorithm,
      public_jwk: JSON.stringify(publicJwk),
      private_jwk: sealed.value,
      private_key_encryption: sealed.encryption,
      created_at: deps.clock.nowSeconds(),
      retired_at: null,
      expires_at: null,
      activates_at: activatesAt,
      generation: (newest?.generation ?? 0) + 1,
    };
    try {
      await insertSigningKey(deps.db, row);
    } catch (error) {
      if (isUniqueViolation(error)) return undefined;
      throw error;
    }
    return row;
  }

  /** Inserts the next key and reloads; undefined when a concurrent rotation won. */
  async function rotateAfter(newest: SigningKeyRow | undefined, activatesAt: number): Promise<RotationTimeline | undefined> {
    const now = deps.clock.nowSeconds();
    const replaced = (await listVerificationKeys(deps.db, now)).filter((row) => signsPast(row, activatesAt));
    const created = await createKey(newest, activatesAt);
    await load();
    if (!created) return undefined;
    return {
      kid: created.kid,
      algorithm: created.algorithm,
      publishedAt: now,
      activatesAt,
      replaces: replaced.map((row) => ({ kid: row.kid, publishedUntil: publishedUntil(activatesAt, jwt.accessTokenTtlSeconds) })),
    };
  }

  await encryptPlaintextKeys(deps);
  await load();

  return {
    algorithm: jwt.algorithm,
    current() {
      const now = deps.clock.nowSeconds();
      // The latest key whose activation has come; the older one is retired from that moment.
      // If none has (a clock behind the one that created the keys), the earliest rather than none.
      let signing = signingCandidates[0] as SigningCandidate;
      for (const candidate of signingCandidates) if (candidate.activatesAt <= now) signing = candidate;
      return { kid: signing.kid, algorithm: signing.algorithm, privateKey: signing.privateKey };
    },
    verificationKey: (kid) => verification.get(kid),
    acceptedAlgorithms: () => acceptedAlgorithms,
    publicJwks() {
      // A retired key leaves at its expiry, not at the next reload after it.
      const now = deps.clock.nowSeconds();
      return { keys: published.filter((key) => key.expiresAt === null || key.expiresAt > now).map((key) => key.jwk) };
    },
    reload: () => load(),
    async rotate(options = {}) {
      const now = deps.clock.nowSeconds();
      const newest = await findNewestSigningKey(deps.db);
      if (!options.immediately && newest && activationOf(newest) > now) {
        throw new Error(
          `a rotation is already pending: key ${newest.kid} signs from ${new Date(activationOf(newest) * 1000).toISOString()}` +
            ' (rotate --now replaces every key at once)',
        );
      }
      const timeline = await rotateAfter(newest, options.immediately ? now : now + KEY_ACTIVATION_DELAY_SECONDS);
      if (!timeline) throw new Error('another rotation was made at the same moment; see gatehouse keys list');
      return timeline;
    },
    async rotateIfDue() {
      const days = deps.config.keyRotationDays;
      if (days === undefined) return undefined;
      const now = deps.clock.nowSeconds();
      const newest = await findNewestSigningKey(deps.db);
      if (newest && newest.created_at > now - days * SECONDS_PER_DAY) return undefined;
      return rotateAfter(newest, now + KEY_ACTIVATION_DELAY_SECONDS);
    },
  };
}

/** True when the key is not retired by `moment`: a key taking over then replaces it. */
function signsPast(row: SigningKeyRow, moment: number): boolean {
  return row.retired_at === null || row.retired_at > moment;
}

/**
 * Keys stored before KEY_ENCRYPTION_SECRET was set get encrypted in place, retired ones too:
 * turning encryption on leaves no private key in plaintext.
 */
async function encryptPlaintextKeys(deps: KeyStoreDeps): Promise<void> {
  if (!deps.config.keyEncryptionSecret) return;
  for (const row of await listPlaintextSigningKeys(deps.db)) {
    const sealed = sealSecret(row.private_jwk, deps.config, SIGNING_KEY_LABEL);
    await updatePrivateKey(deps.db, row.kid, sealed.value, sealed.encryption);
  }
}

/** HS256: one shared secret, so nothing can be published; the kid is a fingerprint, not the secret. */
function hmacKeyStore(secret: string): KeyStore {
  const key = new TextEncoder().encode(secret);
  const kid = createHash('sha256').update(`gatehouse-hs256:${secret}`).digest('base64url').slice(0, 16);
  const signing: SigningKey = { kid, algorithm: 'HS256', privateKey: key };
  const verification: VerificationKey = { kid, algorithm: 'HS256', publicKey: key };
  return {
    algorithm: 'HS256',
    current: () => signing,
    verificationKey: (candidate) => (candidate === kid ? verification : undefined),
    acceptedAlgorithms: () => ['HS256'],
    publicJwks: () => ({ keys: [] }),
    reload: async () => {},
    rotate: async () => {
      throw new Error('HS256 keys come from JWT_SECRET; rotate by changing the secret');
    },
    rotateIfDue: async () => undefined,
  };
}
