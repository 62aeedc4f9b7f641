import { createHmac, randomBytes } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  AuthenticatorTransport,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  VerifiedAuthenticationResponse,
  VerifiedRegistrationResponse,
} from '@simplewebauthn/server';
import type { AuditLog, RequestContext } from '../audit/events.ts';
import { notifySecurityEvent, type SecurityNoticeDeps } from '../auth/security-notices.ts';
import { startSession, type SessionClient, type SessionDeps, type SessionTokens } from '../auth/sessions.ts';
import type { CounterStore } from '../abuse/counter-store.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import { findUserById, findUserForUpdate, takeSqliteWriteLock, type UserRow } from '../storage/users.ts';
import { toPublicUser, type PublicUser } from '../users/user.ts';

// @simplewebauthn/server and its dependencies weigh about 26 MiB resident (measured alone): loaded by
// the first passkey request, not at start, so a deployment without passkeys never pays for them.
let webauthnModule: Promise<typeof import('@simplewebauthn/server')> | undefined;
function webauthn(): Promise<typeof import('@simplewebauthn/server')> {
  webauthnModule ??= import('@simplewebauthn/server');
  return webauthnModule;
}

/** A challenge is good for one ceremony, for five minutes (the browser's own timeout is the same). */
export const CHALLENGE_TTL_SECONDS = 300;
/** Passkey sign-in attempts per client network in PASSKEY_LOGIN_WINDOW_SECONDS, counted before anything is checked. */
export const PASSKEY_LOGIN_MAX_ATTEMPTS = 30;
export const PASSKEY_LOGIN_WINDOW_SECONDS = 300;
/** More passkeys than anyone needs; a stolen token cannot fill the table. */
export const MAX_PASSKEYS_PER_USER = 20;
/** Open challenges of one purpose per user (registration): older ones are dropped. */
const MAX_OPEN_REGISTRATIONS = 5;

export interface PasskeyDeps extends SessionDeps {
  config: Pick<Config, 'jwt' | 'sessions' | 'webauthn' | 'requireEmailVerification'>;
  audit: Pick<AuditLog, 'record'>;
  shared: { counters: CounterStore };
  mailer: SecurityNoticeDeps['mailer'];
  /** The server secret user handles are derived under (loaded at start). */
  webauthnUserHandleSecret: Buffer;
}

export interface PasskeySummary {
  id: number;
  name: string;
  device_type: string | null;
  backed_up: boolean;
  transports: string[];
  created_at: string;
  last_used_at: string | null;
}

const rejected = (message = 'verification failed - passkey not accepted') => new AppError('passkey_invalid', message);

const isoTime = (seconds: number) => new Date(seconds * 1000).toISOString();

function summary(row: { id: number | string; name: string; device_type: string | null; backed_up: number | boolean; transports: string; created_at: number | string; last_used_at: number | string | null }): PasskeySummary {
  return {
    id: Number(row.id),
    name: row.name,
    device_type: row.device_type,
    backed_up: Boolean(Number(row.backed_up)),
    transports: parseTransports(row.transports),
    created_at: isoTime(Number(row.created_at)),
    last_used_at: row.last_used_at === null ? null : isoTime(Number(row.last_used_at)),
  };
}

function parseTransports(text: string): AuthenticatorTransport[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? (value.filter((item) => typeof item === 'string') as AuthenticatorTransport[]) : [];
  } catch {
    return [];
  }
}

/**
 * The WebAuthn user handle of a user: the same for each of their passkeys (an authenticator then
 * replaces an old credential for the account instead of piling them up), opaque (an HMAC of the id
 * under a server secret: it tells an authenticator's reader nothing, not even the user id), and
 * derivable again at registration's second step without storing anything in between.
 */
function userHandle(deps: PasskeyDeps, userId: number): Uint8Array<ArrayBuffer> {
  const digest = createHmac('sha256', deps.webauthnUserHandleSecret).update(`webauthn-user:${userId}`).digest();
  return new Uint8Array(digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.byteLength) as ArrayBuffer);
}

async function storeChallenge(deps: PasskeyDeps, purpose: 'register' | 'authenticate', challenge: string, userId: number | null): Promise<string> {
  const now = deps.clock.nowSeconds();
  const id = randomBytes(16).toString('base64url');
  // Spent challenges are deleted when used; abandoned ones go here, so the table holds only five minutes' worth.
  await deps.db.deleteFrom('webauthn_challenges').where('expires_at', '<=', now).execute();
  if (userId !== null) {
    const open = await deps.db
      .selectFrom('webauthn_challenges')
      .select('id')
      .where('user_id', '=', userId)
      .where('purpose', '=', purpose)
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute();
    const stale = open.slice(MAX_OPEN_REGISTRATIONS - 1).map((row) => row.id);
    if (stale.length > 0) await deps.db.deleteFrom('webauthn_challenges').where('id', 'in', stale).execute();
  }
  await deps.db.insertInto('webauthn_challenges').values({ id, challenge, purpose, user_id: userId, created_at: now, expires_at: now + CHALLENGE_TTL_SECONDS }).execute();
  return id;
}

/**
 * Spends a challenge: deleted and returned in one statement, so two requests racing with the same
 * one cannot both have it. Expired, unknown or already spent: undefined.
 */
async function spendChallenge(
  deps: PasskeyDeps,
  where: { purpose: 'register'; userId: number; challenge: string } | { purpose: 'authenticate'; id: string },
): Promise<{ challenge: string } | undefined> {
  let query = deps.db.deleteFrom('webauthn_challenges').where('purpose', '=', where.purpose).where('expires_at', '>', deps.clock.nowSeconds());
  query = where.purpose === 'register' ? query.where('user_id', '=', where.userId).where('challenge', '=', where.challenge) : query.where('id', '=', where.id).where('user_id', 'is', null);
  return query.returning('challenge').executeTakeFirst();
}

/** The challenge a response answers, read from its clientDataJSON (the library checks it again against the stored one). */
function answeredChallenge(clientDataJSON: string): string | undefined {
  try {
    const clientData: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
    const challenge = (clientData as { challenge?: unknown }).challenge;
    return typeof challenge === 'string' && challenge.length > 0 && challenge.length <= 512 ? challenge : undefined;
  } catch {
    return undefined;
  }
}

const tooManyPasskeys = () =>
  new AppError('invalid_input', 'too many passkeys', { fieldErrors: [{ field: 'passkeys', message: `at most ${MAX_PASSKEYS_PER_USER} passkeys per account - delete one first` }] });

/** The token was live a moment ago; a user deleted or disabled since then gets what a revoked token gets. */
function active(user: UserRow | undefined): UserRow {
  if (!user || user.disabled_at !== null) throw new AppError('token_revoked', 'the account is no longer active');
  return user;
}

export async function registrationOptions(deps: PasskeyDeps, userId: number): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const user = active(await findUserById(deps.db, userId));
  const existing = await deps.db.selectFrom('passkeys').select(['credential_id', 'transports']).where('user_id', '=', userId).execute();
  if (existing.length >= MAX_PASSKEYS_PER_USER) throw tooManyPasskeys();
  const options = await (await webauthn()).generateRegistrationOptions({
    rpName: deps.config.webauthn.rpName,
    rpID: deps.config.webauthn.rpId,
    userName: user.email,
    userDisplayName: user.name,
    userID: userHandle(deps, userId),
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    // No attestation: we trust no vendor list, and asking would only add a consent prompt.
    attestationType: 'none',
    // The same authenticator twice would be one credential under two names.
    excludeCredentials: existing.map((row) => ({ id: row.credential_id, transports: parseTransports(row.transports) })),
    // Discoverable: sign-in asks for no email, the authenticator offers the account. User verification
    // required: a passkey alone then stands for two factors (the device and its PIN or biometric).
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
  });
  await storeChallenge(deps, 'register', options.challenge, userId);
  return options;
}

export async function registerPasskey(
  deps: PasskeyDeps,
  userId: number,
  input: { response: RegistrationResponseJSON; name?: string },
  context: RequestContext | undefined,
): Promise<PasskeySummary> {
  const challenge = answeredChallenge(input.response.response.clientDataJSON);
  const spent = challenge === undefined ? undefined : await spendChallenge(deps, { purpose: 'register', userId, challenge });
  if (!spent) throw rejected('verification failed - the registration challenge is unknown, expired or already used');
  let verification: VerifiedRegistrationResponse;
  try {
    verification = await (await webauthn()).verifyRegistrationResponse({
      response: input.response,
      expectedChallenge: spent.challenge,
      expectedOrigin: [...deps.config.webauthn.origins],
      expectedRPID: deps.config.webauthn.rpId,
      requireUserVerification: true,
    });
  } catch {
    // The library's messages describe the response, not secrets, but they are not our contract: one answer.
    throw rejected();
  }
  if (!verification.verified) throw rejected();
  const { credential, credentialDeviceType, credentialBackedUp } = verification.registrationInfo;
  const now = deps.clock.nowSeconds();
  const name = input.name?.trim() || `Passkey ${isoTime(now).slice(0, 10)}`;
  const handle = Buffer.from(userHandle(deps, userId)).toString('base64url');
  const transports = JSON.stringify(credential.transports ?? input.response.response.transports ?? []);
  // Counted again where the row goes in, under the user's lock: several registration challenges may be open at
  // once, each handed out below the cap, and each would otherwise add one more.
  const row = await deps.db.transaction().execute(async (trx) => {
    await takeSqliteWriteLock(trx);
    active(await findUserForUpdate(trx, userId));
    const { count } = await trx.selectFrom('passkeys').select((eb) => eb.fn.countAll<number | string>().as('count')).where('user_id', '=', userId).executeTakeFirstOrThrow();
    if (Number(count) >= MAX_PASSKEYS_PER_USER) throw tooManyPasskeys();
    return trx
      .insertInto('passkeys')
      .values({
        user_id: userId,
        credential_id: credential.id,
        public_key: Buffer.from(credential.publicKey).toString('base64url'),
        user_handle: handle,
        counter: credential.counter,
        transports,
        device_type: credentialDeviceType,
        backed_up: credentialBackedUp ? 1 : 0,
        name,
        created_at: now,
        last_used_at: null,
      })
      // Credential ids are unique across users: a second registration of one (excludeCredentials ignored) changes nothing.
      .onConflict((conflict) => conflict.column('credential_id').doNothing())
      .returningAll()
      .executeTakeFirst();
  });
  if (!row) throw rejected('verification failed - this passkey is already registered');
  deps.audit.record({
    action: 'user.passkey_register',
    actor: { type: 'user', id: String(userId) },
    subject: { type: 'user', id: String(userId) },
    ...(context ? { context } : {}),
    details: { passkey_id: Number(row.id), device_type: credentialDeviceType, backed_up: credentialBackedUp },
  });
  notifySecurityEvent(deps, userId, 'passkey_added');
  return summary(row);
}

export async function listPasskeys(deps: Pick<PasskeyDeps, 'db'>, userId: number): Promise<PasskeySummary[]> {
  const rows = await deps.db.selectFrom('passkeys').selectAll().where('user_id', '=', userId).orderBy('id').execute();
  return rows.map(summary);
}

/** Deletes one of the user's passkeys; another user's id answers as an unknown one does. */
export async function deletePasskey(deps: PasskeyDeps, userId: number, passkeyId: number, context: RequestContext | undefined): Promise<void> {
  const deleted = await deps.db.deleteFrom('passkeys').where('id', '=', passkeyId).where('user_id', '=', userId).returning(['id', 'name']).executeTakeFirst();
  if (!deleted) throw new AppError('passkey_not_found', 'passkey not found');
  deps.audit.record({
    action: 'user.passkey_delete',
    actor: { type: 'user', id: String(userId) },
    subject: { type: 'user', id: String(userId) },
    ...(context ? { context } : {}),
    details: { passkey_id: Number(deleted.id) },
  });
  notifySecurityEvent(deps, userId, 'passkey_deleted');
}

export async function authenticationOptions(deps: PasskeyDeps): Promise<{ challengeId: string; options: PublicKeyCredentialRequestOptionsJSON }> {
  const options = await (await webauthn()).generateAuthenticationOptions({
    rpID: deps.config.webauthn.rpId,
    // Empty: a discoverable sign-in, the authenticator offers whichever accounts it holds for us.
    allowCredentials: [],
    userVerification: 'required',
    timeout: CHALLENGE_TTL_SECONDS * 1000,
  });
  const challengeId = await storeChallenge(deps, 'authenticate', options.challenge, null);
  return { challengeId, options };
}

export type PasskeyLoginFailure = 'challenge_invalid' | 'unknown_credential' | 'user_handle_mismatch' | 'verification_failed' | 'counter_replay' | 'disabled' | 'rate_limited';

/**
 * RFC 8176 values for a passkey sign-in: the key's kind (a credential bound to one device is
 * hardware-secured, `hwk`; a synced one lives in software, `swk`), `user` for the presence test every
 * assertion carries, and `mfa`, since user verification is required: the device plus its PIN or biometric.
 */
export function passkeyAmr(deviceType: string | null): string[] {
  return [deviceType === 'multiDevice' ? 'swk' : 'hwk', 'user', 'mfa'];
}

export async function loginWithPasskey(
  deps: PasskeyDeps,
  input: { challengeId: string; response: AuthenticationResponseJSON; sessionClient: SessionClient },
  client: { network: string; context?: RequestContext },
  /** REQUIRE_EMAIL_VERIFICATION, checked after the passkey verified: only its owner learns the account is unverified. */
  assertMayLogIn: (user: UserRow) => void,
): Promise<{ user: PublicUser; tokens: SessionTokens; amr: string[] }> {
  const failed = (reason: PasskeyLoginFailure, userId?: number | string): AppError => {
    deps.audit.record({
      action: 'user.passkey_login_failed',
      outcome: 'failure',
      reason,
      actor: { type: 'anonymous' },
      ...(userId !== undefined ? { subject: { type: 'user', id: String(userId) } } : {}),
      ...(client.context ? { context: client.context } : {}),
      details: { client_id: input.sessionClient.clientId },
    });
    return rejected();
  };
  // Counted before anything is checked, in the shared counters (every instance sees one budget).
  const now = deps.clock.nowSeconds();
  const { count, resetAt } = await deps.shared.counters.increment(`passkey-login:${client.network}`, PASSKEY_LOGIN_WINDOW_SECONDS, now);
  if (count > PASSKEY_LOGIN_MAX_ATTEMPTS) {
    failed('rate_limited');
    throw new AppError('rate_limited', 'too many passkey sign-ins from this address', { retryAfterSeconds: Math.max(1, resetAt - now) });
  }

  // Spent first, whatever follows: an altered or refused response burns its challenge too.
  const spent = await spendChallenge(deps, { purpose: 'authenticate', id: input.challengeId });
  if (!spent) throw failed('challenge_invalid');
  const passkey = await deps.db.selectFrom('passkeys').selectAll().where('credential_id', '=', input.response.id).executeTakeFirst();
  if (!passkey) throw failed('unknown_credential');
  // A discoverable assertion names its account: it must be the one the credential was registered for.
  // WebAuthn L3 §7.2: with no allowCredentials the response must carry the user handle, so a missing one is refused.
  const returnedHandle = input.response.response.userHandle;
  if (returnedHandle !== passkey.user_handle) throw failed('user_handle_mismatch', passkey.user_id);
  let verification: VerifiedAuthenticationResponse;
  try {
    verification = await (await webauthn()).verifyAuthenticationResponse({
      response: input.response,
      expectedChallenge: spent.challenge,
      expectedOrigin: [...deps.config.webauthn.origins],
      expectedRPID: deps.config.webauthn.rpId,
      credential: {
        id: passkey.credential_id,
        publicKey: new Uint8Array(Buffer.from(passkey.public_key, 'base64url')) as Uint8Array<ArrayBuffer>,
        counter: Number(passkey.counter),
        transports: parseTransports(passkey.transports),
      },
      requireUserVerification: true,
    });
  } catch (error) {
    // The library refuses a signature counter that did not move forward (a cloned authenticator).
    const counter = error instanceof Error && /counter value/i.test(error.message);
    throw failed(counter ? 'counter_replay' : 'verification_failed', passkey.user_id);
  }
  if (!verification.verified) throw failed('verification_failed', passkey.user_id);
  const { newCounter } = verification.authenticationInfo;
  // Conditional on the counter read: of two assertions racing with the same counter value, one wins.
  // Authenticators that keep no counter send 0 every time; then there is nothing to compare.
  const stored = Number(passkey.counter);
  let update = deps.db.updateTable('passkeys').set({ counter: newCounter, last_used_at: now }).where('id', '=', passkey.id);
  update = newCounter === 0 && stored === 0 ? update : update.where('counter', '<', newCounter);
  const moved = await update.executeTakeFirst();
  if (moved.numUpdatedRows === 0n) throw failed('counter_replay', passkey.user_id);

  const user = await findUserById(deps.db, Number(passkey.user_id));
  if (!user || user.disabled_at !== null) throw failed('disabled', passkey.user_id);
  assertMayLogIn(user);
  const amr = passkeyAmr(passkey.device_type);
  // startSession re-checks, in its own statement, that the user is still there and enabled.
  const started = await startSession(deps, { userId: Number(user.id), amr }, input.sessionClient);
  if (!started) throw failed('disabled', passkey.user_id);
  deps.audit.record({
    action: 'user.login',
    actor: { type: 'user', id: String(user.id) },
    subject: { type: 'user', id: String(user.id) },
    ...(client.context ? { context: client.context } : {}),
    details: { session_id: started.tokens.sessionId, client_id: input.sessionClient.clientId, method: 'passkey', passkey_id: Number(passkey.id) },
  });
  return { user: toPublicUser(started.user), tokens: started.tokens, amr };
}
