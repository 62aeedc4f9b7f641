import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Config, JwtAlgorithm } from '../config.ts';
import type { Database } from '../storage/schema.ts';
import {
  insertSigningKey,
  listPlaintextSigningKeys,
  listVerificationKeys,
  retireSigningKeys,
  updatePrivateKey,
  type SigningKeyRow,
} from '../storage/signing-keys.ts';
import { openStoredSecret, sealSecret, type EncryptionSecrets } from './at-rest.ts';

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
  current(): SigningKey;
  /** A key from our own store, looked up by kid; token headers never supply key material. */
  verificationKey(kid: string): VerificationKey | undefined;
  /** Algorithms of every key still accepted, for jose's pinned list. */
  acceptedAlgorithms(): JwtAlgorithm[];
  publicJwks(): { keys: JWK[] };
  /** Re-reads the keys table (another instance may have rotated); throttled by the caller. */
  reload(): Promise<void>;
  /** New signing key now; the old one stays published until its last token expires. */
  rotate(): Promise<string>;
}

export interface KeyStoreDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'jwt'> & EncryptionSecrets;
}

export const SIGNING_KEY_LABEL = 'signing-key';

export async function openKeyStore(deps: KeyStoreDeps): Promise<KeyStore> {
  const { jwt } = deps.config;
  if (jwt.algorithm === 'HS256') return hmacKeyStore(jwt.secret ?? '');

  let signing: SigningKey | undefined;
  let verification = new Map<string, VerificationKey>();
  let acceptedAlgorithms: JwtAlgorithm[] = [];
  let jwks: JWK[] = [];

  async function load(): Promise<void> {
    const rows = await listVerificationKeys(deps.db, deps.clock.nowSeconds());
    const active = rows.find((row) => row.retired_at === null && row.algorithm === jwt.algorithm);
    if (!active) {
      await createKey();
      return load();
    }
    const nextVerification = new Map<string, VerificationKey>();
    const nextJwks: JWK[] = [];
    for (const row of rows) {
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      const algorithm = row.algorithm as JwtAlgorithm;
      nextVerification.set(row.kid, { kid: row.kid, algorithm, publicKey: await importJWK(publicJwk, algorithm) });
      nextJwks.push({ ...publicJwk, kid: row.kid, alg: algorithm, use: 'sig' });
    }
    signing = { kid: active.kid, algorithm: jwt.algorithm, privateKey: await importPrivateKey(active) };
    verification = nextVerification;
    acceptedAlgorithms = [...new Set([...nextVerification.values()].map((key) => key.algorithm))];
    jwks = nextJwks;
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

  async function createKey(): Promise<string> {
    const pair = await generateKeyPair(jwt.algorithm, { extractable: true, ...(jwt.algorithm === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    const publicJwk = await exportJWK(pair.publicKey);
    const privateJwk = await exportJWK(pair.privateKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const now = deps.clock.nowSeconds();
    const sealed = sealSecret(JSON.stringify(privateJwk), deps.config, SIGNING_KEY_LABEL);
    await insertSigningKey(deps.db, {
      kid,
      algorithm: jwt.algorithm,
      public_jwk: JSON.stringify(publicJwk),
      private_jwk: sealed.value,
      private_key_encryption: sealed.encryption,
      created_at: now,
      retired_at: null,
      expires_at: null,
    });
    // Keys of another algorithm (JWT_ALG changed) or older keys stop signing now,
    // and stay published until every token they signed has expired.
    await retireSigningKeys(deps.db, { exceptKid: kid, now, expiresAt: now + jwt.accessTokenTtlSeconds + 60 });
    return kid;
  }

  await encryptPlaintextKeys(deps);
  await load();

  return {
    algorithm: jwt.algorithm,
    current: () => signing as SigningKey,
    verificationKey: (kid) => verification.get(kid),
    acceptedAlgorithms: () => acceptedAlgorithms,
    publicJwks: () => ({ keys: jwks }),
    reload: load,
    async rotate() {
      const kid = await createKey();
      await load();
      return kid;
    },
  };
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
  };
}
