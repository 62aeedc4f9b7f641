/**
 * A software WebAuthn authenticator for the HTTP-level passkey tests: a P-256 key per credential,
 * "none" attestation, a signature counter, user presence and verification flags: what Chromium's
 * virtual authenticator does, in Node, so each bad-input case can alter one byte of a real,
 * correctly signed response. The browser suite proves the same routes with Chromium itself.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

const b64url = (bytes: Uint8Array | Buffer) => Buffer.from(bytes).toString('base64url');
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();
const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_AT = 0x40;

export interface SoftCredential {
  id: Buffer;
  privateKey: KeyObject;
  userHandle: string;
  counter: number;
}

export class SoftAuthenticator {
  readonly credentials: SoftCredential[] = [];
  constructor(
    readonly origin: string,
    readonly rpId: string,
    /** Counter step per assertion; 0: an authenticator that keeps no counter. */
    readonly counterStep = 1,
  ) {}

  private clientData(type: string, challenge: string, origin: string): string {
    return b64url(Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false })));
  }

  private authData(flags: number, counter: number, attested?: Buffer): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    return Buffer.concat([sha256(this.rpId), Buffer.from([flags]), count, ...(attested ? [attested] : [])]);
  }

  /** navigator.credentials.create() for registration options (PublicKeyCredentialCreationOptionsJSON). */
  create(options: { challenge: string; user: { id: string } }, overrides: { origin?: string; rpId?: string } = {}) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = new Map<number, number | Uint8Array>([
      [1, 2], // kty EC2
      [3, -7], // alg ES256
      [-1, 1], // crv P-256
      [-2, new Uint8Array(Buffer.from(jwk.x!, 'base64url'))],
      [-3, new Uint8Array(Buffer.from(jwk.y!, 'base64url'))],
    ]);
    const id = randomBytes(32);
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(id.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLength, id, Buffer.from(isoCBOR.encode(cose as never))]);
    const rpId = overrides.rpId ?? this.rpId;
    const count = Buffer.alloc(4);
    const authData = Buffer.concat([sha256(rpId), Buffer.from([FLAG_UP | FLAG_UV | FLAG_AT]), count, attested]);
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', new Uint8Array(authData)]]) as never);
    const credential: SoftCredential = { id, privateKey, userHandle: options.user.id, counter: 0 };
    return {
      credential,
      response: {
        id: b64url(id),
        rawId: b64url(id),
        type: 'public-key' as const,
        clientExtensionResults: {},
        authenticatorAttachment: 'platform' as const,
        response: {
          clientDataJSON: this.clientData('webauthn.create', options.challenge, overrides.origin ?? this.origin),
          attestationObject: b64url(attestationObject),
          transports: ['internal'],
        },
      },
    };
  }

  /** create(), keeping the credential for later assertions. */
  register(options: { challenge: string; user: { id: string } }) {
    const made = this.create(options);
    this.credentials.push(made.credential);
    return made.response;
  }

  /** navigator.credentials.get() with a discoverable credential: the newest one unless told which. */
  assert(
    options: { challenge: string },
    overrides: { credential?: SoftCredential; origin?: string; counter?: number; flags?: number; userHandle?: string } = {},
  ) {
    const credential = overrides.credential ?? this.credentials.at(-1)!;
    if (overrides.counter === undefined) credential.counter += this.counterStep;
    const authData = this.authData(overrides.flags ?? FLAG_UP | FLAG_UV, overrides.counter ?? credential.counter);
    const clientDataJSON = this.clientData('webauthn.get', options.challenge, overrides.origin ?? this.origin);
    const signature = sign('sha256', Buffer.concat([authData, sha256(Buffer.from(clientDataJSON, 'base64url'))]), credential.privateKey);
    return {
      id: b64url(credential.id),
      rawId: b64url(credential.id),
      type: 'public-key' as const,
      clientExtensionResults: {},
      authenticatorAttachment: 'platform' as const,
      response: {
        clientDataJSON,
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        userHandle: overrides.userHandle ?? credential.userHandle,
      },
    };
  }
}

export const FLAGS = { UP: FLAG_UP, UV: FLAG_UV };
