import type { Kysely } from 'kysely';
import { checkReserved, lockoutReason, type LoginAttempt, type LoginLockout } from '../abuse/login-lockout.ts';
import { notifySecurityEvent, type SecurityNoticeDeps } from '../auth/security-notices.ts';
import type { AuditLog, RequestContext } from '../audit/events.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { AppError, isAppError } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import type { Database } from '../storage/schema.ts';
import { findUserById } from '../storage/users.ts';
import {
  generateRecoveryCodes,
  generateTotpSecret,
  hashRecoveryCode,
  legacyRecoveryCodeHash,
  matchTotpStep,
  openTotpSecret,
  otpauthUri,
  parseSecondFactorCode,
  sealTotpSecret,
  type SecondFactorCode,
} from './totp.ts';

export interface MfaDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious' | 'totpIssuer'>;
  audit: Pick<AuditLog, 'record'>;
  /** The server secret recovery codes are hashed under (loaded at start). */
  recoveryCodeSecret: Buffer;
}

export interface MfaManagementDeps extends MfaDeps, Pick<SecurityNoticeDeps, 'mailer' | 'shared'> {
  hasher: PasswordHasher;
  /** The code checks behind a session (scope mfa, keyed by user id), on the second step's run of wrong codes too. */
  mfaLockout: LoginLockout;
  /**
   * The password checks behind a session (scope password-change, shared with /me/password and /me/email): a
   * wrong password never reaches the code budget, so a stolen access token cannot run the owner's second
   * step into its lock either.
   */
  passwordChangeLockout: LoginLockout;
  /** Confirming an enrolment's first code (scope mfa-enrol, keyed by user id): budgets of its own, no run of wrong codes. */
  mfaEnrolLockout: LoginLockout;
}

export type SecondFactorMethod = 'totp' | 'recovery_code';

/** RFC 8176 amr of a login completed with each second factor (documented in the README). */
export const AMR_OF: Record<SecondFactorMethod, readonly string[]> = {
  totp: ['pwd', 'otp', 'mfa'],
  // A recovery code is a one-time password too, but not from a device: "otp" would overstate it.
  recovery_code: ['pwd', 'mfa'],
};

export async function hasConfirmedTotp(db: Kysely<Database>, userId: number): Promise<boolean> {
  const row = await db.selectFrom('totp_factors').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst();
  return row !== undefined;
}

/**
 * Checks a second factor of a user whose TOTP is confirmed, spending it: a TOTP code moves
 * last_used_step forward (a conditional update, so two requests racing with one code cannot
 * both win), a recovery code is marked used. Undefined: wrong, replayed or spent.
 */
export async function spendSecondFactor(deps: MfaDeps, userId: number, code: SecondFactorCode): Promise<SecondFactorMethod | undefined> {
  const factor = await deps.db.selectFrom('totp_factors').selectAll().where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst();
  if (!factor) return undefined;
  const now = deps.clock.nowSeconds();
  if (code.kind === 'totp') {
    const step = matchTotpStep(openTotpSecret(factor, userId, deps.config), code.code, now, factor.last_used_step === null ? null : Number(factor.last_used_step));
    if (step === undefined) return undefined;
    const result = await deps.db
      .updateTable('totp_factors')
      .set({ last_used_step: step })
      .where('user_id', '=', userId)
      .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', step)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1 ? 'totp' : undefined;
  }
  const result = await deps.db
    .updateTable('recovery_codes')
    .set({ used_at: now })
    .where('code_hash', 'in', [hashRecoveryCode(code.code, userId, deps.recoveryCodeSecret), legacyRecoveryCodeHash(code.code)])
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1 ? 'recovery_code' : undefined;
}

export interface Enrolment {
  secret: string;
  otpauthUri: string;
  qrSvg: string;
}

/**
 * Starts (or restarts) enrolment: a new secret, sealed at rest, not asked for at login until a
 * first code confirms it. A user whose TOTP is already on must disable it first (409).
 */
export async function enrolTotp(deps: MfaDeps, userId: number): Promise<Enrolment> {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  const secret = generateTotpSecret();
  const sealed = sealTotpSecret(secret, userId, deps.config);
  const now = deps.clock.nowSeconds();
  // One statement: an unconfirmed enrolment is replaced, a confirmed factor is left alone (0 rows).
  const result = await deps.db
    .insertInto('totp_factors')
    .values({ user_id: userId, secret: sealed.value, secret_encryption: sealed.encryption, created_at: now, confirmed_at: null, last_used_step: null })
    .onConflict((conflict) =>
      conflict
        .column('user_id')
        .doUpdateSet({ secret: sealed.value, secret_encryption: sealed.encryption, created_at: now, last_used_step: null })
        .where('totp_factors.confirmed_at', 'is', null),
    )
    .executeTakeFirst();
  if (Number(result.numInsertedOrUpdatedRows ?? 0n) !== 1) throw new AppError('mfa_conflict', 'two-factor authentication is already enabled');
  const uri = otpauthUri(secret, deps.config.totpIssuer, user.email);
  // qrcode costs about 10 MiB resident: loaded at the first enrolment, not at start.
  const { default: QRCode } = await import('qrcode');
  const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return { secret, otpauthUri: uri, qrSvg };
}

/** The first code proves the authenticator works: TOTP is on from now, with ten fresh recovery codes. */
export async function confirmTotp(
  deps: MfaManagementDeps,
  userId: number,
  rawCode: string,
  client: { network: string; context?: RequestContext },
): Promise<string[]> {
  const code = parseSecondFactorCode(rawCode, 'code', { recovery: false });
  const factor = await deps.db.selectFrom('totp_factors').selectAll().where('user_id', '=', userId).executeTakeFirst();
  if (!factor || factor.confirmed_at !== null) throw new AppError('mfa_conflict', factor ? 'two-factor authentication is already enabled' : 'no enrolment to confirm - POST /me/mfa/totp first');
  // Not on the second step's run: this code is for a secret not yet in use, and no password guards this route,
  // so a stolen token must not be able to run the owner's login step into its lock from here.
  const attempt = await reserve(deps, userId, client, deps.mfaEnrolLockout);
  const step = matchTotpStep(openTotpSecret(factor, userId, deps.config), code.code, deps.clock.nowSeconds(), null);
  if (step === undefined) {
    failed(deps, userId, client, attempt, 'wrong_code', 'confirm', 'mfa_enrol');
    throw new AppError('mfa_invalid', 'incorrect code');
  }
  await attempt.succeeded();
  const now = deps.clock.nowSeconds();
  const codes = generateRecoveryCodes();
  await deps.db.transaction().execute(async (trx) => {
    // Only over the enrolment whose secret was just checked: a re-enrolment racing it wins.
    const confirmed = await trx
      .updateTable('totp_factors')
      .set({ confirmed_at: now, last_used_step: step })
      .where('user_id', '=', userId)
      .where('confirmed_at', 'is', null)
      .where('secret', '=', factor.secret)
      .executeTakeFirst();
    if (Number(confirmed.numUpdatedRows) !== 1) throw new AppError('mfa_conflict', 'the enrolment changed while this code was checked');
    await replaceRecoveryCodes(trx, userId, codes, deps.recoveryCodeSecret, now);
  });
  record(deps, userId, client, 'user.mfa_enable', { details: { method: 'totp', recovery_codes: codes.length } });
  notifySecurityEvent(deps, userId, 'totp_enabled');
  return codes;
}

/** Turns TOTP off: the password and a current code (or a recovery code) both, so neither a stolen token nor a lost phone is enough. */
export async function disableTotp(
  deps: MfaManagementDeps,
  userId: number,
  input: { password: string; code: string },
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<void> {
  await checkPasswordAndCode(deps, userId, input, client, 'disable', options);
  await deps.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('totp_factors').where('user_id', '=', userId).execute();
    await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
    // A login half done (password given, code pending) cannot finish against a factor that is gone.
    await trx.deleteFrom('mfa_tickets').where('user_id', '=', userId).execute();
  });
  record(deps, userId, client, 'user.mfa_disable', { details: { method: 'totp' } });
  notifySecurityEvent(deps, userId, 'totp_disabled');
}

/** Ten new recovery codes; the old ones stop working. */
export async function regenerateRecoveryCodes(
  deps: MfaManagementDeps,
  userId: number,
  input: { password: string; code: string },
  client: { network: string; context?: RequestContext },
  options: JobOptions = {},
): Promise<string[]> {
  await checkPasswordAndCode(deps, userId, input, client, 'regenerate', options);
  const codes = generateRecoveryCodes();
  await deps.db.transaction().execute((trx) => replaceRecoveryCodes(trx, userId, codes, deps.recoveryCodeSecret, deps.clock.nowSeconds()));
  record(deps, userId, client, 'user.recovery_codes_regenerate', { details: { recovery_codes: codes.length } });
  notifySecurityEvent(deps, userId, 'recovery_codes_regenerated');
  return codes;
}

export interface MfaStatus {
  totpEnabled: boolean;
  totpPending: boolean;
  totpConfirmedAt: number | null;
  recoveryCodesRemaining: number;
}

export async function mfaStatus(db: Kysely<Database>, userId: number): Promise<MfaStatus> {
  const factor = await db.selectFrom('totp_factors').select(['confirmed_at']).where('user_id', '=', userId).executeTakeFirst();
  const remaining = await db
    .selectFrom('recovery_codes')
    .select((eb) => eb.fn.countAll<number | string | bigint>().as('count'))
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  const enabled = factor !== undefined && factor.confirmed_at !== null;
  return {
    totpEnabled: enabled,
    totpPending: factor !== undefined && factor.confirmed_at === null,
    totpConfirmedAt: enabled ? Number(factor.confirmed_at) : null,
    recoveryCodesRemaining: enabled ? Number(remaining.count) : 0,
  };
}

async function replaceRecoveryCodes(db: Kysely<Database>, userId: number, codes: string[], key: Buffer, now: number): Promise<void> {
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
  await db
    .insertInto('recovery_codes')
    .values(codes.map((code) => ({ code_hash: hashRecoveryCode(code, userId, key), user_id: userId, created_at: now, used_at: null })))
    .execute();
}

/**
 * The password, then a second factor, each counted before it is checked: the password on the budget every
 * password check behind a session shares, the code (only once the password was right) on the code budget and
 * the second step's run of wrong codes. The answer says which was wrong (the password first), as /me/password does.
 */
async function checkPasswordAndCode(
  deps: MfaManagementDeps,
  userId: number,
  input: { password: string; code: string },
  client: { network: string; context?: RequestContext },
  purpose: 'disable' | 'regenerate',
  options: JobOptions,
): Promise<void> {
  const code = parseSecondFactorCode(input.code);
  const user = await findUserById(deps.db, userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  const factor = await deps.db.selectFrom('totp_factors').select('confirmed_at').where('user_id', '=', userId).executeTakeFirst();
  if (!factor || factor.confirmed_at === null) throw new AppError('mfa_conflict', 'two-factor authentication is not enabled');
  const passwordAttempt = await reserve(deps, userId, client, deps.passwordChangeLockout);
  const verified = await checkReserved(passwordAttempt, (onStarted) => deps.hasher.verify(user.password_hash, input.password, { ...options, onStarted }));
  if (!verified.matches) {
    failed(deps, userId, client, passwordAttempt, 'wrong_password', purpose, 'password_change');
    throw new AppError('wrong_password', 'password is incorrect');
  }
  await passwordAttempt.succeeded();
  const attempt = await reserve(deps, userId, client);
  if ((await spendSecondFactor(deps, userId, code)) === undefined) {
    failed(deps, userId, client, attempt, 'wrong_code', purpose);
    throw new AppError('mfa_invalid', 'incorrect code');
  }
  await attempt.succeeded();
  if (code.kind === 'recovery') record(deps, userId, client, 'user.recovery_code_used', { details: { purpose } });
}

async function reserve(deps: MfaManagementDeps, userId: number, client: { network: string; context?: RequestContext }, lockout: LoginLockout = deps.mfaLockout) {
  try {
    return await lockout.reserve(`user:${userId}`, client.network);
  } catch (error) {
    if (isAppError(error, 'rate_limited')) record(deps, userId, client, 'user.mfa_failed', { outcome: 'failure', reason: 'locked' });
    throw error;
  }
}

function failed(
  deps: MfaManagementDeps,
  userId: number,
  client: { context?: RequestContext },
  attempt: Pick<LoginAttempt, 'lockoutIfFailed'>,
  reason: string,
  purpose: string,
  scope: 'mfa' | 'mfa_enrol' | 'password_change' = 'mfa',
): void {
  record(deps, userId, client, 'user.mfa_failed', { outcome: 'failure', reason, details: { purpose } });
  if (attempt.lockoutIfFailed) {
    const { budget, seconds } = attempt.lockoutIfFailed;
    record(deps, userId, client, 'user.lockout', {
      outcome: 'failure',
      reason: lockoutReason(budget),
      details: { scope, lock_seconds: seconds },
    });
    // The run of wrong codes the login's second step shares just locked: someone has the password (and a session).
    if (budget === 'streak') notifySecurityEvent(deps, userId, 'mfa_login_locked');
  }
}

function record(
  deps: MfaDeps,
  userId: number,
  client: { context?: RequestContext },
  action: 'user.mfa_enable' | 'user.mfa_disable' | 'user.mfa_failed' | 'user.recovery_code_used' | 'user.recovery_codes_regenerate' | 'user.lockout',
  event: { outcome?: 'failure'; reason?: string; details?: Record<string, unknown> },
): void {
  deps.audit.record({
    action,
    ...event,
    actor: { type: 'user', id: String(userId) },
    subject: { type: 'user', id: String(userId) },
    ...(client.context ? { context: client.context } : {}),
  });
}
